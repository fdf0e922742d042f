"""The quick model of a labelling session, and the images it asks about next.

Every image is turned into a vector once (:func:`image_vectors`: a frozen pretrained
backbone's embedding, or hand-made features for images too small for one), cached by
content like a linear probe's. After every few labels a logistic regression is refitted on
the labelled vectors (well under a second for thousands of labels), its accuracy estimated
on the labelled images that were drawn at random (cross-validation on every label until
there are enough of those), and the next batch chosen by a strategy (:mod:`.strategies`).

Example:
    >>> import numpy as np
    >>> learner = Learner(np.eye(6), strategy="random", seed=0)
    >>> learner.update({0: "a", 1: "b", 2: "a", 3: "b"}).estimate is None   # too few per class
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError
from ..core.log import info
from ..data import ImageSpec, describe, load_images
from ..data.dataset import join_labels
from ..data.features import FeatureSet, auto_features
from ..data.tasks import indicator
from ..models.decision import set_confidence
from ..models.deep.pretrained import offline_available
from ..models.probe import ProbeClassifier
from .strategies import pick_marked

MIN_PER_CLASS_CV = 3  # labels of each class before an accuracy estimate is given
FOLDS = 5
MIN_RANDOM = 20  # random draws labelled before the estimate rests on them alone
BOOTSTRAP = 200  # resamples for a multi-label estimate's interval


def normalise(X: np.ndarray) -> np.ndarray:
    """Rows to unit length (cosine geometry for k-centre and the quick model)."""
    X = np.asarray(X, dtype=np.float64)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def image_vectors(ds, n_jobs: int = 2, cache_dir: Path | None = None, progress: bool = True,
                  backbone: str = "auto"):
    """Every readable image of ``ds`` as a unit vector; returns (vectors, loaded images).

    ``backbone``: ``auto`` (EfficientNet-Lite0 at 224 px when its weights are offline and
    the images' short side exceeds 32 px, else hand-made features), a backbone name, or
    ``features`` (HOG and colour, or pixels for tiny images)."""
    short = describe(ds).short_side
    if backbone == "auto":
        backbone = "tf_efficientnet_lite0" if short > 32 and offline_available("tf_efficientnet_lite0") \
            else "features"
    if backbone == "features":
        size = min(64, max(8, short))
        loaded = load_images(ds, ImageSpec(size=size, channels=3), n_jobs, cache_dir, progress)
        spec = auto_features(size, 3)
        X = FeatureSet(spec).transform(loaded.images, n_jobs, cache_dir, progress)
        info(f"label: {spec} features of {len(X)} images")
        return normalise(X), loaded
    probe = ProbeClassifier(backbone, image_size=224)
    probe.set_runtime(n_jobs=n_jobs, cache_dir=cache_dir, progress=progress)
    loaded = load_images(ds, probe.image_spec, n_jobs, cache_dir, progress)
    info(f"label: {backbone} embeddings of {len(loaded.images)} images")
    return normalise(probe.embed(loaded.images)), loaded


class LabelSets:
    """The quick model of a multi-label session: one logistic regression per label."""

    def __init__(self, classes: tuple[str, ...], seed: int = 0, C: float = 10.0) -> None:
        self.classes_ = np.asarray(classes, dtype=object)
        self.seed, self.C = seed, C

    def fit(self, X: np.ndarray, labels: np.ndarray) -> LabelSets:
        import warnings

        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        Y = indicator(labels, list(self.classes_), strict=False)
        with warnings.catch_warnings():  # a label on every (or no) image so far: a constant, as it should
            warnings.simplefilter("ignore", UserWarning)
            self.model_ = OneVsRestClassifier(LogisticRegression(C=self.C, max_iter=2000,
                                                                 random_state=self.seed)).fit(X, Y)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        chosen = self.predict_proba(X) >= 0.5
        return np.asarray([join_labels(self.classes_[row]) for row in chosen], dtype=object)


def fit_quick(X: np.ndarray, labels: np.ndarray, seed: int = 0, C: float = 10.0,
              multilabel: tuple[str, ...] = ()):
    """A logistic regression on the labelled vectors; None with fewer than two classes (or,
    for label sets over the ``multilabel`` labels, fewer than two images)."""
    from sklearn.linear_model import LogisticRegression

    if multilabel:
        return LabelSets(multilabel, seed, C).fit(X, labels) if len(labels) >= 2 else None
    if len(set(labels)) < 2:
        return None
    return LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(X, labels)


def _score(truth: np.ndarray, predicted: np.ndarray, multilabel: tuple[str, ...]) -> float:
    """Accuracy, or micro-F1 of label sets."""
    if not multilabel:
        return float(np.mean(truth == predicted))
    y, p = (indicator(v, list(multilabel), strict=False).astype(bool) for v in (truth, predicted))
    tp = (y & p).sum()
    return float(2 * tp / max(1, y.sum() + p.sum()))


def estimate_accuracy(X: np.ndarray, labels: np.ndarray, seed: int = 0,
                      drawn: np.ndarray | None = None, classes: tuple[str, ...] = (),
                      multilabel: bool = False) -> dict | None:
    """How good the quick model is (``score``: accuracy, or micro-F1 of label sets when
    ``multilabel``), cross-validated (5 folds) on the labelled vectors; None until every
    class (of ``classes`` too, when given) has 3 labels. With ``drawn`` (a mask of the
    labelled images that were drawn at random) holding ``MIN_RANDOM`` or more, only those
    are scored, each by a model fitted on every other labelled image (``method``: ``random
    draws``), since the images a strategy picked are harder than the data (``method``:
    ``all labels``, biased low)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    sets = tuple(classes) if multilabel else ()
    if multilabel:
        present = indicator(labels, list(classes), strict=False).sum(axis=0)
        if len(labels) < 2 * MIN_PER_CLASS_CV or present.min() < MIN_PER_CLASS_CV:
            return None
    else:
        names, counts = np.unique(labels, return_counts=True)
        if len(counts) < 2 or counts.min() < MIN_PER_CLASS_CV or set(classes) - set(names):
            return None
    predicted = np.empty(len(labels), dtype=object)
    scored = np.ones(len(labels), dtype=bool)
    if drawn is not None and drawn.all():
        drawn = None  # all random: plain cross-validation is unbiased
    if drawn is not None and drawn.sum() >= MIN_RANDOM:
        method, scored = "random draws", drawn.astype(bool)
        rows = np.flatnonzero(scored)
        folds = [(np.setdiff1d(np.arange(len(labels)), rows[test]), rows[test])
                 for _, test in KFold(FOLDS, shuffle=True, random_state=seed).split(rows)]
    elif multilabel:
        method = "all labels"
        folds = KFold(FOLDS, shuffle=True, random_state=seed).split(X)
    else:
        method = "all labels"
        folds = StratifiedKFold(n_splits=min(FOLDS, int(counts.min())), shuffle=True,
                                random_state=seed).split(X, labels)
    for train, test in folds:
        model = fit_quick(X[train], labels[train], seed, multilabel=sets)
        predicted[test] = model.predict(X[test]) if model is not None else None
    n = int(scored.sum())
    truth, guessed = labels[scored], predicted[scored]
    value = _score(truth, guessed, sets)
    if multilabel:  # micro-F1 is no proportion of images: a bootstrap over images
        rng = np.random.default_rng(seed)
        resampled = [_score(truth[i], guessed[i], sets) for i in rng.integers(0, n, (BOOTSTRAP, n))]
        low, high = np.percentile(resampled, [2.5, 97.5])
    else:  # a proportion: the normal interval
        half = 1.96 * np.sqrt(max(value * (1 - value), 1e-12) / n)
        low, high = value - half, value + half
    return {"score": value, "metric": "micro-F1" if multilabel else "accuracy",
            "low": float(max(0.0, low)), "high": float(min(1.0, high)), "n": n, "method": method}


@dataclass
class Learner:
    """What a session knows: vectors of every image, the quick model, the learning curve.

    ``update(labels)`` refits on ``{row: label}``; ``next(k, exclude)`` picks rows to ask. A
    ``multilabel`` learner takes label sets ('a|b', '' for none) over ``classes``; its
    strategies see each image's most uncertain label.
    """

    X: np.ndarray
    strategy: str = "mix"
    random_share: float = 0.1
    seed: int = 0
    model: object | None = None
    estimate: dict | None = None
    curve: list[dict] = field(default_factory=list)
    drawn: set[int] = field(default_factory=set)  # rows answered as random draws (the caller says)
    offered: set[int] = field(default_factory=set)  # rows next() drew at random
    classes: tuple[str, ...] = ()  # every class the labels may take: no estimate before each has 3
    multilabel: bool = False
    _labelled: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        if self.multilabel and not self.classes:
            raise ConfigError("A multi-label learner needs its classes.")

    def update(self, labels: Mapping[int, str], estimate: bool = True) -> Learner:
        """Refit on ``{row: label}``; ``estimate``: also cross-validate (5 more fits)."""
        rows = np.fromiter(labels, dtype=int, count=len(labels))
        y = np.asarray([str(labels[r]) for r in rows], dtype=object)
        self._labelled = rows
        sets = tuple(self.classes) if self.multilabel else ()
        self.model = fit_quick(self.X[rows], y, self.seed, multilabel=sets) if len(rows) else None
        mask = np.asarray([r in self.drawn for r in rows], dtype=bool)
        self.estimate = (estimate_accuracy(self.X[rows], y, self.seed, mask, self.classes, self.multilabel)
                         if len(rows) and estimate else None)
        if self.estimate is not None:
            self.curve.append({"labels": len(rows), **self.estimate})
        return self

    def proba(self, rows: np.ndarray) -> np.ndarray | None:
        """The quick model's probabilities; for label sets, those of each image's most
        uncertain label and its absence, which is what the strategies rank by."""
        if self.model is None:
            return None
        p = self.model.predict_proba(self.X[rows])
        if not self.multilabel:
            return p
        doubt = p[np.arange(len(p)), np.abs(p - 0.5).argmin(axis=1)]
        return np.c_[doubt, 1 - doubt]

    def guess(self, row: int) -> tuple[str, float] | None:
        """The quick model's label (set) for one row and its probability."""
        if self.model is None:
            return None
        p = self.model.predict_proba(self.X[[row]])
        if self.multilabel:
            chosen = p >= 0.5
            return join_labels(np.asarray(self.classes)[chosen[0]]), float(set_confidence(p, chosen)[0])
        return str(self.model.classes_[int(p[0].argmax())]), float(p[0].max())

    def next(self, k: int, exclude: set[int] = frozenset()) -> list[int]:
        """Up to ``k`` rows to ask next (not labelled, not in ``exclude``), best first."""
        taken = set(map(int, self._labelled)) | set(exclude)
        candidates = np.asarray([r for r in range(len(self.X)) if r not in taken], dtype=int)
        if not len(candidates):
            return []
        rows, drawn = pick_marked(self.strategy, self.X, self._labelled, candidates, k, self.rng,
                                  self.proba(candidates), self.random_share)
        self.offered.update(drawn)
        return rows
