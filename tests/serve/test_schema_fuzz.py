"""Property-based requests generated from the app's own OpenAPI schema, with every schemathesis
check: no 5xx, responses as documented, and - positive-data acceptance - every request the
schema calls valid is accepted (so the schema says exactly what the server takes: one to
max_images image files, their formats, base64 images in JSON), every invalid one refused.

schemathesis' lazy ``from_fixture`` + ``parametrize`` fails under pytest 9.2 (it sets
``request.node._nodeid``, which pytest no longer has), so each operation's strategy is
driven by hypothesis directly; the schema still comes from the running app.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from imgcls.serve.routes import IMAGE_MEDIA_TYPES

FUZZ = settings(max_examples=25, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/bmp": "BMP",
           "image/tiff": "TIFF", "image/webp": "WEBP"}


def image_files(fmt: str) -> st.SearchStrategy[bytes]:
    """Real image files of one format, of sizes 4 to 40 px: what the schema's media types mean."""
    from PIL import Image

    def make(seed: int, side: int) -> bytes:
        pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=fmt)
        return buffer.getvalue()

    return st.builds(make, st.integers(0, 1000), st.integers(4, 40))


@pytest.fixture(scope="module")
def api_schema(shapes_run):
    from imgcls.config import ServeConfig
    from imgcls.serve import ModelStore, create_app

    assert set(FORMATS) == set(IMAGE_MEDIA_TYPES)
    for media_type, fmt in FORMATS.items():  # the multipart parts' declared content types
        schemathesis.openapi.media_type(media_type, st.lists(image_files(fmt), min_size=1, max_size=3))
    schemathesis.openapi.format("byte", image_files("PNG").map(lambda b: base64.b64encode(b).decode()))
    config = ServeConfig(models=[str(shapes_run)], api_key=None, max_wait_ms=1)
    store = ModelStore.from_config(config)
    store.load_all()  # loaded before the first generated request: no 503 while loading
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(config, store=store))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_check_passes_on_generated_requests(api_schema, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8
    nothing_to_break = []
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            response = case.call()
            case.validate_response(response)  # all checks, positive-data acceptance included

        try:
            check()
        except Unsatisfiable:  # negative mode: no parameter or body can be made invalid
            assert mode is GenerationMode.NEGATIVE, operation.label
            nothing_to_break.append(operation.path)
    assert not any(path.endswith("predict") for path in nothing_to_break)


def test_the_schema_says_what_predict_accepts(api_schema):
    body = api_schema.raw_schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    files = body["multipart/form-data"]["schema"]["properties"]["files"]
    assert files["minItems"] == 1 and files["maxItems"] == 64
    declared = body["multipart/form-data"]["encoding"]["files"]["contentType"]
    assert declared.split(", ") == list(IMAGE_MEDIA_TYPES)
    images = body["application/json"]["schema"]["properties"]["images"]
    assert images["minItems"] == 1 and images["items"]["format"] == "byte"
    explain = api_schema.raw_schema["paths"]["/v1/models/{name}/explain"]["post"]["requestBody"]["content"]
    assert explain["multipart/form-data"]["schema"]["properties"]["files"]["maxItems"] == 1
