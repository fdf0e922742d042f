"""One typed configuration: defaults in code, then a YAML file, then ``key=value`` overrides.

Example:
    >>> cfg = resolve_config(overrides=["model.name=random_forest", "split.test=0.2"])
    >>> cfg.model.name, cfg.split.test
    ('random_forest', 0.2)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from .core.errors import ConfigError
from .core.registry import did_you_mean

PIL_DEFAULT_MAX_PIXELS = 89_478_485
DECODE_TIMEOUT = 60.0  # seconds one file may take; a legitimate 89-megapixel image takes a few


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    _key_prefix: ClassVar[str] = ""  # how users name the fields, e.g. 'explain.' in key=value overrides

    @classmethod
    def from_options(cls, **values: Any) -> Self:
        """Validate like the constructor, raising ConfigError with the field's name."""
        try:
            return cls(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = cls._key_prefix + ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"The '{field}' parameter {err['msg'].lower()}. "
                              f"Got {err.get('input')!r}.") from None


class DataConfig(_Strict):
    """Where images come from and how they are decoded."""

    source: str = Field("shapes", description="Folder, CSV/Parquet manifest, or built-in name.")
    allow_outside_root: bool = Field(
        True, description="Accept manifest paths outside the manifest's folder (absolute, or with ..); "
        "false refuses them, for a manifest from an untrusted source.")
    max_image_pixels: int | None = Field(
        PIL_DEFAULT_MAX_PIXELS,
        gt=0,
        description="Decompression-bomb limit; larger images are skipped. null disables it.",
    )
    decode_timeout: float | None = Field(
        DECODE_TIMEOUT, gt=0,
        description="Seconds one file may take to decode before it is skipped; null: no limit.")


class SplitConfig(_Strict):
    """How rows are assigned to train / val / test."""

    test: float = Field(0.25, ge=0.0, lt=1.0, description="Fraction held out for testing.")
    val: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of the rest for validation.")
    seed: int = 0
    stratify: bool = Field(True, description="Keep class proportions in every split.")
    group_by: str | None = Field(None, description="Metadata column: no group straddles splits.")
    column: str | None = Field(
        "split", description="Manifest column with train/val/test to honour; null ignores it."
    )


class ModelConfig(_Strict):
    """Which model family, its features and its hyper-parameters."""

    name: str = Field("auto", description="Registered model family (see `imgcls models`); auto chooses "
                      "from the data: an SVM on pixels for tiny images, else a linear probe on a "
                      "pretrained backbone (an SVM on features without pretrained weights).")
    features: str = Field(
        "auto", description="Classical features joined by '+', e.g. hog+lbp+color; auto picks."
    )
    image_size: int | Literal["auto"] = Field(
        "auto", description="Square side images are resized to; auto follows the data."
    )
    resize: Literal["squash", "crop", "pad"] = "squash"
    roi: Literal["none", "otsu"] = Field(
        "none", description="Crop each image to its foreground box (Otsu threshold) before resizing."
    )
    pretrained: str = Field(
        "auto", description="Deep models: auto (offline weights), none, hub, or a weights file path."
    )
    mode: Literal["finetune", "linear-probe"] = Field(
        "finetune",
        description="Deep models: finetune (train end to end) or linear-probe (frozen backbone).",
    )
    class_weight: Literal["balanced"] | None = None
    scaler: Literal["auto", "standard", "none"] = Field(
        "auto", description="Feature standardisation; auto skips it for raw pixels alone."
    )
    augment: str = Field(
        "auto",
        description="Training augmentation joined by '+'. Deep: crop, hflip, vflip, rot90, rotate, "
        "jitter, trivial, randaug, erase; classical: extra hflip/vflip/rot180 copies; auto picks.",
    )
    feature_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-extractor options, e.g. lbp: {grid: 4}."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Estimator hyper-parameters, e.g. C: 10."
    )


