"""The sections of a run's config: data, split, task, decision, model, train, check, explain,
and the settings of `imgcls audit`."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from .base import DECODE_TIMEOUT, PIL_DEFAULT_MAX_PIXELS
from .base import Strict as _Strict

# Regions of interest (data/roi.py implements them): model.roi is METHOD or METHOD:MODE.
ROI_METHODS = ("none", "otsu", "lcc", "watershed", "grabcut", "saliency", "mask")
ROI_MODES = ("crop", "blank", "both")
ROI_PATTERN = rf"^({'|'.join(ROI_METHODS)})(:({'|'.join(ROI_MODES)}))?$"

# DICOM windows (data/dicom.py applies them): model.window is up to three of file, minmax, a
# preset or CENTRE:WIDTH joined by '+' (three make the R, G, B channels). Presets are CT windows
# in Hounsfield units, (centre, width), as radiology texts give them.
WINDOW_PRESETS = {"brain": (40, 80), "subdural": (75, 215), "stroke": (40, 40), "bone": (400, 1800),
                  "soft_tissue": (50, 400), "mediastinum": (50, 350), "lung": (-600, 1500),
                  "liver": (30, 150)}
_ONE_WINDOW = rf"(file|minmax|{'|'.join(WINDOW_PRESETS)}|-?\d+(\.\d+)?:\d+(\.\d+)?)"
WINDOW_PATTERN = rf"^{_ONE_WINDOW}(\+{_ONE_WINDOW}){{0,2}}$"


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
    tiles: int = Field(0, ge=0, description="Tile side in source pixels: each image becomes a bag of tiles "
                       "that a multiple-instance model (model.name=mil) learns from; 0: whole images.")
    tile_stride: int = Field(0, ge=0, description="Step between tiles; 0: the tile side (no overlap).")
    max_tiles: int = Field(64, ge=1, le=4096, description="Tiles per bag; an image with more foreground "
                           "tiles keeps those with the most foreground.")
    tile_foreground: float = Field(0.1, ge=0, le=1, description="Share of a tile that must differ from "
                                   "the image's background (its border's colour) for the tile to be kept.")
    frames: int = Field(8, ge=1, le=256, description="Frames sampled uniformly from each video clip for "
                        "a sequence model (model.name=sequence); still images ignore it.")
    frame_stride: int = Field(0, ge=0, le=1000, description="0: a clip's data.frames frames spread evenly "
                              "over it; N: data.frames consecutive frames N apart from its middle (a fixed "
                              "rate: speed stays speed, whatever the clip's length).")
    frame_folders: bool = Field(False, description="Class folders hold folders of frame images: each "
                                "folder below a class folder is one clip (its images in natural order), "
                                "read by a sequence model. A manifest row naming a folder is one anyway.")
    identifiers: Literal["pseudonymise", "keep"] = Field(
        "pseudonymise", description="DICOM PatientID, StudyInstanceUID and SeriesInstanceUID columns: "
        "pseudonymise (a salted hash, stable across runs: groups still work) or keep the real values.")
    pseudonym_salt: str = Field(
        "", description="Secret mixed into DICOM pseudonyms; without one a list of known IDs could be "
        "hashed to find who is who. Keep it out of shared configs.")


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
    roi: str = Field(
        "none", pattern=ROI_PATTERN, description="Region of interest before resizing: METHOD or "
        "METHOD:MODE. METHOD: none, otsu (the bright foreground's box), lcc (largest Otsu component), "
        "watershed, grabcut, saliency "
        "(SLIC contrast to the border), mask (the manifest's 'mask' column); MODE: crop (default), "
        "blank (black outside the region), both.")
    window: str = Field(
        "file", pattern=WINDOW_PATTERN, description="DICOM pixels to 8 bits: file (the file's own "
        "window or VOI LUT, else min-max), minmax, a CT preset (" + ", ".join(WINDOW_PRESETS) + "), or "
        "CENTRE:WIDTH in the modality's units (e.g. -600:1500); three joined by '+' (brain+subdural+"
        "bone) become the R, G, B channels. Other formats ignore it.")
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
    members: list[str] = Field(
        default_factory=list, description="model.name=ensemble: the run or model folders it averages.")


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
    multilabel_loss: Literal["bce", "focal", "asymmetric"] = Field(
        "bce", description="Multi-label fine-tuning: binary cross-entropy per label, focal (gamma 2) or "
        "asymmetric (Ridnik et al. 2021: gamma 4 on negatives, 0 on positives, margin 0.05), which "
        "weigh the many easy negatives of rare labels down.")
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
    roi: str = Field("none", pattern=ROI_PATTERN, description="Show what this region of interest "
                     "(model.roi's values) cuts on sample images, and how often it keeps the whole image.")


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


class TaskConfig(_Strict):
    """What is predicted: one class of unordered classes, one of ordered grades, or any number
    of labels per image."""

    _key_prefix: ClassVar[str] = "task."

    kind: Literal["auto", "single", "ordinal", "multilabel"] = Field(
        "auto", description="single: unordered classes; ordinal: ordered grades (severity, stage); "
        "multilabel: any number of labels per image; auto: multilabel or ordinal when the dataset "
        "declares it, else single.")
    separator: str = Field(
        "|", min_length=1, description="Multilabel: what separates an image's labels in the manifest's "
        "'labels' (or 'label') column, e.g. cat|outdoor.")
    label_columns: list[str] | None = Field(
        None, description="Multilabel: manifest columns holding 0/1 (or true/false), one per label, "
        "instead of a 'labels' column.")
    order: list[str] | None = Field(
        None, description="Ordinal: the classes from lowest to highest grade; default the dataset's "
        "declared order, else the labels sorted as numbers.")


class DecisionConfig(_Strict):
    """What is tuned on the validation split after fit and saved with the model: the calibration
    of the probabilities, how they become a label, and when an image is called unknown."""

    _key_prefix: ClassVar[str] = "decision."

    target: str = Field(
        "auto", description="auto (kappa for ordered grades, else the most probable class), argmax, "
        "balanced_accuracy, macro_f1, kappa, recall:LABEL=0.95, precision:LABEL=0.9.")
    val: float = Field(
        0.2, gt=0, lt=1, description="Fraction of train held out to tune the decision when there is no "
        "validation split.")
    calibration: Literal["auto", "temperature", "none"] = Field(
        "auto", description="auto (temperature scaling when there is a validation split), temperature "
        "(holds out decision.val of train when there is none) or none.")
    unknown: Literal["auto", "knn", "msp", "energy", "none"] = Field(
        "auto", description="The unknown score and its threshold: auto (knn for models with a "
        "representation, else msp, when there is a validation split), knn, msp, energy or none.")
    unknown_rate: float = Field(
        0.05, gt=0, lt=1, description="Fraction of in-distribution validation images the unknown "
        "threshold rejects (the false-rejection rate).")
