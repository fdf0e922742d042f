"""The one Classifier interface both schools implement, and the registry of model families.

Example:
    >>> model = create_model("svm", features="pixels", image_size=8)    # doctest: +SKIP
    >>> model.fit(images, labels).predict(images[:3])                   # doctest: +SKIP
"""

from __future__ import annotations

import json
import platform
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..data.loading import ImageSpec, prepare_image
from ..errors import ModelError
from ..registry import Registry

MODEL_JSON = "model.json"
FORMAT_VERSION = 1


class Classifier(ABC):
    """``fit`` / ``predict_proba`` / ``predict`` over uint8 images, ``save`` / ``load`` as a folder.

    Images are a stack (N, H, W[, C]) or a list of arrays of any size; each model
    resizes them to its ``image_spec`` first. Learned state ends in ``_``.
    """

    school: ClassVar[str]
    classes_: np.ndarray
    image_spec: ImageSpec

    @abstractmethod
    def fit(self, images: np.ndarray | Sequence[np.ndarray], labels: Sequence[str]) -> Classifier:
        """Learn from images and their labels; returns self."""

    @abstractmethod
    def predict_proba(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities (N, n_classes), columns ordered as ``classes_``."""

    def predict(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        proba = self.predict_proba(images)
        return self.classes_[np.argmax(proba, axis=1)]

    @abstractmethod
    def save(self, path: str | Path) -> Path:
        """Write the model folder atomically; returns its path."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path) -> Classifier:
        """Read a folder written by ``save`` without running code from it."""

    def prepare(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Resize and convert images to this model's ``image_spec``; returns a stack."""
        spec = self.image_spec
        if isinstance(images, np.ndarray) and images.ndim >= 3 and images.dtype == np.uint8:
            expected = (spec.size, spec.size) + (() if spec.channels == 1 else (3,))
            if images.shape[1:] == expected:
                return images
        return np.stack([prepare_image(np.asarray(img), spec) for img in images])


@dataclass(frozen=True)
class ModelFamily:
    name: str
    description: str
    cls: type[Classifier]

    @property
    def school(self) -> str:
        return self.cls.school


MODELS: Registry[ModelFamily] = Registry("model")


def create_model(name: str, **options: Any) -> Classifier:
    """Create an unfitted model of a registered family.

    Args:
        name: Family name, see ``list_models()``.
        **options: Family options, e.g. ``features="hog+lbp"``, ``params={"C": 10}``.

    Example:
        >>> create_model("random_forest", features="hog", image_size=64).school
        'classical'
    """
    return MODELS.get(name).cls(family=name, **options)


def list_models() -> list[ModelFamily]:
    return [MODELS.get(n) for n in MODELS.names()]


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


def load_model(path: str | Path) -> Classifier:
    """Load a model folder (or a run folder holding ``model/``) of either school."""
    folder = Path(path)
    if (folder / "model" / MODEL_JSON).is_file():
        folder = folder / "model"
    meta = read_model_json(folder)
    family = meta.get("family")
    if family not in MODELS:
        raise ModelError(f"'{folder}' holds an unknown model family {family!r}.")
    return MODELS.get(family).cls.load(folder)


def versions() -> dict[str, str]:
    import sklearn

    from .. import __version__

    return {"imgcls": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}
