"""The classical school: named image features + a scaled scikit-learn estimator.

Saved as ``model.json`` (classes, features, image spec, versions) and ``model.skops``,
which is loaded only when every type it holds is a scikit-learn, NumPy or SciPy type.

Example:
    >>> from imgcls.data import load_dataset, load_images, ImageSpec
    >>> ds = load_dataset("digits")
    >>> images = load_images(ds, ImageSpec(size=8), progress=False).images
    >>> model = SklearnClassifier("svm", features="pixels", image_size=8).fit(images, ds.labels)
    >>> model.predict(images[:3]).tolist()
    ['0', '1', '2']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.errors import ConfigError, ModelError
from ..core.io import atomic_dir
from ..core.log import info
from ..data.features import FeatureSet, auto_features
from ..data.prepare import ImageSpec
from .base import (
    FEATURE_GROUPS,
    FORMAT_VERSION,
    MODEL_JSON,
    REPRESENTATION,
    Classifier,
    check_labels,
    check_multilabels,
    read_model_json,
    versions,
    write_model_json,
)
from .skops_files import load_skops, skops_io

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..data.facts import DataFacts

SKOPS_FILE = "model.skops"


def _svm(params: dict, class_weight, seed: int):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import SVC

    svc = SVC(**{"C": 10.0, "gamma": "scale", "class_weight": class_weight,
                 "random_state": seed, **params})
    # Platt scaling on 3-fold out-of-fold scores; one SVC refitted on all rows predicts.
    # Shuffled folds: files listed in order (by class or source) would otherwise give
    # folds with shifted distributions and a collapsed calibration.
    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    return CalibratedClassifierCV(svc, method="sigmoid", cv=folds, ensemble=False)


def _random_forest(params: dict, class_weight, seed: int):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**{"n_estimators": 500, "class_weight": class_weight,
                                     "random_state": seed, **params})


def _decision_tree(params: dict, class_weight, seed: int):
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(**{"class_weight": class_weight, "random_state": seed, **params})


def _logistic_regression(params: dict, class_weight, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(**{"C": 1.0, "max_iter": 3000, "class_weight": class_weight,
                                 "random_state": seed, **params})


def _gradient_boosting(params: dict, class_weight, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**{"class_weight": class_weight, "random_state": seed,
                                             **params})


def _knn(params: dict, class_weight, seed: int):
    from sklearn.neighbors import KNeighborsClassifier

    if class_weight is not None:
        raise ConfigError("The 'model.class_weight' parameter is not supported by knn; "
                          "remove it or pick another model.")
    return KNeighborsClassifier(**{"n_neighbors": 5, "weights": "distance", **params})


ESTIMATORS: dict[str, tuple[Callable, str]] = {
    "svm": (_svm, "RBF support-vector machine; C tuned by 3-fold CV unless params.C is set"),
    "random_forest": (_random_forest, "random forest, 500 trees"),
    "decision_tree": (_decision_tree, "single decision tree (interpretable, weak)"),
    "logistic_regression": (_logistic_regression, "multinomial logistic regression"),
    "gradient_boosting": (_gradient_boosting, "histogram gradient boosting"),
    "knn": (_knn, "k-nearest neighbours (k=5, distance-weighted)"),
}
SVM_C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
MAX_AUTO_SIZE = 150  # image_size=auto: the data's median short side, at most this

# Label-preserving copies added to the training rows (on stacks of shape (N, H, W[, C])).
AUGMENTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "hflip": lambda a: a[:, :, ::-1],
    "vflip": lambda a: a[:, ::-1],
    "rot180": lambda a: a[:, ::-1, ::-1],
}


def parse_augment(spec: str) -> list[str]:
    names = [n.strip() for n in spec.split("+") if n.strip() and n.strip() not in ("none", "auto")]
    unknown = [n for n in names if n not in AUGMENTS]
    if unknown:
        raise ConfigError(f"The 'model.augment' parameter has unknown transform(s) {unknown}; "
                          f"use none or {', '.join(AUGMENTS)} joined by '+'. Got {spec!r}.")
    return names


class SklearnClassifier(Classifier):
    """Features from :mod:`imgcls.data.features`, then ``StandardScaler`` and an estimator.

    Args:
        family: Estimator, one of ``ESTIMATORS`` (the family's name).
        features: Extractors joined by '+', or ``auto`` (chosen from size and channels at fit).
        image_size: Side of the square images the features are computed on.
        channels: 1 or 3; None takes the data's own at fit.
        multilabel: Any number of labels per image ('a|b'): one estimator per label
            (scikit-learn's OneVsRestClassifier), each label's probability its own.
    """

    school: ClassVar[str] = "classical"
    backend: ClassVar[str] = "sklearn"
    capabilities: ClassVar[frozenset[str]] = frozenset({FEATURE_GROUPS, REPRESENTATION})

    def __init__(self, family: str = "svm", features: str = "auto", image_size: int = 128,
                 channels: int | None = None, resize: str = "squash", roi: str = "none",
                 class_weight: str | None = None, params: dict[str, Any] | None = None,
                 scaler: str = "auto", augment: str = "none",
                 feature_params: dict[str, dict] | None = None, seed: int = 0,
                 multilabel: bool = False, window: str = "file") -> None:
        self.family = family
        self.multilabel = multilabel
        self.features = features
        self.image_size = image_size
        self.channels = channels
        self.resize = resize
        self.roi = roi
        self.window = window
        self.class_weight = class_weight
        self.params = params
        self.scaler = scaler
        self.augment = augment
        self.feature_params = feature_params
        self.seed = seed

    @classmethod
    def from_config(cls, family: str, cfg: RunConfig, facts: DataFacts) -> SklearnClassifier:
        m = cfg.model
        size = min(MAX_AUTO_SIZE, facts.short_side) if m.image_size == "auto" else m.image_size
        return cls(family, m.features, int(size), None, m.resize, m.roi, m.class_weight, dict(m.params),
                   m.scaler, m.augment, dict(m.feature_params), cfg.split.seed,
                   cfg.task.kind == "multilabel", window=m.window)

    def validate(self) -> SklearnClassifier:
        if self.family not in ESTIMATORS:
            raise ConfigError(f"'{self.family}' is not a classical model; use one of {list(ESTIMATORS)}.")
        if self.scaler not in ("auto", "standard", "none"):
            raise ConfigError(f"The 'model.scaler' parameter must be auto, standard or none. "
                              f"Got {self.scaler!r}.")
        parse_augment(self.augment)
        if self.features != "auto":
            FeatureSet(self.features, self.feature_params or {})
        return self

    @property
    def image_spec(self) -> ImageSpec:
        return ImageSpec(size=int(self.image_size), channels=getattr(self, "channels_", self.channels),
                         resize=self.resize, roi=self.roi,
                         window=getattr(self, "window", "file"))

    @property
    def feature_set(self) -> FeatureSet:
        return FeatureSet(getattr(self, "features_", self.features), self.feature_params or {})

    def build_pipeline(self, params: dict | None = None):
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        make, _ = ESTIMATORS[self.family]
        params = {k: v for k, v in (self.params or {} if params is None else params).items()
                  if v != "auto"}
        if self.family == "random_forest":
            params.setdefault("n_jobs", self.runtime.n_jobs)
        try:
            estimator = make(params, self.class_weight, self.seed)
        except TypeError as exc:
            raise ConfigError(f"The 'model.params' for {self.family} are invalid: {exc}") from None
        if self.multilabel:
            estimator = OneVsRestClassifier(estimator, n_jobs=None)
        return make_pipeline(StandardScaler(), estimator) if self.scales else estimator

    @property
    def scales(self) -> bool:
        """Standardise features, except raw pixels alone (shared units; scaling hurts there)."""
        features = getattr(self, "features_", self.features)
        return self.scaler == "standard" or (self.scaler == "auto" and features != "pixels")

    def feature_matrix(self, images: np.ndarray) -> np.ndarray:
        """The feature vectors (N, D) the estimator sees, for a prepared stack."""
        rt = self.runtime
        return self.feature_set.transform(self.check_input(images), rt.n_jobs, rt.cache_dir, rt.progress)

    def feature_groups(self) -> dict[str, slice]:
        """FEATURE_GROUPS: which columns of ``feature_matrix`` each extractor fills."""
        spec = self.image_spec
        blank = np.zeros((spec.size, spec.size) + (() if spec.channels == 1 else (3,)), np.uint8)
        return self.feature_set.groups(blank)

    def predict_features(self, X: np.ndarray) -> np.ndarray:
        """Labels the estimator gives feature vectors (for permutation importance); a multi-label
        model's label sets joined by '|', as ``predict`` gives them."""
        if self.multilabel:
            return self.decide(self.pipeline_.predict_proba(X))
        return self.pipeline_.predict(X)

    def fit(self, images, labels: Sequence[str], val: tuple | None = None) -> SklearnClassifier:
        self.validate()
        if self.multilabel:
            return self._fit_multilabel(images, labels)
        labels = check_labels(labels)
        stack = self._resolve_features(images)
        n_original = len(labels)
        started = time.perf_counter()
        X, labels = self._training_features(stack, labels)
        features_seconds = time.perf_counter() - started
        folds = self._folds(labels, n_original)
        params = self.params or {}
        if self.family == "svm" and params.get("C", "auto") == "auto":
            params = self._tune_svm_c(X, labels, folds)
        pipeline = self.build_pipeline(params)
        if self.family == "svm" and folds is not None:
            estimator = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
            estimator.set_params(cv=folds)
        pipeline.fit(X, labels)
        self.pipeline_ = pipeline
        self.classes_ = np.asarray(pipeline.classes_, dtype=object)
        self.fit_timings_ = {"features_seconds": round(features_seconds, 3),
                             "features_images_per_s": round(len(X) / max(features_seconds, 1e-9), 1),
                             "estimator_seconds": round(time.perf_counter() - started - features_seconds, 3)}
        return self

    def _resolve_features(self, images) -> np.ndarray:
        """The prepared stack; sets the channels and the features (``auto``) it is fitted with."""
        stack = self.check_input(images)
        self.channels_ = self.channels or (1 if stack.ndim == 3 else 3)
        self.features_ = self.features
        if self.features == "auto":
            self.features_ = auto_features(int(self.image_size), self.channels_)
            info(f"model.features=auto -> {self.features_}")
        return stack

    def _fit_multilabel(self, images, labels: Sequence[str]) -> SklearnClassifier:
        """One estimator per label on the 0/1 columns; SVM C is 10 unless given (no CV search)."""
        names, Y = check_multilabels(labels)
        stack = self._resolve_features(images)
        started = time.perf_counter()
        X, rows = self._training_features(stack, np.arange(len(Y)))
        features_seconds = time.perf_counter() - started
        params = dict(self.params or {})
        if self.family == "svm" and params.get("C", "auto") == "auto":
            params["C"] = 10.0
        self.pipeline_ = self.build_pipeline(params).fit(X, Y[rows])
        self.classes_ = names
        self.fit_timings_ = {"features_seconds": round(features_seconds, 3),
                             "features_images_per_s": round(len(X) / max(features_seconds, 1e-9), 1),
                             "estimator_seconds": round(time.perf_counter() - started - features_seconds, 3)}
        return self

    def _training_features(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        blocks = [self.feature_matrix(images)]
        for name in parse_augment(self.augment):
            blocks.append(self.feature_matrix(np.ascontiguousarray(AUGMENTS[name](images))))
        return np.concatenate(blocks), np.tile(labels, len(blocks))

    def _folds(self, labels: np.ndarray, n_original: int) -> list | None:
        """3 shuffled stratified folds that keep an image and its augmented copies together."""
        from sklearn.model_selection import StratifiedGroupKFold

        _, counts = np.unique(labels[:n_original], return_counts=True)
        n_splits = min(3, int(counts.min()))
        if n_splits < 2:
            return None
        groups = np.tile(np.arange(n_original), len(labels) // n_original)
        cv = StratifiedGroupKFold(n_splits, shuffle=True, random_state=self.seed)
        return list(cv.split(np.zeros(len(labels)), labels, groups))

    def _tune_svm_c(self, X, labels, folds: list | None) -> dict:
        """Pick C by 3-fold stratified CV accuracy of a plain SVC; returns the params to use."""
        from sklearn.model_selection import GridSearchCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        given = self.params or {}
        if folds is None:
            return {**given, "C": 10.0}
        rest = {k: v for k, v in given.items() if k != "C"}
        svc = SVC(**{"gamma": "scale", "class_weight": self.class_weight, **rest})
        pipe = make_pipeline(StandardScaler(), svc) if self.scales else make_pipeline(svc)
        n_jobs = self.runtime.n_jobs if X.size > 2_000_000 else 1  # process start-up beats small grids
        grid = GridSearchCV(pipe, {"svc__C": list(SVM_C_GRID)}, n_jobs=n_jobs, cv=folds)
        grid.fit(X, labels)
        self.tuned_ = {"C": grid.best_params_["svc__C"], "cv_accuracy": float(grid.best_score_)}
        return {**rest, "C": self.tuned_["C"]}

    def raw_proba(self, images) -> np.ndarray:
        if not hasattr(self, "pipeline_"):
            raise ModelError("This model is not fitted yet; call fit() or load a saved model.")
        return self.pipeline_.predict_proba(self.feature_matrix(images))

    def representation(self, images) -> np.ndarray:
        """REPRESENTATION: the feature vectors as the estimator sees them (standardised when
        the pipeline standardises)."""
        if not hasattr(self, "pipeline_"):
            raise ModelError("This model is not fitted yet; call fit() or load a saved model.")
        X = self.feature_matrix(images)
        steps = getattr(self.pipeline_, "steps", None)
        return self.pipeline_[:-1].transform(X) if steps and len(steps) > 1 else X

    def to_json(self) -> dict:
        return {
            "format_version": FORMAT_VERSION, "school": self.school, "family": self.family,
            "classes": [str(c) for c in self.classes_], "image_spec": self.image_spec.to_dict(),
            "features": self.features_, "feature_params": self.feature_params or {},
            "class_weight": self.class_weight, "params": self.params or {}, "scaler": self.scaler,
            "augment": self.augment,
            "seed": self.seed, "multilabel": self.multilabel,
            "tuned": getattr(self, "tuned_", None), "weights": SKOPS_FILE, "versions": versions(),
            **self.tuned_json(),
        }

    def save(self, path: str | Path) -> Path:
        sio = skops_io()
        with atomic_dir(path) as tmp:
            sio.dump(self.pipeline_, tmp / SKOPS_FILE)
            self.save_tuned(tmp)
            write_model_json(tmp, self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> SklearnClassifier:
        meta = read_model_json(path)
        spec = meta["image_spec"]
        model = cls(meta["family"], meta["features"], spec["size"], spec["channels"],
                    spec["resize"], spec.get("roi", "none"), meta["class_weight"], meta["params"],
                    meta["scaler"], meta.get("augment", "none"), meta["feature_params"], meta.get("seed", 0),
                    meta.get("multilabel", False), window=spec.get("window", "file"))
        model.channels_, model.features_ = spec["channels"], meta["features"]
        model.pipeline_ = load_skops(Path(path) / SKOPS_FILE)
        model.classes_ = np.asarray(meta["classes"], dtype=object)
        if not model.multilabel and [str(c) for c in model.pipeline_.classes_] != meta["classes"]:
            raise ModelError(f"'{path}': classes in {SKOPS_FILE} differ from {MODEL_JSON}.")
        if meta.get("tuned"):
            model.tuned_ = meta["tuned"]
        return model


# The classical families: (name, description) of each estimator; registered in families.py.
FAMILIES = [(name, description) for name, (_, description) in ESTIMATORS.items()]
