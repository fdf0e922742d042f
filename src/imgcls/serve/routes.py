"""The versioned API: predict (default or named model), list models, reload a model."""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import Annotated

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.security import APIKeyHeader, APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from ..config import ServeConfig
from ..core.errors import ImgclsError
from ..data.dataset import split_labels
from ..deploy.tables import UNKNOWN
from .errors import ApiError, documented
from .heatmaps import HeatmapMaker
from .keeping import RequestKeeper
from .schemas import (
    MAX_TOP_K,
    DriftStatus,
    ErrorDetail,
    ExplainResponse,
    ImageResult,
    ModelInfo,
    ModelList,
    ModelVersion,
    Prediction,
    PredictJSONRequest,
    PredictResponse,
    Timing,
)
from .store import LoadedModel, ModelStore, NotLoaded, UnknownModel, UnknownVersion, split_outputs
from .telemetry import ServerMetrics
from .uploads import all_failed, decode_uploads, read_uploads

DEFAULT_TOP_K = 3

log = logging.getLogger("imgcls.serve")


@dataclass
class ServerState:
    """What every route needs, kept on ``app.state.imgcls``."""

    settings: ServeConfig
    store: ModelStore
    metrics: ServerMetrics
    heatmaps: HeatmapMaker = field(default_factory=HeatmapMaker)
    keeper: RequestKeeper | None = None  # serve.keep_requests: the last uploads, opt-in

    def model(self, name: str | None, version: str | None = None) -> LoadedModel:
        """The model to answer with, or the API error saying why there is none."""
        try:
            return self.store.get(name, version)
        except UnknownModel as exc:
            raise ApiError(404, "unknown_model", str(exc)) from None
        except UnknownVersion as exc:
            raise ApiError(404, "unknown_version", str(exc)) from None
        except NotLoaded as exc:
            if exc.failed:
                target = name or self.store.default
                raise ApiError(503, "load_failed", f"{exc} (fix its files, then POST /v1/models/{target}"
                               "/reload)") from None
            raise ApiError(503, "not_ready", str(exc), headers={"Retry-After": "1"}) from None


def get_state(request: Request) -> ServerState:
    return request.app.state.imgcls


StateDep = Annotated[ServerState, Depends(get_state)]
ModelName = Annotated[str, PathParam(description="A served model's name (see `GET /v1/models`).")]
TopK = Annotated[int | None, Query(ge=1, le=MAX_TOP_K, description="Labels per image (default 3); "
                                   "a JSON body's `top_k` takes precedence.")]
Target = Annotated[str | None, Query(max_length=256, description="Class to explain; default the "
                                     "predicted one.")]
Abstain = Annotated[bool, Query(description="Answer `unknown` as the label of images above the model's "
                                 "unknown threshold (a model trained with a validation split has one).")]
Version = Annotated[str | None, Query(max_length=64, description="A loaded version of the model (see "
                                      "`versions` in `GET /v1/models`); default: the current one.")]

IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/tiff", "image/webp")


def predict_body(max_images: int) -> dict:
    """The request body the predict and explain routes accept, as OpenAPI says it: one to
    ``max_images`` image files (the format is read from the bytes; other content is a 415)."""
    files = {"type": "array", "minItems": 1, "maxItems": max_images,
             "items": {"type": "string", "format": "binary"},
             "description": f"1 to {max_images} image files: {', '.join(IMAGE_MEDIA_TYPES)} (the format "
                            "is read from the bytes, never from the part's Content-Type or file name)."}
    json_body = PredictJSONRequest.model_json_schema()
    json_body["properties"]["images"].update(maxItems=max_images)
    json_body["properties"]["images"]["items"].update(
        format="byte", contentEncoding="base64", contentMediaType="image/*",
        description=f"A base64-encoded image file ({', '.join(IMAGE_MEDIA_TYPES)}).")
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["files"], "properties": {"files": files}},
            "encoding": {"files": {"contentType": ", ".join(IMAGE_MEDIA_TYPES)}}},
        "application/json": {"schema": json_body},
    }}}


