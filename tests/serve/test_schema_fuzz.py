"""Property-based requests generated from the app's own OpenAPI schema: none may get a 5xx.

schemathesis' lazy ``from_fixture`` + ``parametrize`` fails under pytest 9.2 (it sets
``request.node._nodeid``, which pytest no longer has), so each operation's strategy is
driven by hypothesis directly; the schema still comes from the running app.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

FUZZ = settings(max_examples=25, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def api_schema(shapes_run):
    from imgcls.config import ServeConfig
    from imgcls.serve import ModelStore, create_app

    config = ServeConfig(models=[str(shapes_run)], api_key=None, max_wait_ms=1)
    store = ModelStore.from_config(config)
    store.load_all()  # loaded before the first generated request: no 503 while loading
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(config, store=store))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_server_error(api_schema, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8
    nothing_to_break = []
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            response = case.call()
            case.validate_response(response, checks=[not_a_server_error])

        try:
            check()
        except Unsatisfiable:  # negative mode: no parameter or body can be made invalid
            assert mode is GenerationMode.NEGATIVE, operation.label
            nothing_to_break.append(operation.path)
    assert not any(path.endswith("predict") for path in nothing_to_break)
