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


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the precision-recall curve as scikit-learn's ``average_precision_score``
    computes it (precision at each positive, ties broken by score); None without a positive."""
    truth = np.asarray(truth, dtype=bool)
    if not truth.any():
        return None
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    s, t = np.asarray(scores, dtype=np.float64)[order], truth[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # the end of each run of equal scores
    tp = np.cumsum(t)[last]
    precision = tp / (last + 1)
    recall_gain = np.diff(np.r_[0, tp]) / t.sum()
    return float((precision * recall_gain).sum())


def best_f1(truth: np.ndarray, scores: np.ndarray) -> float:
    """The F1 of one label at its best threshold (every label at or above it chosen); 0 without
    a positive. The threshold :func:`imgcls.models.decision.tune_multilabel` would pick reaches it."""
    truth = np.asarray(truth, dtype=bool)
    positives = int(truth.sum())
    if not positives:
        return 0.0
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    last = np.r_[np.flatnonzero(np.diff(s[order]) != 0), len(s) - 1]
    tp = np.cumsum(truth[order])[last]
    return float((2 * tp / (last + 1 + positives)).max())


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
