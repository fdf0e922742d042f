"""Drift: do the images arriving still look like the ones the model was tested on?

A :class:`Profile` is what is kept about a set of images: cheap statistics of each decoded
image (width, height, brightness, contrast, sharpness), the model's probabilities (so its
predicted-class mix and confidence), and its embeddings where the model has a
representation of its own. :func:`compare` sets a window of new images against the
reference profile (the run's test split):

- ``embeddings``: a domain classifier (as Evidently and Alibi Detect do): a regularised
  logistic regression on standardised, PCA-reduced embeddings tells reference from window,
  cross-validated; its ROC AUC is 0.5 when they cannot be told apart, 1.0 when they always can;
- each cheap statistic and the confidence: a two-sample Kolmogorov-Smirnov test;
- the predicted-class mix: a chi-square test against the reference's mix.

The window drifts when the AUC reaches ``auc_threshold`` or any test's p-value falls under
``alpha`` divided by the number of tests (Bonferroni: ``alpha`` is the false-alarm rate of
the tests together on a window like the reference).

Example:
    >>> report = compare(reference, profile_of(clf, images))     # doctest: +SKIP
    >>> report["drift"], report["embeddings"]["auc"]             # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..models import REPRESENTATION

STATS = ("width", "height", "brightness", "contrast", "sharpness")
AUC_THRESHOLD = 0.75
ALPHA = 0.01
MIN_WINDOW = 20
_PCA_DIMS = 32


def image_stats(image: np.ndarray) -> np.ndarray:
    """STATS of one decoded image (before any resize): its size, and the mean, spread and
    Laplacian variance of its grey levels on a copy of at most 256 px."""
    import cv2

    h, w = image.shape[:2]
    rgb = np.ascontiguousarray(image[..., :3]) if image.ndim == 3 else None
    grey = image if rgb is None else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scale = 256 / max(h, w)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    grey = grey.astype(np.float32) / 255.0
    sharp = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    return np.array([w, h, float(grey.mean()), float(grey.std()), sharp], dtype=np.float64)


@dataclass
class Profile:
    """What is kept about a set of images (rows aligned)."""

    stats: np.ndarray  # (n, len(STATS))
    proba: np.ndarray  # (n, n_classes)
    classes: list[str]
    embeddings: np.ndarray | None = None  # (n, D) where the model has a representation
    paths: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.stats)

    def subset(self, rows) -> Profile:
        rows = np.asarray(rows, dtype=int)
        return Profile(self.stats[rows], self.proba[rows], self.classes,
                       None if self.embeddings is None else self.embeddings[rows],
                       [self.paths[i] for i in rows] if self.paths else [])

    def to_npz(self) -> dict[str, np.ndarray]:
        out = {"stats": self.stats, "proba": self.proba, "classes": np.asarray(self.classes, dtype=str)}
        return out | ({"embeddings": self.embeddings} if self.embeddings is not None else {})

    @classmethod
    def from_npz(cls, npz) -> Profile:
        return cls(npz["stats"], npz["proba"], [str(c) for c in npz["classes"]],
                   npz.get("embeddings", None))


def profile_of(clf, images: np.ndarray, stats: np.ndarray, paths: list[str] | None = None) -> Profile:
    """The profile of prepared ``images`` (and the STATS of their decoded originals) for ``clf``."""
    proba = np.asarray(clf.predict_proba(images), dtype=np.float64)
    embeddings = clf.representation(images) if clf.supports(REPRESENTATION) else None
    vectors = None if embeddings is None else np.asarray(embeddings, dtype=np.float64)
    return Profile(np.asarray(stats, dtype=np.float64), proba, [str(c) for c in clf.classes_], vectors,
                   list(paths or []))


def domain_scores(reference: np.ndarray, window: np.ndarray, seed: int = 0) -> tuple[float, np.ndarray]:
    """(cross-validated ROC AUC of telling ``window`` rows from ``reference`` rows, each window
    row's out-of-fold probability of being new)."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.concatenate([reference, window])
    y = np.r_[np.zeros(len(reference)), np.ones(len(window))]
    dims = max(1, min(_PCA_DIMS, X.shape[1], len(X) // 5))
    model = make_pipeline(StandardScaler(), PCA(dims, random_state=seed),
                          LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced"))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    p = cross_val_predict(model, X, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p)), p[len(reference):]


def compare(reference: Profile, window: Profile, *, auc_threshold: float = AUC_THRESHOLD,
            alpha: float = ALPHA, seed: int = 0) -> dict:
    """How ``window`` differs from ``reference``: the tests of the module docstring and the
    verdict. Statistics that are constant in both are left out."""
    from scipy.stats import chisquare, ks_2samp

    if len(window) < MIN_WINDOW:
        return {"n": len(window), "drift": False, "reason": f"fewer than {MIN_WINDOW} images"}
    tests: dict[str, dict] = {}
    for k, name in enumerate(STATS):
        a, b = reference.stats[:, k], window.stats[:, k]
        if np.ptp(np.r_[a, b]) == 0:
            continue
        ks = ks_2samp(a, b)
        tests[name] = {"reference_median": float(np.median(a)), "window_median": float(np.median(b)),
                       "ks": float(ks.statistic), "p": float(ks.pvalue)}
    conf_a, conf_b = reference.proba.max(1), window.proba.max(1)
    ks = ks_2samp(conf_a, conf_b)
    tests["confidence"] = {"reference_median": float(np.median(conf_a)),
                           "window_median": float(np.median(conf_b)),
                           "ks": float(ks.statistic), "p": float(ks.pvalue)}
    ref_mix = np.bincount(reference.proba.argmax(1), minlength=len(reference.classes)) / len(reference)
    counts = np.bincount(window.proba.argmax(1), minlength=len(reference.classes))
    expected = np.maximum(ref_mix, 0.5 / len(reference)) * len(window)
    expected *= counts.sum() / expected.sum()
    mix = chisquare(counts, expected)
    tests["class_mix"] = {"reference": dict(zip(reference.classes, ref_mix.round(4).tolist(), strict=True)),
                          "window": dict(zip(reference.classes, (counts / len(window)).round(4).tolist(),
                                             strict=True)),
                          "chi2": float(mix.statistic), "p": float(mix.pvalue)}
    limit = alpha / len(tests)
    moved = sorted((name for name, t in tests.items() if t["p"] < limit), key=lambda n: tests[n]["p"])
    out = {"n": len(window), "tests": tests, "p_limit": limit, "moved": moved}
    if reference.embeddings is not None and window.embeddings is not None:
        auc, _ = domain_scores(reference.embeddings, window.embeddings, seed)
        out["embeddings"] = {"auc": auc, "threshold": auc_threshold}
        if auc >= auc_threshold:
            moved.insert(0, "embeddings")
    out["drift"] = bool(moved)
    # one number to plot: the domain classifier's AUC, else the largest KS distance
    out["score"] = out["embeddings"]["auc"] if "embeddings" in out else max(
        t.get("ks", 0.0) for t in tests.values())
    return out