def api_key_dependencies(api_key: SecretStr | str | None, in_query: bool = False) -> list:
    """Dependencies that demand the API key on a route; none when the server is open.
    ``in_query`` also takes ``?key=KEY`` (a page's ``<img src>`` cannot send headers)."""
    if api_key is None:
        return []
    secret = (api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key).encode()
    bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer KEY`")
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: KEY`")
    query = APIKeyQuery(name="key", auto_error=False, description="`?key=KEY`")

    # Plain defaults, not Annotated: postponed annotations cannot name these local objects.
    async def require_api_key(credentials: HTTPAuthorizationCredentials | None = Security(bearer),
                              key: str | None = Security(header),
                              key_in_query: str | None = Security(query)) -> None:
        given = [c for c in (credentials.credentials if credentials else None, key,
                             key_in_query if in_query else None) if c]
        if not any(hmac.compare_digest(c.encode(), secret) for c in given):
            raise ApiError(401, "unauthorized", "Missing or wrong API key: send `Authorization: Bearer KEY` "
                           "or `X-API-Key: KEY`" + (" (or ?key=KEY)." if in_query else "."),
                           headers={"WWW-Authenticate": "Bearer"})

    return [Depends(require_api_key)]


def build_router(settings: ServeConfig) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["models"])
    protected = api_key_dependencies(settings.api_key)
    body = predict_body(settings.max_images_per_request)
    predict_errors = documented(400, 401, 404, 409, 413, 415, 422, 503) if protected else \
        documented(400, 404, 409, 413, 415, 422, 503)

    @router.post("/predict", response_model=PredictResponse, responses=predict_errors,
                 openapi_extra=body, dependencies=protected,
                 summary="Classify with the default model")
    async def predict_default(request: Request, state: StateDep, top_k: TopK = None,
                              abstain: Abstain = False) -> PredictResponse:
        """Top-k labels for one or many images (multipart `files` or JSON base64 `images`)."""
        return await predict(request, state, state.model(None), top_k, abstain)

    @router.post("/models/{name}/predict", response_model=PredictResponse, responses=predict_errors,
                 openapi_extra=body, dependencies=protected, summary="Classify with a named model")
    async def predict_named(request: Request, state: StateDep, name: ModelName,
                            top_k: TopK = None, version: Version = None,
                            abstain: Abstain = False) -> PredictResponse:
        """Like `POST /v1/predict`, with the model chosen by name, and optionally one of its loaded
        versions (the current one, or the previous one kept after a reload)."""
        return await predict(request, state, state.model(name, version), top_k, abstain)

    @router.post("/models/{name}/explain", response_model=ExplainResponse, responses=predict_errors,
                 openapi_extra=predict_body(1), dependencies=protected,
                 summary="Heat map of why a model chose a label")
    async def explain_named(request: Request, state: StateDep, name: ModelName, target: Target = None,
                            version: Version = None) -> ExplainResponse:
        """One image in, a heat-map overlay out: Grad-CAM for networks, occlusion for classical
        models and bare ONNX files (slower: seconds). `imgcls explain` gives every method."""
        return await explain_one(request, state, state.model(name, version), target)

    @router.get("/models", response_model=ModelList, summary="List the served models")
    async def list_models(state: StateDep) -> ModelList:
        """Every loaded model: versions, backend, classes, input size and the run's test metrics;
        and the models that failed to load, with the reason."""
        return ModelList(models=[model_info(m, state.store) for m in state.store.loaded()],
                         default=state.store.default, auth_required=settings.api_key is not None,
                         errors=dict(state.store.errors))

    @router.get("/models/{name}", response_model=ModelInfo, responses=documented(404, 422, 503),
                summary="Describe one model")
    async def get_model(state: StateDep, name: ModelName) -> ModelInfo:
        return model_info(state.model(name), state.store)

    @router.get("/models/{name}/drift", response_model=DriftStatus, responses=documented(404, 409, 503),
                summary="How the images a model answered compare with its test split")
    async def get_drift(state: StateDep, name: ModelName, check: bool = False) -> DriftStatus:
        """The statistics of the last ``serve.drift_window`` images against the run's test split:
        the last comparison, its history and what moved. ``check=true`` compares now."""
        model = state.model(name)
        if model.watch is None:
            raise ApiError(409, "drift_off", "The drift watch is off (serve.drift_window=0).")
        if check:
            await anyio.to_thread.run_sync(lambda: model.watch.wait_ready(60) and model.watch.check())
        return DriftStatus(**model.watch.status())

    @router.post("/models/{name}/reload", response_model=ModelInfo,
                 responses=documented(401, 404, 422) if protected else documented(403, 404, 422),
                 dependencies=protected, summary="Load a model again and swap it in")
    async def reload_model(state: StateDep, name: ModelName) -> ModelInfo:
        """Loads the model's files again, then makes the new version current atomically; requests
        already running finish on the version they started with, and the replaced version stays
        loaded as the previous one. Works on a model that failed to load. On failure the loaded
        versions stay (500 `reload_failed`). Needs a configured API key: 403 without one."""
        if settings.api_key is None:  # a bodyless POST is a CORS simple request: any site could send it
            raise ApiError(403, "reload_disabled", "Reload needs an API key: set IMGCLS_API_KEY (or "
                           "--api-key) to enable reload.")
        if name not in state.store.sources:
            state.model(name)  # the 404 naming the served models
        before = state.store.versions(name)
        try:
            new = await anyio.to_thread.run_sync(state.store.reload, name)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the loaded versions serving
            if not isinstance(exc, ImgclsError):
                log.exception("reloading model '%s' failed", name)
            still = f"still serving version {before[0].version}" if before else "no version is loaded"
            raise ApiError(500, "reload_failed", f"Reloading '{name}' failed; {still}: "
                           f"{str(exc) or type(exc).__name__}") from None
        return model_info(new, state.store)

    return router


