"""``run_server(config)``: load the models (failing fast), then serve with uvicorn.

Example:
    >>> run_server(ServeConfig(models=["runs/shapes"], port=8080))     # doctest: +SKIP
"""

from __future__ import annotations

import ipaddress

from ..config import ServeConfig
from ..core.errors import ModelError
from ..core.log import info, warn
from .app import create_app
from .store import ModelStore


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_server(config: ServeConfig) -> None:
    """Serve ``config.models`` until interrupted.

    Raises:
        ModelError: before binding, when any model fails to load (naming each one and why).
    """
    import uvicorn

    if not is_loopback(config.host) and config.api_key is None:
        warn(f"binding to {config.host} without an API key: anyone who can reach this port can use "
             "the models. Set --api-key or IMGCLS_API_KEY, or bind to 127.0.0.1.")
    store = ModelStore.from_config(config)
    errors = store.load_all()
    if errors:
        store.close()
        failed = "; ".join(f"'{name}' ({store.sources[name].path}): {error}"
                           for name, error in errors.items())
        raise ModelError(f"{len(errors)} of {len(store.names)} models failed to load, not serving: {failed}")
    for model in store.loaded():
        info(f"model '{model.name}' version {model.version} ({model.predictor.backend}, "
             f"{len(model.predictor.classes)} classes) from {model.path}")
    app = create_app(config, store=store)
    info(f"web page and API on http://{config.host}:{config.port}/ (OpenAPI at /docs)")
    uvicorn.run(app, host=config.host, port=config.port, log_level="info", server_header=False,
                timeout_graceful_shutdown=10)
