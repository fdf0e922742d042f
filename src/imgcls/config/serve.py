"""Settings of `imgcls serve`."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from .base import Strict as _Strict


class ServeConfig(_Strict):
    """Settings of `imgcls serve`: which models, where to listen, limits and security.

    Example:
        >>> cfg = ServeConfig(models=["runs/shapes", "digits=runs/digits-svm"], max_wait_ms=0)
        >>> cfg.port, cfg.max_batch
        (8000, 32)
    """

    models: list[str] = Field(
        min_length=1, description="Run folders, model folders or .onnx files, as PATH or NAME=PATH; "
        "the name defaults to the folder name or file stem. The first is the default model.")
    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 exposes the server.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    backend: Literal["auto", "onnx", "torch"] = Field(
        "auto", description="auto: ONNX Runtime when the run has an up-to-date export.")
    precision: Literal["fp32", "int8"] = "fp32"
    threads: int | None = Field(
        None, ge=1, description="Inference threads per model; default: all cores for one model, "
        "max(1, cores // n_models) each for several (so they do not oversubscribe the CPU).")
    export: bool = Field(
        False, description="Export a deep-learning run to ONNX on first use when it has no up-to-date "
        "export (backend auto or onnx), then serve the export; classical runs stay in-process.")
    max_batch: int = Field(32, ge=1, le=1024, description="Most images one micro-batch holds.")
    max_wait_ms: float = Field(
        5.0, ge=0, le=1000, description="How long a micro-batch waits for more requests after its "
        "first; 0 turns micro-batching off (each request runs alone).")
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Largest request body (413 above).")
    max_pixels: int | None = Field(
        40_000_000, gt=0, description="Largest image (width x height), read from the header before "
        "decoding; null disables the check.")
    max_images_per_request: int = Field(64, ge=1, description="More images in one request is a 413.")
    api_key: SecretStr | None = Field(
        default_factory=lambda: os.environ.get("IMGCLS_API_KEY"), validate_default=True,
        description="Required as `Authorization: Bearer KEY` or `X-API-Key: KEY` on predict and "
        "reload; default $IMGCLS_API_KEY; null leaves them open.")
    drift_window: int = Field(
        500, ge=0, description="Images each model version keeps the statistics of (never the images) to "
        "compare with its run's test split; 0 turns the drift watch off.")
    drift_every: int = Field(100, ge=1, description="Compare the window again after this many new images.")
    drift_alpha: float = Field(0.01, gt=0, lt=1, description="False-alarm rate of the drift tests together.")
    keep_requests: int = Field(
        0, ge=0, description="Keep the last N uploaded images per model, as sent, each with its answer, "
        "under keep_dir (for labelling and imgcls monitor); 0 (default): keep no image.")
    keep_dir: str = Field("served-images", description="Folder of the kept images (keep_requests > 0).")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser; empty: CORS off.")

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_key_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value
