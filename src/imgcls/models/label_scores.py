"""Fast scores of per-label probabilities against 0/1 labels: each label's average precision
and its F1 at the best threshold, and their means, the figures that select multi-label models
(the search), weigh them (ensembles) and that the evaluation reports.

Example:
    >>> import numpy as np
    >>> truth = np.array([[1, 0], [1, 1], [0, 1]])
    >>> proba = np.array([[.9, .2], [.6, .7], [.4, .8]])
    >>> quick_multilabel_score("map", truth, proba), best_f1(truth[:, 0], proba[:, 0])
    (1.0, 1.0)
"""

from __future__ import annotations

import numpy as np

MULTILABEL_SCORES = ("map", "macro_f1")


def _cuts(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores from high to low, cut at the end of each run of equal scores: each cut's
    threshold, the true positives at or above it, and the images at or above it."""
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    ranked = s[order]
    last = np.r_[np.flatnonzero(np.diff(ranked) != 0), len(s) - 1]
    return ranked[last], np.cumsum(truth[order])[last], last + 1


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the precision-recall curve as scikit-learn's ``average_precision_score``
    computes it (precision at each positive, ties broken by score); None without a positive."""
    truth = np.asarray(truth, dtype=bool)
    if not truth.any():
        return None
    _, tp, chosen = _cuts(truth, scores)
    return float((tp / chosen * np.diff(np.r_[0, tp]) / truth.sum()).sum())


def best_threshold(truth: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The threshold (every image at or above it chosen) with the best F1 for one label, the
    lowest of those that tie, and that F1; (0.5, 0.0) without a positive."""
    truth = np.asarray(truth, dtype=bool)
    positives = int(truth.sum())
    if not positives:
        return 0.5, 0.0
    thresholds, tp, chosen = _cuts(truth, scores)
    f1 = 2 * tp / (chosen + positives)
    k = int(np.flatnonzero(f1 >= f1.max() - 1e-12)[-1])  # cuts run from high to low thresholds
    return float(thresholds[k]), float(f1[k])


def best_f1(truth: np.ndarray, scores: np.ndarray) -> float:
    """The F1 of one label at its best threshold (:func:`best_threshold`); 0 without a positive."""
    return best_threshold(truth, scores)[1]


def quick_multilabel_score(metric: str, truth: np.ndarray, proba: np.ndarray) -> float:
    """One figure of per-label probabilities against 0/1 labels (N, labels), fast enough for
    model selection and ensemble weights, over the labels with a positive: ``map`` (mean
    average precision) or ``macro_f1`` (the mean of each label's F1 at its best threshold, the
    thresholds a model is then tuned to)."""
    truth, proba = np.asarray(truth, dtype=bool), np.asarray(proba, dtype=np.float64)
    if metric == "map":
        aps = [average_precision(truth[:, k], proba[:, k]) for k in range(truth.shape[1])]
        present = [a for a in aps if a is not None]
        return float(np.mean(present)) if present else 0.0
    if metric == "macro_f1":
        present = [k for k in range(truth.shape[1]) if truth[:, k].any()]
        return float(np.mean([best_f1(truth[:, k], proba[:, k]) for k in present])) if present else 0.0
    raise ValueError(f"unknown multi-label score {metric!r}; one of {MULTILABEL_SCORES}")
