"""The one Classifier interface every model family implements, whatever its school.

A Classifier follows scikit-learn's estimator contract: ``__init__`` only stores its
parameters (``get_params`` / ``set_params`` / ``sklearn.base.clone`` work), ``fit``
validates them and returns ``self``, learned state ends in ``_``. How a model *runs* (worker
threads, caches, progress bars, a work folder for checkpoints, extra training callbacks) is
not a parameter: it is a :class:`Runtime`, set with ``set_runtime`` and never saved.

Models consume prepared stacks: uint8 (N, size, size[, C]) made by
:func:`imgcls.data.prepare_images` from the model's ``image_spec``; they never resize.

Callers ask what a model can do (``model.supports(GRADIENTS)``), never which school it is.

Example:
    >>> from imgcls.models import create_model
    >>> model = create_model("svm", features="pixels", image_size=8)
    >>> model.supports(GRADIENTS), model.get_params()["features"]
    (False, 'pixels')
"""

from __future__ import annotations

import inspect
import json
import platform
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.errors import ConfigError, ModelError
from ..core.version import __version__
from ..data.prepare import ImageSpec
from ..data.tasks import indicator, label_names
from .calibration import Calibration
from .capabilities import (  # noqa: F401 - re-exported: the names callers ask with
    CAPABILITIES,
    EMBEDDINGS,
    EPOCHS,
    FEATURE_GROUPS,
    FRAME_GRADIENTS,
    GRADIENTS,
    ONNX,
    REPRESENTATION,
    RESUME,
    SEQUENCE,
    TEST_TIME_VIEWS,
    TILES,
    VALIDATION,
)
from .decision import Decision
from .unknown import Unknown

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..data.facts import DataFacts

MODEL_JSON = "model.json"
FORMAT_VERSION = 1



@dataclass(frozen=True)
class Runtime:
    """How a model runs, not what it is: never a parameter, never saved.

    Attributes:
        n_jobs: Worker threads / processes for features, embeddings and networks.
        cache_dir: Where features and embeddings are cached by content; None: no cache.
        progress: Draw progress bars on stderr.
        work_dir: Fine-tuning's checkpoints and logs (a temporary folder when None).
        resume: A checkpoint to continue fine-tuning from.
        callbacks: Extra Lightning callbacks (e.g. a search's epoch reporter).
        loggers: Extra Lightning loggers (TensorBoard, MLflow) besides the CSV log.
    """

    n_jobs: int = 1
    cache_dir: Path | None = None
    progress: bool = False
    work_dir: Path | None = None
    resume: Path | None = None
    callbacks: tuple = ()
    loggers: tuple = ()