def model_info(model: LoadedModel, store: ModelStore) -> ModelInfo:
    d = model.describe
    versions = store.versions(model.name) or [model]
    return ModelInfo(name=model.name, version=model.version, backend=model.predictor.backend,
                     default=model.name == store.default, classes=list(model.predictor.classes),
                     input_size=int(d["input_size"]), channels=d.get("channels"), resize=str(d["resize"]),
                     roi=str(d["roi"]), window=str(d.get("window", "file")), loaded_at=model.loaded_at,
                     browser=model.browser_refusal is None,
                     frames=int(model.predictor.spec.frames) or None,
                     test_metrics=model.metrics,
                     versions=[ModelVersion(version=v.version, backend=v.predictor.backend,
                                            loaded_at=v.loaded_at, current=i == 0)
                               for i, v in enumerate(versions)])


async def predict(request: Request, state: ServerState, model: LoadedModel, top_k: int | None,
                  abstain: bool = False) -> PredictResponse:
    """Answer with ``model``: this version serves the whole request, even across a reload."""
    started = time.perf_counter()
    if abstain and model.predictor.unknown is None:
        raise ApiError(409, "no_unknown_detector", f"Model '{model.name}' has no unknown detector, so it "
                       "cannot abstain; drop `abstain` or serve a model trained with a validation split.")
    uploads, body_top_k = await read_uploads(request, state.settings.max_images_per_request)
    stats: list | None = [] if model.watch is not None else None
    prepared = await anyio.to_thread.run_sync(decode_uploads, uploads, model.predictor,
                                              state.settings.max_pixels, stats)
    decoded = time.perf_counter()
    errors = [p for p in prepared if isinstance(p, ErrorDetail)]
    images = [p for p in prepared if not isinstance(p, ErrorDetail)]
    if not images:
        raise all_failed(errors)
    proba, scores = split_outputs(np.asarray(await model.batcher.predict(np.stack(images))), model.predictor)
    proba = check_probabilities(proba, model, len(images))
    flags = model.predictor.unknown_flags(scores, len(images))
    if model.watch is not None:
        model.watch.add(np.stack(stats), proba)
    done = time.perf_counter()
    for err in errors:
        state.metrics.errors.labels(err.code).inc()
    state.metrics.images.labels(model.name).inc(len(images))
    k = min(body_top_k or top_k or DEFAULT_TOP_K, len(model.predictor.classes))
    answers = iter(zip(proba, model.predictor.decide(proba), flags,
                       scores if scores is not None else [None] * len(images), strict=True))
    results = []
    for up, p in zip(uploads, prepared, strict=True):
        if isinstance(p, ErrorDetail):
            results.append(ImageResult(filename=up.filename, predictions=[], error=p))
            continue
        row, label, flagged, score = next(answers)
        known = score is not None
        results.append(ImageResult(
            filename=up.filename, label=UNKNOWN if abstain and flagged else str(label),
            labels=[] if model.predictor.multilabel and abstain and flagged else
            list(split_labels(label)) if model.predictor.multilabel else None,
            predictions=top_k_labels(row, model, k), unknown_score=float(score) if known else None,
            unknown=bool(flagged) if known else None))
    if state.keeper is not None:
        state.keeper.keep(model.name, model.version, [
            (up.data, {"filename": up.filename, "label": r.label, "unknown_score": r.unknown_score,
                       "confidence": r.predictions[0].probability if r.predictions else None})
            for up, r in zip(uploads, results, strict=True) if r.error is None])
    ms = 1000.0
    timing = Timing(decode=round((decoded - started) * ms, 3), inference=round((done - decoded) * ms, 3),
                    total=round((time.perf_counter() - started) * ms, 3))
    return PredictResponse(model=model.name, version=model.version, backend=model.predictor.backend,
                           results=results, timing_ms=timing)


