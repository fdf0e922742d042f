"""``create_app(settings)``: the FastAPI application, its operational routes and the web page.

Example:
    >>> from imgcls.config import ServeConfig
    >>> app = create_app(ServeConfig(models=["runs/shapes"]))      # doctest: +SKIP
    >>> # uvicorn.run(app) - or `imgcls serve runs/shapes`
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from contextlib import asynccontextmanager
from importlib import resources

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ..config import ServeConfig
from ..core.version import __version__
from .browser import add_runtime_routes, build_browser_router
from .errors import install_handlers
from .keeping import RequestKeeper
from .routes import ServerState, StateDep, build_router
from .schemas import Health, Readiness
from .store import ModelStore
from .streams import StreamSessions, build_stream_router
from .telemetry import BodyLimitMiddleware, ServerMetrics, TelemetryMiddleware

log = logging.getLogger("imgcls.serve")

DESCRIPTION = """Image classification over HTTP with imgcls models.

Send images to `POST /v1/predict` as multipart `files` or JSON base64 `images`.
Errors always answer `{"error": {"code": ..., "message": ...}}`.
"""


def create_app(settings: ServeConfig, store: ModelStore | None = None) -> FastAPI:
    """Build the server for ``settings``; models load in the background unless ``store`` is loaded.

    Args:
        settings: What to serve and how (models, limits, API key, CORS).
        store: Models already loaded (``run_server`` loads them first to fail fast); by default
            a store is made from ``settings.models`` and loaded after startup, while
            ``/readyz`` answers 503.
    """
    store = store or ModelStore.from_config(settings)
    metrics = ServerMetrics()
    store.on_batch = metrics.observe_batch
    keeper = RequestKeeper(settings.keep_dir, settings.keep_requests) if settings.keep_requests else None
    state = ServerState(settings, store, metrics, keeper=keeper)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loading = None if store.ready else asyncio.create_task(_load(store))
        try:
            yield
        finally:
            store.close()
            if keeper is not None:
                keeper.close()
            if loading is not None and not loading.done():
                loading.cancel()

    app = FastAPI(title="imgcls", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None)
    app.state.imgcls = state
    app.state.metrics = metrics
    install_handlers(app)
    app.include_router(build_router(settings))
    app.include_router(build_browser_router(settings))
    app.include_router(build_stream_router(settings, StreamSessions()))
    _add_operational_routes(app)
    add_runtime_routes(app)
    # Added last = outermost: telemetry sees every answer, CORS headers reach error answers too.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"], max_age=600)
    app.add_middleware(TelemetryMiddleware, metrics=metrics)
    return app


async def _load(store: ModelStore) -> None:
    """Load the models in a thread; each failure is recorded per model (``/readyz`` reports it)."""
    try:
        await anyio.to_thread.run_sync(store.load_all)
    except Exception:  # noqa: BLE001 - the server stays up to say so
        log.exception("loading the models failed")


def _add_operational_routes(app: FastAPI) -> None:
    page, csp = _page()

    @app.get("/healthz", response_model=Health, tags=["operations"], summary="Liveness")
    async def healthz() -> Health:
        """200 while the process answers at all."""
        return Health()

    @app.get("/readyz", response_model=Readiness, tags=["operations"], summary="Readiness",
             responses={503: {"model": Readiness, "description": "Models still loading or failed"}})
    async def readyz(state: StateDep) -> Response:
        """200 once every model is loaded, 503 before (or while one has failed to load)."""
        store = state.store
        loaded = {m.name for m in store.loaded()}
        models = {n: "loaded" if n in loaded else "failed" if n in store.errors else "loading"
                  for n in store.names}
        status = "ready" if store.ready else "failed" if store.errors else "loading"
        body = Readiness(status=status, models=models, errors=dict(store.errors))
        return JSONResponse(body.model_dump(), status_code=200 if store.ready else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics",
             response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics(state: StateDep) -> Response:
        """Requests, latency, micro-batch sizes, errors by code, images predicted, and each model
        version's last drift comparison."""
        m = state.metrics
        for gauge in (m.model_info, m.drift_score, m.drift):
            gauge.clear()
        for name in state.store.names:
            for model in state.store.versions(name):
                m.model_info.labels(model.name, model.version, model.predictor.backend).set(1)
                last = model.watch.last if model.watch is not None else None
                if last is not None:
                    m.drift_score.labels(model.name, model.version).set(float(last["score"]))
                    m.drift.labels(model.name, model.version).set(int(last["drift"]))
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={
            "Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"})


def _page() -> tuple[str, str]:
    """The web page and a Content-Security-Policy that allows only its own inline script and style."""
    html = resources.files("imgcls.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'"
                        for b in blocks)

    # 'self' and wasm-unsafe-eval: the in-browser mode's scripts and WebAssembly, from /web/ only
    csp = (f"default-src 'none'; script-src 'self' 'wasm-unsafe-eval' {hashes('script')}; "
           f"style-src {hashes('style')}; "
           "img-src 'self' blob: data:; media-src 'self' blob: mediastream:; connect-src 'self'; "
           "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
    return html, csp
