"""Metrics of a multi-label model: per label, micro and macro averages, mAP, subset accuracy and
Hamming loss, with bootstrap intervals over images.

Example:
    >>> import numpy as np
    >>> m = multilabel_metrics(["a|b", "a", ""], np.array([[.9, .8], [.7, .6], [.1, .2]]), ["a", "b"],
    ...                        ["a|b", "a|b", ""], n_boot=0)
    >>> m["accuracy"], m["per_label"]["b"]["precision"], round(m["hamming_loss"], 3)
    (0.6666666666666666, 0.5, 0.167)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.errors import DataError
from ..data.tasks import indicator
from ..models.calibration import expected_calibration_error
from ..models.label_scores import average_precision


def _f1(tp, fp, fn):
    return np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros(np.shape(tp), dtype=float),
                     where=(2 * tp + fp + fn) > 0)


def _counts(y: np.ndarray, chosen: np.ndarray):
    return (y & chosen).sum(0), (~y & chosen).sum(0), (y & ~chosen).sum(0)


def _summary(y: np.ndarray, chosen: np.ndarray, proba: np.ndarray) -> dict:
    tp, fp, fn = _counts(y, chosen)
    aps = [average_precision(y[:, k], proba[:, k]) for k in range(y.shape[1])]
    present = [a for a in aps if a is not None]
    return {"micro_f1": float(_f1(tp.sum(), fp.sum(), fn.sum())), "macro_f1": float(_f1(tp, fp, fn).mean()),
            "map": float(np.mean(present)) if present else None,
            "accuracy": float((y == chosen).all(1).mean())}


def multilabel_metrics(y_true: Sequence[str], proba: np.ndarray, classes: Sequence[str],
                       y_pred: Sequence[str], n_boot: int = 1000, seed: int = 0,
                       thresholds: Sequence[float] | None = None) -> dict:
    """Every figure for multi-label ``label`` values ('a|b'), each label's probability (columns =
    ``classes``) and the decided label sets ``y_pred``. ``accuracy`` is the subset accuracy
    (every label of the image right), so tables that compare runs by accuracy read it too."""
    classes = [str(c) for c in classes]
    if len(y_true) == 0:
        raise DataError("No images to evaluate.")
    y = indicator(y_true, classes, strict=False).astype(bool)
    chosen = indicator(y_pred, classes).astype(bool)
    proba = np.asarray(proba, dtype=np.float64)
    tp, fp, fn = _counts(y, chosen)
    precision = np.divide(tp, tp + fp, out=np.zeros(len(classes)), where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros(len(classes)), where=(tp + fn) > 0)
    f1 = _f1(tp, fp, fn)
    summary = _summary(y, chosen, proba)
    confidence = np.where(chosen, proba, 1 - proba).ravel()
    ece, reliability = expected_calibration_error((chosen == y).ravel(), confidence)
    wrong = chosen != y
    out = {
        "task": "multilabel", "n": int(len(y)), "classes": classes,
        "accuracy": summary["accuracy"], "subset_accuracy": summary["accuracy"],
        "hamming_loss": float(wrong.mean()),
        "micro": {"precision": float(tp.sum() / max(1, tp.sum() + fp.sum())),
                  "recall": float(tp.sum() / max(1, tp.sum() + fn.sum())), "f1": summary["micro_f1"]},
        "macro": {"precision": float(precision.mean()), "recall": float(recall.mean()),
                  "f1": summary["macro_f1"]},
        "map": summary["map"],
        "per_label": {c: {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]),
                          "ap": average_precision(y[:, k], proba[:, k]), "support": int(y[:, k].sum()),
                          "predicted": int(chosen[:, k].sum()),
                          **({"threshold": float(thresholds[k])} if thresholds is not None else {})}
                      for k, c in enumerate(classes)},
        "label_cooccurrence": (y.T.astype(int) @ y.astype(int)).tolist(),
        "error_cooccurrence": (wrong.T.astype(int) @ wrong.astype(int)).tolist(),
        "ece": ece, "reliability": reliability,
        "intervals": bootstrap_multilabel(y, chosen, proba, n_boot, seed) if n_boot else {},
    }
    return out


def bootstrap_multilabel(y: np.ndarray, chosen: np.ndarray, proba: np.ndarray, n_boot: int = 1000,
                         seed: int = 0) -> dict:
    """95 % percentile intervals of micro-F1, macro-F1, mAP and subset accuracy over resamples
    of images."""
    rng = np.random.default_rng(seed)
    n = len(y)
    values: dict[str, list[float]] = {"micro_f1": [], "macro_f1": [], "map": [], "accuracy": []}
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        for name, value in _summary(y[idx], chosen[idx], proba[idx]).items():
            if value is not None:
                values[name].append(value)
    return {name: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v else None
            for name, v in values.items()}
