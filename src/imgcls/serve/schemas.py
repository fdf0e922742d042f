"""Request and response bodies of the REST API (separate input and output schemas)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_TOP_K = 100
# a real 2 x 2 grey PNG, so that the documented example is a request the server accepts
EXAMPLE_PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAAAAABX3VL4AAAADklEQVR4nGNg+M/wnwEABgAB/4/x/"
               "JoAAAAASUVORK5CYII=")


class PredictJSONRequest(BaseModel):
    """Images sent as JSON: base64 strings (a ``data:image/...;base64,`` prefix is allowed)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"images": [EXAMPLE_PNG], "top_k": 3}]})

    images: list[str] = Field(min_length=1, description="Base64-encoded image files.")
    top_k: int | None = Field(None, ge=1, le=MAX_TOP_K, description="Labels per image; default 3.")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `not_an_image`, `too_many_pixels`.")
    message: str = Field(description="What went wrong, naming the file or field.")


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx answer."""

    error: ErrorDetail


class Prediction(BaseModel):
    label: str
    probability: float = Field(ge=0.0, le=1.0)


class ImageResult(BaseModel):
    filename: str = Field(description="The uploaded file's name, or `images[i]` for JSON.")
    label: str | None = Field(None, description="The model's answer, by its decision rule (a tuned "
                              "threshold or grade cut points; else the most probable class); null on error.")
    predictions: list[Prediction] = Field(description="Top-k labels, most probable first; empty on error.")
    labels: list[str] | None = Field(None, description="A multi-label model's answer: every label at or "
                                     "above its threshold (`label` joins them with '|'); null otherwise.")
    unknown_score: float | None = Field(None, description="How unlike the training images this one is "
                                        "(higher: less alike); null for a model without an unknown detector.")
    unknown: bool | None = Field(None, description="Whether the score is above the model's unknown "
                                 "threshold; with `abstain=true` the label is then `unknown`.")
    error: ErrorDetail | None = Field(None, description="Why this image has no predictions.")


class Timing(BaseModel):
    decode: float = Field(description="Reading, decoding and preparing the images (ms).")
    inference: float = Field(description="Waiting for a micro-batch and running the model (ms).")
    total: float = Field(description="The whole request inside the server (ms).")


class PredictResponse(BaseModel):
    model: str
    version: str
    backend: str
    results: list[ImageResult]
    timing_ms: Timing


class ExplainResponse(BaseModel):
    model: str
    version: str
    filename: str
    method: str = Field(description="`gradcam` for networks, `occlusion` for classical models and "
                        "bare ONNX files.")
    label: str = Field(description="The class explained: `target`, or the predicted label.")
    probability: float = Field(ge=0.0, le=1.0, description="The model's probability of `label`.")
    heatmap: str = Field(description="PNG data URI at the model's input size: the image in grey, red "
                         "where it supports `label`, blue where it speaks against it.")
    seconds: float = Field(description="Time spent computing the map.")


class ModelVersion(BaseModel):
    version: str
    backend: str
    loaded_at: float = Field(description="Unix time this version was loaded.")
    current: bool = Field(description="Serves requests that name no `version`.")


class ModelInfo(BaseModel):
    name: str
    version: str = Field(description="The current version.")
    backend: str
    default: bool = Field(description="Used by `POST /v1/predict`.")
    classes: list[str]
    input_size: int = Field(description="Side of the square the images are resized to.")
    channels: int | None = None
    resize: str
    roi: str
    window: str = Field("file", description="How DICOM uploads become 8 bits (model.window).")
    loaded_at: float = Field(description="Unix time this version was loaded.")
    frames: int | None = Field(None, description="A video model's frames per clip; the page's camera "
                               "streams frames to `POST /v1/models/{name}/stream`. None for image models.")
    browser: bool = Field(False, description="The page can run this version in the browser "
                          "(`GET /v1/models/{name}/browser`).")
    test_metrics: dict[str, float] | None = Field(
        None, description="Scalar test metrics from the run's metrics.json, when present.")
    versions: list[ModelVersion] = Field(
        default_factory=list, description="The loaded versions, current first: after a reload the "
        "previous one stays loaded, reachable with `?version=` on predict.")


class ModelList(BaseModel):
    models: list[ModelInfo]
    default: str
    auth_required: bool = Field(description="Whether predict needs an API key (reload always does).")
    errors: dict[str, str] = Field(
        default_factory=dict, description="Models that failed to load, by name, with the reason.")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "loading", "failed"]
    models: dict[str, Literal["loaded", "loading", "failed"]]
    errors: dict[str, str] = Field(default_factory=dict)


class BrowserModel(BaseModel):
    """``GET /v1/models/{name}/browser``: what a page needs to run the model itself."""

    model: str
    version: str
    model_url: str = Field(description="The ONNX graph (uint8 NHWC in, probabilities out).")
    sha256: str = Field(description="Of the graph's bytes, as loaded by the server.")
    bytes: int
    runtime_url: str = Field(description="Folder of onnxruntime-web's WebAssembly files and imgcls-web.js.")
    metadata: dict = Field(description="The graph's imgcls metadata: classes, image spec, decision, unknown.")


class DriftStatus(BaseModel):
    """``GET /v1/models/{name}/drift``: the watch on what this model version was sent."""

    model: str
    version: str
    status: str = Field(description="ok, drift, waiting (fewer images than a comparison needs, or "
                        "none made yet), loading_reference or no_reference.")
    reason: str | None = Field(None, description="Why there is no reference.")
    window: int = Field(description="Images whose statistics are kept (serve.drift_window).")
    every: int = Field(description="A comparison after this many new images (serve.drift_every).")
    images_seen: int
    images_held: int
    reference: dict | None = Field(None, description="The reference: the run's test split and its size.")
    last: dict | None = Field(None, description="The last comparison: its score (the largest KS "
                              "distance), drift, the tests that moved and each test's statistic and p-value.")
    history: list[dict] = Field(default_factory=list, description="Earlier comparisons, oldest first.")