class Classifier(ABC):
    """``fit`` / ``predict_proba`` / ``predict`` over prepared uint8 stacks, ``save`` / ``load``
    as a folder; see the module docstring for the contract."""

    school: ClassVar[str] = "custom"  # for people (listings, reports); never branched on
    backend: ClassVar[str] = "python"  # what runs it in-process, e.g. sklearn or torch
    capabilities: ClassVar[frozenset[str]] = frozenset()
    family: str
    classes_: np.ndarray
    runtime: Runtime = Runtime()
    global_rank_: int = 0  # under DDP only rank 0's fit writes results
    decision_: Decision | None = None  # how probabilities become a label (tuned after fit); None: argmax
    calibration_: Calibration | None = None  # a temperature fitted on validation; None: as the model gives
    unknown_: Unknown | None = None  # the unknown score and its threshold; None: no unknown answer
    representation_metric: ClassVar[str] = "euclidean"  # REPRESENTATION: how its vectors are compared

    # ----- parameters (scikit-learn's contract) ---------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p.name for p in signature.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Classifier:
        names = self._param_names()
        for name, value in params.items():
            if name not in names:
                raise ModelError(f"'{name}' is not a parameter of {type(self).__name__}; "
                                 f"parameters: {', '.join(names)}.")
            setattr(self, name, value)
        return self

    def validate(self) -> Classifier:
        """Check the parameters; raises ConfigError naming the bad one. ``fit`` calls it."""
        return self

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    def set_runtime(self, runtime: Runtime | None = None, **changes: Any) -> Classifier:
        """Set how the model runs (threads, caches, progress...); returns self."""
        self.runtime = replace(runtime or self.runtime, **changes)
        return self

    # ----- what it is built from ------------------------------------------------------
    @classmethod
    @abstractmethod
    def from_config(cls, family: str, cfg: RunConfig, facts: DataFacts) -> Classifier:
        """An unfitted model of ``family`` as ``cfg.model`` (and ``cfg.train``) describe it;
        ``facts`` resolve the ``auto`` choices (image size)."""

    @property
    @abstractmethod
    def image_spec(self) -> ImageSpec:
        """What prepared images look like for this model."""

    @property
    def accepted_channels(self) -> tuple[int, ...]:
        channels = self.image_spec.channels
        return (channels,) if channels else (1, 3)

    def check_input(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """The prepared stack as an array; a clear error when it is not prepared for this model."""
        stack = images if isinstance(images, np.ndarray) else (
            np.stack([np.asarray(i) for i in images]) if len(images) else np.zeros((0, 1, 1), np.uint8))
        if len(stack) == 0:
            return stack
        size = self.image_spec.size
        channels = 1 if stack.ndim == 3 else stack.shape[-1] if stack.ndim == 4 else None
        accepted = self.accepted_channels
        if stack.dtype != np.uint8 or stack.shape[1:3] != (size, size) or channels not in accepted:
            want = " or ".join(f"(N, {size}, {size}{'' if c == 1 else f', {c}'})" for c in accepted)
            raise ModelError(f"Images must be prepared for this model first: uint8 {want}; got "
                             f"{stack.dtype} {stack.shape}. Use imgcls.prepare_images(images, "
                             "model.image_spec).")
        return stack

    # ----- learning and predicting ----------------------------------------------------
    @abstractmethod
    def fit(self, images: np.ndarray, labels: Sequence[str], val: tuple | None = None) -> Classifier:
        """Learn from a prepared stack and its labels; ``val`` = (images, labels) is used by
        families that support VALIDATION and ignored by the others. Returns self."""

    @abstractmethod
    def raw_proba(self, images: np.ndarray) -> np.ndarray:
        """The family's own class probabilities (N, n_classes), columns ordered as ``classes_``,
        before calibration; families implement this, callers use ``predict_proba``."""

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, n_classes), columns ordered as ``classes_``, calibrated when a
        temperature was fitted (see :mod:`imgcls.models.calibration`)."""
        return self.calibrate(self.raw_proba(images))

    def calibrate(self, proba: np.ndarray) -> np.ndarray:
        """The model's calibration applied to probabilities of ``raw_proba``."""
        return proba if self.calibration_ is None else self.calibration_.apply(proba)

    def predict_with_unknown(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, unknown scores); the scores are None without an unknown detector."""
        proba = self.predict_proba(images)
        if self.unknown_ is None:
            return proba, None
        return proba, self.unknown_.scores(self, images, proba)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.decide(self.predict_proba(images))

    @property
    def is_multilabel(self) -> bool:
        """Independent labels per image (``multilabel=True``): ``predict_proba`` gives each
        label's probability (a sigmoid), ``predict`` the labels above their thresholds joined
        by '|'. Families that support it take the ``multilabel`` parameter."""
        return bool(getattr(self, "multilabel", False))

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Labels for probabilities, by the model's decision rule (the most probable class
        unless a rule was tuned, see :mod:`imgcls.models.decision`; for a multi-label model
        every label at 0.5 or more unless thresholds were tuned)."""
        classes = [str(c) for c in self.classes_]
        rule = self.decision_ or (Decision.multilabel(len(classes)) if self.is_multilabel else Decision())
        return rule.labels(proba, classes)

    def decision_json(self) -> dict | None:
        """What model.json keeps of the decision rule."""
        return self.decision_.to_dict() if self.decision_ is not None else None

    def tuned_json(self) -> dict:
        """What was tuned on validation after fit: decision rule, calibration, unknown detector.
        Every family's ``to_json`` includes it; :func:`imgcls.models.load_model` reads it back."""
        return {"decision": self.decision_json(),
                "calibration": self.calibration_.to_dict() if self.calibration_ is not None else None,
                "unknown": self.unknown_.to_dict() if self.unknown_ is not None else None}

    def save_tuned(self, folder: Path) -> None:
        """Files of what was tuned after fit (the unknown detector's training vectors); every
        family's ``save`` calls it inside its atomic folder."""
        if self.unknown_ is not None:
            self.unknown_.save_bank(folder)

    @property
    def fit_timings(self) -> dict:
        return dict(getattr(self, "fit_timings_", {}))

    # ----- capability hooks: implemented by the families that declare them -----------
    def network(self):
        """GRADIENTS / ONNX: a torch module, uint8 or 0-255 float (N, C, H, W) -> logits, in
        eval mode (one view, no test-time augmentation)."""
        raise ModelError(f"'{self.family}' is a {self.school} model without a network, so it cannot be "
                         "exported to ONNX or explained by gradients; `imgcls predict` and `imgcls serve` "
                         "run it directly.")

    @property
    def tta(self) -> str:
        """TEST_TIME_VIEWS: the views averaged at prediction (none, hflip, hflip+vflip)."""
        return "none"

    def set_tta(self, tta: str) -> Classifier:
        """TEST_TIME_VIEWS: average these views at prediction from now on; returns self."""
        raise ModelError(f"'{self.family}' averages no test-time views.")

    def test_time_flips(self) -> tuple[tuple[int, ...], ...]:
        """TEST_TIME_VIEWS: the flips (tensor dims of NCHW) averaged with the plain view."""
        return ()

    def representation(self, images: np.ndarray) -> np.ndarray:
        """REPRESENTATION: the vectors (N, D) the model decides from, for a prepared stack."""
        raise ModelError(f"'{self.family}' has no representation of its own; its unknown score is msp.")

    # ----- artifacts --------------------------------------------------------------------
    @abstractmethod
    def to_json(self) -> dict:
        """What ``model.json`` holds (also the ``model`` section of a run's metrics)."""

    @abstractmethod
    def save(self, path: str | Path) -> Path:
        """Write the model folder atomically; returns its path."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path) -> Classifier:
        """Read a folder written by ``save`` without running code from it."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise ModelError("This model is not fitted yet; call fit() or load a saved model.")


