"""In-browser inference for the page: a served model's ONNX graph and onnxruntime-web's
WebAssembly runtime, so that the page can classify on the visitor's device instead of
sending the image (the same graph and preparation as ``imgcls export --format web``).

``GET /v1/models/{name}/browser`` says where the graph is and what it expects;
``GET /v1/models/{name}/model.onnx`` is the graph, exactly the bytes this version loaded
(a 409 if the file changed on disk since); ``GET /web/{file}`` serves the runtime.
"""

from __future__ import annotations

import hashlib

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from fastapi.responses import Response

from ..config import ServeConfig
from ..core.errors import ConfigError
from ..deploy.exporting.web_format import RUNTIME_FILES, WEB_SOURCES, runtime_dir
from .errors import ApiError, documented
from .routes import ModelName, StateDep, Version, api_key_dependencies
from .schemas import BrowserModel
from .store import LoadedModel

PAGE_SCRIPT = "imgcls-web.js"
MEDIA_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm"}


def build_browser_router(settings: ServeConfig) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["models"])
    protected = api_key_dependencies(settings.api_key)  # the graph is as private as its answers
    errors = documented(401, 404, 409, 503) if protected else documented(404, 409, 503)

    @router.get("/models/{name}/browser", response_model=BrowserModel, responses=errors,
                dependencies=protected, summary="What a page needs to run a model in the browser")
    async def browser_model(state: StateDep, name: ModelName, version: Version = None) -> BrowserModel:
        """The model's ONNX graph (URL, digest, size) and metadata, for the page's in-browser
        mode; a 409 `no_browser_model` when this version is not an ONNX export."""
        model = _browsable(state.model(name, version))
        return BrowserModel(model=model.name, version=model.version,
                            model_url=f"/v1/models/{model.name}/model.onnx?version={model.version}",
                            sha256=model.predictor.onnx_sha256,
                            bytes=model.predictor.onnx_file.stat().st_size,
                            runtime_url="/web/", metadata=model.predictor.metadata)

    @router.get("/models/{name}/model.onnx", responses={**errors, 200: {"content": {
                "application/octet-stream": {}}}}, response_class=Response, dependencies=protected,
                summary="The model's ONNX graph")
    async def model_onnx(state: StateDep, name: ModelName, version: Version = None) -> Response:
        model = _browsable(state.model(name, version))
        data = await anyio.to_thread.run_sync(_graph_bytes, model)
        return Response(data, media_type="application/octet-stream", headers={
            "ETag": f'"{model.predictor.onnx_sha256}"', "Cache-Control": "private, no-cache",
            "X-Content-Type-Options": "nosniff"})

    return router


def add_runtime_routes(app: FastAPI) -> None:
    """``/web/{file}``: onnxruntime-web's files and the page's inference script."""
    @app.get("/web/{file}", include_in_schema=False)
    async def runtime_file(file: str) -> Response:
        if file == PAGE_SCRIPT:
            path = WEB_SOURCES / PAGE_SCRIPT
        elif file in RUNTIME_FILES:
            try:
                path = runtime_dir() / file
            except ConfigError as exc:
                raise ApiError(404, "no_web_runtime", str(exc)) from None
        else:
            raise ApiError(404, "not_found", f"No file '{file}' here.")
        data = await anyio.to_thread.run_sync(path.read_bytes)
        return Response(data, media_type=MEDIA_TYPES[path.suffix], headers={
            "Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})


def _browsable(model: LoadedModel) -> LoadedModel:
    refusal = model.browser_refusal
    if refusal is not None:
        raise ApiError(409, "no_browser_model", refusal)
    return model


def _graph_bytes(model: LoadedModel) -> bytes:
    try:
        data = model.predictor.onnx_file.read_bytes()
    except OSError as exc:
        raise ApiError(409, "graph_changed", f"The graph of '{model.name}' cannot be read ({exc}); reload "
                       "the model.") from None
    if hashlib.sha256(data).hexdigest() != model.predictor.onnx_sha256:
        raise ApiError(409, "graph_changed", f"The ONNX file of '{model.name}' changed on disk since version "
                       f"{model.version} was loaded; POST /v1/models/{model.name}/reload, then try again.")
    return data
