"""The classical school on clips: hand-made features of every frame (edges, texture, colour,
HOG: :mod:`imgcls.data.features`), pooled over time, into a scikit-learn model.

Temporal pooling of a clip's (T, F) frame features: their mean and standard deviation over
the frames, the mean absolute change from one frame to the next, and the signed change from
the first third of the clip to the last (which way the features move: direction). The
pooled vector is standardised and read by a logistic regression (``model.params.C``, 1).
:meth:`ClassicalSequenceClassifier.frame_scores` is temporal occlusion, as for the deep
sequence models.

Example:
    >>> model = create_model("sequence_classical", image_size=64, frames=8)   # doctest: +SKIP
    >>> model.fit(clips, labels).predict(clips[:4])                           # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.errors import ConfigError, ModelError
from ..core.io import atomic_dir
from ..data.features import FeatureSet, parse_feature_spec
from .base import (
    FORMAT_VERSION,
    MODEL_JSON,
    SEQUENCE,
    Classifier,
    check_labels,
    read_model_json,
    versions,
    write_model_json,
)
from .clips import ClipModel
from .skops_files import load_skops, skops_io

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..data.facts import DataFacts

SKOPS_FILE = "model.skops"
DEFAULT_FEATURES = "edges+lbp+color"


def pool_frames(F: np.ndarray) -> np.ndarray:
    """(N, T, F) frame features -> (N, 4F): mean, std, mean |change|, last third - first third."""
    third = max(1, F.shape[1] // 3)
    steps = np.abs(np.diff(F, axis=1)).mean(1) if F.shape[1] > 1 else np.zeros_like(F[:, 0])
    trend = F[:, -third:].mean(1) - F[:, :third].mean(1)
    return np.concatenate([F.mean(1), F.std(1), steps, trend], axis=1)


class ClassicalSequenceClassifier(ClipModel, Classifier):
    """Clips (N, T, H, W, 3) -> labels: per-frame features, temporal pooling, a linear model."""

    school: ClassVar[str] = "classical"
    backend: ClassVar[str] = "sklearn"
    capabilities: ClassVar[frozenset[str]] = frozenset({SEQUENCE})

    def __init__(self, family: str = "sequence_classical", features: str = "auto", image_size: int = 96,
                 resize: str = "squash", frames: int = 8, class_weight: str | None = "balanced",
                 params: dict[str, Any] | None = None, seed: int = 0, frame_stride: int = 0) -> None:
        self.family = family
        self.features = features
        self.image_size = image_size
        self.resize = resize
        self.frames = frames
        self.frame_stride = frame_stride
        self.class_weight = class_weight
        self.params = params
        self.seed = seed
        self.roi = "none"
        self.multilabel = False

    @classmethod
    def from_config(cls, family: str, cfg: RunConfig, facts: DataFacts) -> ClassicalSequenceClassifier:
        m = cfg.model
        if cfg.task.kind == "multilabel":
            raise ConfigError("model.name=sequence_classical learns one label per clip.")
        size = 96 if m.image_size == "auto" else m.image_size
        return cls(family, m.features, int(size), m.resize, cfg.data.frames, m.class_weight or "balanced",
                   dict(m.params), cfg.split.seed, cfg.data.frame_stride)

    @property
    def feature_spec(self) -> str:
        return DEFAULT_FEATURES if self.features == "auto" else self.features

    def validate(self) -> ClassicalSequenceClassifier:
        parse_feature_spec(self.feature_spec)  # names the unknown extractor
        if int(self.frames) < 2:
            raise ConfigError(f"Temporal pooling needs at least 2 frames (data.frames). Got {self.frames!r}.")
        return self

    def frame_features(self, clips: np.ndarray) -> np.ndarray:
        """(N, T, F): each frame's features, cached by content."""
        return self.clip_embeddings(clips)

    def frame_embeddings(self, frames: np.ndarray) -> np.ndarray:
        """(N, F) features of prepared frames (what a live stream feeds one at a time)."""
        return FeatureSet(self.feature_spec).transform(frames, self.runtime.n_jobs, self.runtime.cache_dir,
                                                       self.runtime.progress and len(frames) > 1)

    def proba_from_clip_embeddings(self, F: np.ndarray) -> np.ndarray:
        return self._proba(F)

    def sequence_networks(self):
        raise ModelError(f"A {self.family} model has no network to export: its frame features "
                         f"({self.feature_spec}) are computed by NumPy and scikit-image, not in a graph. "
                         "`imgcls predict` and `imgcls serve` run it in-process; for an ONNX export "
                         "(encoder.onnx + temporal.onnx) train model.name=sequence.")

    def fit(self, images, labels: Sequence[str], val: tuple | None = None) -> ClassicalSequenceClassifier:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.validate()
        targets = check_labels(labels)
        started = time.perf_counter()
        pooled = pool_frames(self.frame_features(images))
        extracted = time.perf_counter()
        C = float((self.params or {}).get("C", 1.0))
        self.pipeline_ = make_pipeline(StandardScaler(), LogisticRegression(
            C=C, max_iter=3000, class_weight=self.class_weight, random_state=self.seed))
        self.pipeline_.fit(pooled, targets)
        self.classes_ = np.asarray(self.pipeline_.classes_, dtype=object)
        self.fit_timings_ = {"features_seconds": round(extracted - started, 3),
                             "estimator_seconds": round(time.perf_counter() - extracted, 3)}
        return self

    def _proba(self, F: np.ndarray) -> np.ndarray:
        if getattr(self, "pipeline_", None) is None:
            raise ModelError("This sequence model is not fitted; call fit() or load a saved one.")
        return self.pipeline_.predict_proba(pool_frames(F))

    def to_json(self) -> dict:
        return {"format_version": FORMAT_VERSION, "school": self.school, "family": self.family,
                "classes": [str(c) for c in self.classes_], "image_spec": self.image_spec.to_dict(),
                "features": self.feature_spec, "class_weight": self.class_weight, "params": self.params or {},
                "seed": self.seed, "weights": SKOPS_FILE, "input": "uint8 (N, T, H, W, 3) clips of frames",
                "versions": versions(), **self.tuned_json()}

    def save(self, path: str | Path) -> Path:
        sio = skops_io()
        with atomic_dir(path) as tmp:
            sio.dump(self.pipeline_, tmp / SKOPS_FILE)
            self.save_tuned(tmp)
            write_model_json(tmp, self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ClassicalSequenceClassifier:
        meta = read_model_json(path)
        spec = meta["image_spec"]
        model = cls(meta["family"], meta["features"], spec["size"], spec["resize"], spec["frames"],
                    meta["class_weight"], meta["params"], meta.get("seed", 0), spec.get("frame_stride", 0))
        model.pipeline_ = load_skops(Path(path) / SKOPS_FILE)
        model.classes_ = np.asarray(meta["classes"], dtype=object)
        if [str(c) for c in model.pipeline_.classes_] != meta["classes"]:
            raise ModelError(f"'{path}': classes in {SKOPS_FILE} differ from {MODEL_JSON}.")
        return model.validate()
