"""Metrics for a classifier's probabilities: accuracy to calibration, with bootstrap intervals.

Example:
    >>> import numpy as np
    >>> m = compute_metrics(["a", "b", "b"], np.array([[.9, .1], [.2, .8], [.6, .4]]), ["a", "b"])
    >>> round(m["accuracy"], 3), m["confusion_matrix"]["counts"]
    (0.667, [[1, 0], [1, 1]])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.errors import DataError
from ..models.calibration import expected_calibration_error


def _confusion(true_idx: np.ndarray, pred_idx: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(true_idx * k + pred_idx, minlength=k * k).reshape(k, k)


def _accuracy_from_cm(cm: np.ndarray) -> float:
    return float(np.trace(cm) / max(1, cm.sum()))


def _macro_f1_from_cm(cm: np.ndarray) -> float:
    tp = np.diag(cm).astype(float)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    return float(np.mean(np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)))


def _kappa_from_cm(cm: np.ndarray) -> float:
    """Quadratic-weighted kappa of a confusion matrix whose rows and columns are in grade order."""
    k = len(cm)
    weights = (np.subtract.outer(np.arange(k), np.arange(k)) ** 2) / max(1, (k - 1) ** 2)
    total = cm.sum()
    if total == 0:
        return 0.0
    expected = np.outer(cm.sum(axis=1), cm.sum(axis=0)) / total
    denominator = float((weights * expected).sum())
    return 1.0 - float((weights * cm).sum()) / denominator if denominator > 0 else 1.0


def _mae_from_cm(cm: np.ndarray) -> float:
    """Mean absolute error in grades of a confusion matrix in grade order."""
    k = len(cm)
    return float((np.abs(np.subtract.outer(np.arange(k), np.arange(k))) * cm).sum() / max(1, cm.sum()))


def _recalls_from_cm(cm: np.ndarray) -> np.ndarray:
    support = cm.sum(axis=1)
    return np.divide(np.diag(cm), support, out=np.full(len(cm), np.nan), where=support > 0)


SCORES = ("accuracy", "macro_f1", "balanced_accuracy", "kappa")


def quick_score(metric: str, true_idx: np.ndarray, proba: np.ndarray, grades: np.ndarray | None = None
                ) -> float:
    """One figure of the most probable class against integer labels, without intervals: fast
    enough to call thousands of times (model selection, ensemble weights). ``grades`` maps
    class positions to their rank, for ``kappa`` on ordered grades."""
    k = proba.shape[1]
    pred = np.asarray(proba).argmax(axis=1)
    if metric == "kappa":
        if grades is None:
            raise ValueError("kappa needs the grade order")
        return _kappa_from_cm(_confusion(grades[true_idx], grades[pred], k))
    cm = _confusion(np.asarray(true_idx), pred, k)
    if metric == "accuracy":
        return _accuracy_from_cm(cm)
    if metric == "macro_f1":
        return _macro_f1_from_cm(cm)
    if metric == "balanced_accuracy":
        return float(np.nanmean(_recalls_from_cm(cm)))
    raise ValueError(f"unknown score {metric!r}; one of {SCORES}")


def _interval(values: np.ndarray) -> list[float]:
    return [float(np.nanpercentile(values, 2.5)), float(np.nanpercentile(values, 97.5))]


def bootstrap_intervals(true_idx: np.ndarray, pred_idx: np.ndarray, k: int, n_boot: int = 1000,
                        seed: int = 0, grades: np.ndarray | None = None) -> dict:
    """95 % percentile intervals over bootstrap resamples of rows: accuracy, macro-F1, each
    class's recall (``recall``, a list in class order) and, with ``grades`` (the grade of each
    class index), quadratic-weighted kappa and the mean absolute error in grades."""
    rng = np.random.default_rng(seed)
    n = len(true_idx)
    names = ["accuracy", "macro_f1"] + (["qwk", "mae"] if grades is not None else [])
    values = {name: np.empty(n_boot) for name in names}
    recalls = np.empty((n_boot, k))
    order = np.argsort(grades) if grades is not None else None
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        cm = _confusion(true_idx[idx], pred_idx[idx], k)
        values["accuracy"][b], values["macro_f1"][b] = _accuracy_from_cm(cm), _macro_f1_from_cm(cm)
        recalls[b] = _recalls_from_cm(cm)
        if order is not None:
            ordered = cm[np.ix_(order, order)]
            values["qwk"][b], values["mae"][b] = _kappa_from_cm(ordered), _mae_from_cm(ordered)
    out: dict = {name: _interval(v) for name, v in values.items()}
    out["recall"] = [_interval(recalls[:, c]) if np.isfinite(recalls[:, c]).any() else None for c in range(k)]
    return out


def compute_metrics(y_true: Sequence[str], proba: np.ndarray, classes: Sequence[str],
                    n_boot: int = 1000, seed: int = 0, y_pred: Sequence[str] | None = None,
                    order: Sequence[str] | None = None) -> dict:
    """All evaluation figures for true labels and predicted probabilities (columns = classes).

    Args:
        y_pred: The predicted labels when the model decides by a rule other than the most
            probable class (a tuned threshold, ordered-grade cut points).
        order: For ordered grades, the classes from lowest to highest: adds quadratic-weighted
            kappa and the mean absolute error in grades (``ordinal``).
    """
    from sklearn import metrics as skm

    classes = [str(c) for c in classes]
    y_true = np.asarray(y_true, dtype=object).astype(str)
    proba = np.asarray(proba, dtype=np.float64)
    proba = proba / np.maximum(proba.sum(axis=1, keepdims=True), 1e-12)
    unknown = sorted(set(y_true) - set(classes))
    if unknown:
        raise DataError(f"Labels {unknown} are not among the model's classes {classes}.")
    if len(y_true) == 0:
        raise DataError("No images to evaluate.")
    if y_pred is None:
        y_pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    y_pred = np.asarray(y_pred, dtype=object).astype(str)
    idx_true = np.array([classes.index(c) for c in y_true])
    idx_pred = np.array([classes.index(c) for c in y_pred])
    grades = np.array([list(order).index(c) for c in classes]) if order else None
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    cm = skm.confusion_matrix(y_true, y_pred, labels=classes)
    row_sums = cm.sum(axis=1, keepdims=True)
    confidence = proba[np.arange(len(proba)), idx_pred]
    ece, reliability = expected_calibration_error(y_pred == y_true, confidence)
    intervals = bootstrap_intervals(idx_true, idx_pred, len(classes), n_boot, seed, grades)

    out = {
        "n": int(len(y_true)),
        "classes": classes,
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "macro": _averages(y_true, y_pred, classes, "macro"),
        "weighted": _averages(y_true, y_pred, classes, "weighted"),
        "per_class": {c: {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]),
                          "support": int(s[k]), "recall_ci": intervals["recall"][k]}
                      for k, c in enumerate(classes)},
        "confusion_matrix": {
            "labels": classes, "counts": cm.tolist(),
            "normalized": np.divide(cm, np.maximum(row_sums, 1)).round(4).tolist()},
        "most_confused": _most_confused(cm, classes),
        "top_k_accuracy": {str(k): float(skm.top_k_accuracy_score(idx_true, proba, k=k,
                                                                   labels=range(len(classes))))
                           for k in (2, 3, 5) if k < len(classes)},
        "log_loss": float(skm.log_loss(idx_true, np.clip(proba, 1e-15, 1), labels=range(len(classes)))),
        "roc_auc_ovr": _roc_auc(idx_true, proba, len(classes)),
        "ece": ece,
        "reliability": reliability,
        "intervals": {k: v for k, v in intervals.items() if k != "recall"},
    }
    if order:
        ordered = cm[np.ix_(np.argsort(grades), np.argsort(grades))]
        out["ordinal"] = {"order": list(order), "qwk": _kappa_from_cm(ordered), "mae": _mae_from_cm(ordered),
                          "qwk_ci": intervals["qwk"], "mae_ci": intervals["mae"]}
    return out


def _averages(y_true, y_pred, classes, average: str) -> dict:
    from sklearn import metrics as skm

    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=classes,
                                                     average=average, zero_division=0)
    return {"precision": float(p), "recall": float(r), "f1": float(f)}


def _roc_auc(idx_true: np.ndarray, proba: np.ndarray, n_classes: int) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(idx_true)) < n_classes:
        return None  # undefined when a class is absent from the evaluated rows
    if n_classes == 2:
        return float(roc_auc_score(idx_true, proba[:, 1]))
    return float(roc_auc_score(idx_true, proba, multi_class="ovr", labels=range(n_classes)))


def _most_confused(cm: np.ndarray, classes: list[str], top: int = 5) -> list[dict]:
    pairs = [(int(cm[i, j]), classes[i], classes[j])
             for i in range(len(classes)) for j in range(len(classes)) if i != j and cm[i, j] > 0]
    pairs.sort(key=lambda t: -t[0])
    return [{"true": t, "predicted": p, "count": n} for n, t, p in pairs[:top]]