class TrainConfig(_Strict):
    """How deep models are fine-tuned (Lightning): schedule, regularisation, devices."""

    _key_prefix: ClassVar[str] = "train."

    epochs: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description="Passes over the training data; auto by model.")
    batch_size: int = Field(32, ge=1)
    lr: Annotated[float, Field(gt=0)] | Literal["auto"] = Field(
        "auto", description="Peak AdamW learning rate; auto by family.")
    weight_decay: float = Field(0.05, ge=0)
    warmup_epochs: float = Field(0.5, ge=0, description="Linear warm-up, then cosine decay to zero.")
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    clip_grad: float = Field(1.0, ge=0, description="Clip the gradient norm to this; 0 turns it off.")
    mixup: float = Field(0.0, ge=0, description="MixUp alpha; 0 turns it off.")
    cutmix: float = Field(0.0, ge=0, description="CutMix alpha; 0 turns it off.")
    ema: bool = Field(False, description="Keep an exponential moving average of the weights.")
    ema_decay: float = Field(0.998, gt=0, lt=1)
    freeze: int | Literal["auto"] = Field(
        "auto", description="Leading layer groups kept frozen; auto freezes the high-resolution "
        "stages (output stride <= 8) of pretrained CNNs, nothing when training from scratch.",
    )
    head_init: Literal["auto", "probe", "random"] = Field(
        "auto", description="probe: start from a logistic regression on the frozen embeddings "
        "(LP-FT); auto: probe for pretrained models, random from scratch.",
    )
    freeze_bn: bool | Literal["auto"] = Field(
        "auto", description="Keep every batch-norm layer's statistics frozen (eval mode); auto: "
        "yes for pretrained models, whose probe-initialised head expects those statistics.",
    )
    imbalance: Literal["auto", "weights", "sqrt", "sampler", "none"] = Field(
        "auto", description="Class imbalance: inverse-frequency loss weights, their square root, "
        "a balanced sampler, or none; auto: sqrt from a 3:1 ratio up.",
    )
    patience: int = Field(5, ge=0, description="Early stopping on the validation split; 0 turns it off.")
    monitor: Literal["val_accuracy", "val_macro_f1", "val_loss"] = "val_accuracy"
    tta: Literal["none", "hflip", "hflip+vflip"] = Field("none", description="Test-time augmentation.")
    accelerator: str = Field("auto", description="Lightning accelerator: auto, cpu, gpu, mps.")
    devices: int | str = Field("auto", description="Lightning devices: auto, a count, or '0,1'.")
    num_nodes: int = Field(1, ge=1)
    strategy: str = Field("auto", description="Lightning strategy: auto, ddp, fsdp, ...")
    precision: str = Field("auto", description="auto: bf16-mixed on GPUs that have it, else 32-true.")
    profile: bool = Field(False, description="Log images/s of data loading, forward and backward.")
    logger: Literal["csv", "tensorboard", "mlflow"] = Field(
        "csv", description="Experiment log of the run, both schools: csv (the run's logs/ and "
        "metrics.json), tensorboard (logs/tensorboard/), mlflow (train.tracking_uri).")
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI (a server or a database); default "
        "sqlite:///<folder of the run>/mlflow.db, shared by the runs beside it.")

    RUN_FIELDS: ClassVar[tuple[str, ...]] = ("logger", "tracking_uri")  # about the run, not the model


class CheckConfig(_Strict):
    """Thresholds of `imgcls check`."""

    near_threshold: int = Field(4, ge=0, le=32, description="Max differing bits of 64-bit pHashes.")
    near_similarity: float = Field(
        0.9, ge=-1, le=1,
        description="Min correlation of thumbnails (minus the dataset mean) for near duplicates.",
    )
    labels: bool = Field(True, description="Run the label-issue pass (cleanlab).")
    keep: Literal["first", "largest"] = Field(
        "first", description="Which member of a duplicate group the clean manifest keeps."
    )
    min_side: int = Field(8, ge=1, description="Images with a shorter side are tiny (also < 1/4 median).")
    max_aspect: float = Field(4.0, gt=1, description="Longer/shorter side above this is extreme.")
    outlier_z: float = Field(5.0, gt=0, description="Robust SDs from the dataset median for outliers.")
    imbalance_ratio: float = Field(3.0, gt=1, description="Largest/smallest class above this warns.")
    test_fraction: float = Field(0.25, ge=0, lt=1, description="Split used to judge small classes.")


class ExplainConfig(_Strict):
    """Settings of `imgcls explain` and of the explained worst errors in a run's report."""

    _key_prefix: ClassVar[str] = "explain."

    methods: str = Field(
        "auto", description="Methods joined by '+', e.g. gradcam+lime; auto: every method the model's "
        "school supports (see `imgcls explain --list`).")
    lime_samples: int = Field(500, ge=10, description="Perturbed images LIME scores per explanation.")
    shap_evals: int = Field(500, ge=10, description="Model evaluations the SHAP partition explainer may use.")
    superpixels: int = Field(50, ge=2, description="SLIC segments LIME perturbs.")
    ig_steps: int = Field(32, ge=2, description="Integrated Gradients: points on the path from the baseline.")
    occlusion_window: float = Field(
        0.125, gt=0, le=0.5, description="Occlusion: square patch side as a fraction of the image side.")
    curve_steps: int = Field(20, ge=2, le=200, description="Deletion/insertion: points on each curve.")
    report_errors: int = Field(
        4, ge=0, le=32, description="Worst test errors explained in a run's report.html (0: none).")
    seed: int = 0


