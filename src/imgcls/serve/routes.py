"""The versioned API: predict (default or named model), list models, reload a model."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Annotated

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from ..config import ServeConfig
from ..errors import ImgclsError
from .errors import ApiError, documented
from .schemas import (
    MAX_TOP_K,
    ErrorDetail,
    ImageResult,
    ModelInfo,
    ModelList,
    Prediction,
    PredictJSONRequest,
    PredictResponse,
    Timing,
)
from .store import LoadedModel, ModelStore
from .telemetry import ServerMetrics
from .uploads import all_failed, prepare_uploads, read_uploads

DEFAULT_TOP_K = 3


@dataclass
class ServerState:
    """What every route needs, kept on ``app.state.imgcls``."""

    settings: ServeConfig
    store: ModelStore
    metrics: ServerMetrics

    def model(self, name: str | None) -> LoadedModel:
        try:
            return self.store.get(name)
        except KeyError as exc:
            raise ApiError(404, "unknown_model", exc.args[0]) from None
        except LookupError as exc:
            raise ApiError(503, "not_ready", str(exc), headers={"Retry-After": "1"}) from None


def get_state(request: Request) -> ServerState:
    return request.app.state.imgcls


StateDep = Annotated[ServerState, Depends(get_state)]
ModelName = Annotated[str, PathParam(description="A served model's name (see `GET /v1/models`).")]
TopK = Annotated[int | None, Query(ge=1, le=MAX_TOP_K, description="Labels per image (default 3); "
                                   "a JSON body's `top_k` takes precedence.")]

PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["files"],
        "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"},
                                 "description": "Image files (format read from the bytes)."}}}},
    "application/json": {"schema": PredictJSONRequest.model_json_schema()},
}}}


def api_key_dependencies(api_key: SecretStr | None) -> list:
    """Dependencies that demand the API key on a route; none when the server is open."""
    if api_key is None:
        return []
    secret = api_key.get_secret_value().encode()
    bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer KEY`")
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: KEY`")

    # Plain defaults, not Annotated: postponed annotations cannot name these local objects.
    async def require_api_key(credentials: HTTPAuthorizationCredentials | None = Security(bearer),
                              key: str | None = Security(header)) -> None:
        given = [c for c in (credentials.credentials if credentials else None, key) if c]
        if not any(hmac.compare_digest(c.encode(), secret) for c in given):
            raise ApiError(401, "unauthorized", "Missing or wrong API key: send `Authorization: Bearer KEY` "
                           "or `X-API-Key: KEY`.", headers={"WWW-Authenticate": "Bearer"})

    return [Depends(require_api_key)]


def build_router(settings: ServeConfig) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["models"])
    protected = api_key_dependencies(settings.api_key)
    predict_errors = documented(400, 401, 404, 413, 415, 422, 503) if protected else \
        documented(400, 404, 413, 415, 422, 503)

    @router.post("/predict", response_model=PredictResponse, responses=predict_errors,
                 openapi_extra=PREDICT_BODY, dependencies=protected,
                 summary="Classify with the default model")
    async def predict_default(request: Request, state: StateDep, top_k: TopK = None) -> PredictResponse:
        """Top-k labels for one or many images (multipart `files` or JSON base64 `images`)."""
        return await predict(request, state, None, top_k)

    @router.post("/models/{name}/predict", response_model=PredictResponse, responses=predict_errors,
                 openapi_extra=PREDICT_BODY, dependencies=protected, summary="Classify with a named model")
    async def predict_named(request: Request, state: StateDep, name: ModelName,
                            top_k: TopK = None) -> PredictResponse:
        """Like `POST /v1/predict`, with the model chosen by name."""
        return await predict(request, state, name, top_k)

    @router.get("/models", response_model=ModelList, summary="List the served models")
    async def list_models(state: StateDep) -> ModelList:
        """Every loaded model: version, backend, classes, input size and the run's test metrics."""
        return ModelList(models=[model_info(m, state.store.default) for m in state.store.loaded()],
                         default=state.store.default, auth_required=settings.api_key is not None)

    @router.get("/models/{name}", response_model=ModelInfo, responses=documented(404, 422, 503),
                summary="Describe one model")
    async def get_model(state: StateDep, name: ModelName) -> ModelInfo:
        return model_info(state.model(name), state.store.default)

    @router.post("/models/{name}/reload", response_model=ModelInfo,
                 responses=documented(401, 404, 422) if protected else documented(404, 422),
                 dependencies=protected, summary="Load a model again and swap it in")
    async def reload_model(state: StateDep, name: ModelName) -> ModelInfo:
        """Loads the model's files again, then swaps the new version in atomically; requests
        already running finish on the old version. On failure the old version stays."""
        old = state.model(name)
        try:
            new = await anyio.to_thread.run_sync(state.store.reload, name)
        except ImgclsError as exc:
            raise ApiError(500, "reload_failed", f"Reloading '{name}' failed; still serving version "
                           f"{old.version}: {exc}") from None
        return model_info(new, state.store.default)

    return router


def model_info(model: LoadedModel, default: str) -> ModelInfo:
    d = model.describe
    return ModelInfo(name=model.name, version=model.version, backend=model.predictor.backend,
                     default=model.name == default, classes=list(model.predictor.classes),
                     input_size=int(d["input_size"]), channels=d.get("channels"), resize=str(d["resize"]),
                     roi=str(d["roi"]), loaded_at=model.loaded_at, test_metrics=model.metrics)


async def predict(request: Request, state: ServerState, name: str | None, top_k: int | None
                  ) -> PredictResponse:
    started = time.perf_counter()
    model = state.model(name)  # this version serves the whole request, even across a reload
    uploads, body_top_k = await read_uploads(request, state.settings.max_images_per_request)
    prepared = await anyio.to_thread.run_sync(prepare_uploads, uploads, model.predictor,
                                              state.settings.max_pixels)
    decoded = time.perf_counter()
    errors = [p for p in prepared if isinstance(p, ErrorDetail)]
    images = [p for p in prepared if not isinstance(p, ErrorDetail)]
    if not images:
        raise all_failed(errors)
    proba = await model.batcher.predict(np.stack(images))
    done = time.perf_counter()
    for err in errors:
        state.metrics.errors.labels(err.code).inc()
    state.metrics.images.labels(model.name).inc(len(images))
    k = min(body_top_k or top_k or DEFAULT_TOP_K, len(model.predictor.classes))
    rows = iter(proba)
    results = [ImageResult(filename=up.filename, predictions=[], error=p) if isinstance(p, ErrorDetail)
               else ImageResult(filename=up.filename, predictions=top_k_labels(next(rows), model, k))
               for up, p in zip(uploads, prepared, strict=True)]
    ms = 1000.0
    timing = Timing(decode=round((decoded - started) * ms, 3), inference=round((done - decoded) * ms, 3),
                    total=round((time.perf_counter() - started) * ms, 3))
    return PredictResponse(model=model.name, version=model.version, backend=model.predictor.backend,
                           results=results, timing_ms=timing)


def top_k_labels(row: np.ndarray, model: LoadedModel, k: int) -> list[Prediction]:
    order = np.argsort(-row, kind="stable")[:k]
    classes = model.predictor.classes
    return [Prediction(label=classes[i], probability=float(np.clip(row[i], 0.0, 1.0))) for i in order]