async def explain_one(request: Request, state: ServerState, model: LoadedModel, target: str | None
                      ) -> ExplainResponse:
    uploads, _ = await read_uploads(request, 1)
    prepared = await anyio.to_thread.run_sync(decode_uploads, uploads, model.predictor,
                                              state.settings.max_pixels)
    if isinstance(prepared[0], ErrorDetail):
        raise all_failed(prepared)
    explained = await anyio.to_thread.run_sync(state.heatmaps.explain, model, prepared[0], target)
    return ExplainResponse(model=model.name, version=model.version, filename=uploads[0].filename,
                           **explained)


def check_probabilities(proba: np.ndarray, model: LoadedModel, n_images: int) -> np.ndarray:
    """``proba`` when it is one finite row per image; else a clear 500 ``model_error``."""
    n_classes = len(model.predictor.classes)
    if proba.shape != (n_images, n_classes):
        problem = f"probabilities of shape {proba.shape} for {n_images} images and {n_classes} classes"
    elif not np.isfinite(proba).all():
        bad = int((~np.isfinite(proba)).any(axis=1).sum())
        problem = f"non-finite probabilities (NaN or infinity) for {bad} of {n_images} images"
    else:
        return proba
    log.error("model '%s' version %s returned %s", model.name, model.version, problem)
    raise ApiError(500, "model_error", f"Model '{model.name}' version {model.version} returned {problem}; "
                   "no predictions were made.")


def top_k_labels(row: np.ndarray, model: LoadedModel, k: int) -> list[Prediction]:
    order = np.argsort(-row, kind="stable")[:k]
    classes = model.predictor.classes
    return [Prediction(label=classes[i], probability=float(np.clip(row[i], 0.0, 1.0))) for i in order]