class AuditConfig(_Strict):
    """Settings of `imgcls audit`: the per-group metric gate and its statistics."""

    group_by: str = Field(description="Metadata column whose values are the groups.")
    metric: str = Field(
        "accuracy", description="Metric of the gate: accuracy, balanced_accuracy, precision, recall, "
        "f1 (macro), or per class recall:LABEL, fpr:LABEL, fnr:LABEL, selection_rate:LABEL.")
    max_gap: float = Field(0.05, ge=0, le=1, description="Largest allowed difference between groups.")
    min_group_size: int = Field(
        30, ge=1,
        description="Groups (or group x class cells, at a third of this) below it are flagged small.")
    n_boot: int = Field(1000, ge=0, description="Bootstrap resamples for the 95 % intervals (0: none).")
    seed: int = 0


class RunConfig(_Strict):
    """Everything one training run needs; saved as the run's config.yaml."""

    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    check: CheckConfig = Field(default_factory=CheckConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    out: str | None = Field(None, description="Run folder; default runs/<data>-<model>[-N].")
    n_jobs: int = Field(0, description="Worker processes/threads; 0 means one per CPU core.")
    cache: bool = Field(True, description="Cache decoded images and features on disk.")
    cache_dir: str | None = Field(None, description="Default $IMGCLS_CACHE_DIR or ~/.cache/imgcls.")


_FREE_FORM = {"model.params", "model.feature_params"}  # dict fields whose keys are not checked here


def _known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        keys.append(key)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_known_keys(annotation, f"{key}."))
    return keys


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=x"]`` into ``{"a.b": 1, "c": "x"}``; values are YAML scalars."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Override '{item}' must look like key=value, e.g. split.test=0.2.")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        parsed[key.strip()] = _number_or_same(value)
    return parsed


def _number_or_same(value: Any) -> Any:
    """YAML 1.1 reads '1e-3' as a string; a user typing it means a number."""
    if isinstance(value, str):
        try:
            return float(value) if value.strip().lower() not in ("nan", "inf", "-inf") else value
        except ValueError:
            return value
    return value


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    known = _known_keys(RunConfig)
    free_parent = next((p for p in _FREE_FORM if key.startswith(p + ".")), None)
    if key not in known and free_parent is None:
        raise ConfigError(f"Unknown config key '{key}'.{did_you_mean(key, known)}")
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"Config key '{key}' goes below a value that is not a section.")
    node[parts[-1]] = value


def _validate(tree: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        got = err.get("input")
        if err["type"] == "extra_forbidden":
            known = _known_keys(RunConfig)
            raise ConfigError(f"Unknown config key '{field}'.{did_you_mean(field, known)}") from None
        raise ConfigError(f"The '{field}' parameter {err['msg'].lower()}. Got {got!r}.") from None


def resolve_config(
    base: RunConfig | str | Path | Mapping[str, Any] | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> RunConfig:
    """Build a validated config from defaults, an optional YAML file or mapping, and overrides."""
    if isinstance(base, RunConfig):
        tree = base.model_dump()
    elif isinstance(base, str | Path):
        tree = load_yaml(Path(base))
    else:
        tree = dict(base or {})
    _validate(tree)  # report errors in the file before blaming overrides
    items = parse_overrides(overrides) if not isinstance(overrides, Mapping) else overrides
    for key, value in items.items():
        _set_dotted(tree, key, value)
    return _validate(tree)


def load_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"Config file '{path}' does not exist.")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file '{path}' is not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"Config file '{path}' must hold a mapping of sections.")
    return tree


def config_to_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def resolve_n_jobs(n_jobs: int) -> int:
    return n_jobs if n_jobs > 0 else max(1, os.cpu_count() or 1)


def cache_root(cfg: RunConfig) -> Path | None:
    if not cfg.cache:
        return None
    default = os.environ.get("IMGCLS_CACHE_DIR") or Path.home() / ".cache" / "imgcls"
    return Path(cfg.cache_dir or default)


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
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser; empty: CORS off.")

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_key_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value