def read_model_json(path: str | Path) -> dict:
    folder = Path(path)
    meta_path = folder / MODEL_JSON
    if not meta_path.is_file():
        raise ModelError(f"'{folder}' is not a model folder: {MODEL_JSON} is missing.")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"'{meta_path}' is not valid JSON: {exc}") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"'{meta_path}' has format_version {meta.get('format_version')!r}; "
                         f"this imgcls reads {FORMAT_VERSION}.")
    return meta


def write_model_json(folder: Path, meta: dict) -> None:
    (folder / MODEL_JSON).write_text(json.dumps(meta, indent=2))


def check_multilabels(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(label names, 0/1 matrix) of multi-label ``label`` values ('a|b'); ConfigError unless
    there are at least 2 labels, each on some images and missing from others."""
    names = label_names(labels)
    matrix = indicator(labels, names)
    always = [n for n, c in zip(names, matrix.sum(axis=0), strict=True) if c == len(matrix)]
    if len(names) < 2:
        raise ConfigError(f"A multi-label model needs at least 2 labels; got {names}.")
    if always:
        raise ConfigError(f"Label(s) {always} are on every training image, so there is nothing to learn "
                          "about them; drop them or add images without them.")
    return np.asarray(names, dtype=object), matrix


def check_labels(labels: Sequence[str]) -> np.ndarray:
    """Labels as strings; ConfigError unless there are at least two classes."""
    labels = np.asarray(labels, dtype=object).astype(str)
    if len(np.unique(labels)) < 2:
        raise ConfigError(f"Training needs at least 2 classes; got only {np.unique(labels).tolist()}.")
    return labels


def versions() -> dict[str, str]:
    import sklearn

    return {"imgcls": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}
