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


def expected_calibration_error(correct: np.ndarray, confidence: np.ndarray, bins: int = 15
                               ) -> tuple[float, list[dict]]:
    """ECE over equal-width confidence bins, and the bins for a reliability diagram."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece, table = 0.0, []
    for b in range(bins):
        mask = which == b
        if not mask.any():
            continue
        acc, conf = float(correct[mask].mean()), float(confidence[mask].mean())
        ece += mask.mean() * abs(acc - conf)
        table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(mask.sum()),
                      "accuracy": acc, "confidence": conf})
    return float(ece), table


def _confusion(true_idx: np.ndarray, pred_idx: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(true_idx * k + pred_idx, minlength=k * k).reshape(k, k)


def _accuracy_from_cm(cm: np.ndarray) -> float:
    return float(np.trace(cm) / max(1, cm.sum()))


def _macro_f1_from_cm(cm: np.ndarray) -> float:
    tp = np.diag(cm).astype(float)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    return float(np.mean(np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)))


def bootstrap_intervals(true_idx: np.ndarray, pred_idx: np.ndarray, k: int, n_boot: int = 1000,
                        seed: int = 0) -> dict[str, list[float]]:
    """95 % percentile intervals of accuracy and macro-F1 over bootstrap resamples of rows."""
    rng = np.random.default_rng(seed)
    n = len(true_idx)
    acc, f1 = np.empty(n_boot), np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        cm = _confusion(true_idx[idx], pred_idx[idx], k)
        acc[b], f1[b] = _accuracy_from_cm(cm), _macro_f1_from_cm(cm)
    return {name: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]
            for name, v in (("accuracy", acc), ("macro_f1", f1))}


def compute_metrics(y_true: Sequence[str], proba: np.ndarray, classes: Sequence[str],
                    n_boot: int = 1000, seed: int = 0) -> dict:
    """All evaluation figures for true labels and predicted probabilities (columns = classes)."""
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
    y_pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    idx_true = np.array([classes.index(c) for c in y_true])
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    cm = skm.confusion_matrix(y_true, y_pred, labels=classes)
    row_sums = cm.sum(axis=1, keepdims=True)
    confidence = proba.max(axis=1)
    ece, reliability = expected_calibration_error(y_pred == y_true, confidence)

    out = {
        "n": int(len(y_true)),
        "classes": classes,
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "macro": _averages(y_true, y_pred, classes, "macro"),
        "weighted": _averages(y_true, y_pred, classes, "weighted"),
        "per_class": {c: {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]),
                          "support": int(s[k])} for k, c in enumerate(classes)},
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
        "intervals": bootstrap_intervals(idx_true, proba.argmax(axis=1), len(classes), n_boot, seed),
    }
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
