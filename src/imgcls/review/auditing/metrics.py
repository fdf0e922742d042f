"""Per-group metrics of an audit: their names, point estimates (fairlearn) and 95 % intervals.

Every metric is a function of a group's confusion matrix, so the bootstrap resamples
confusion counts: drawing the rows with replacement, as ``fairlearn.metrics.MetricFrame(n_boot=...)``
does, makes each (group, true, predicted) cell's count one draw of a multinomial over the cells.
That gives the same intervals in milliseconds instead of the minutes MetricFrame's row-level
resampling takes (about 100 s for 656 images and 13 metrics).

A metric undefined for a group (the recall of a class the group has no image of, the false
positive rate of a group made only of that class) is NaN here and ``null`` in audit.json;
macro averages leave undefined classes out instead of counting them as 0.

Example:
    >>> import numpy as np
    >>> frame = point_estimates(np.array(["a", "b", "a"]), np.array(["a", "b", "b"]),
    ...                         np.array(["x", "x", "y"]), ["a", "b"])
    >>> frame.by_group["accuracy"].to_dict()
    {'x': 1.0, 'y': 0.0}
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from ...core.errors import ConfigError
from ...core.registry import did_you_mean

AVERAGE_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1")
CLASS_METRICS = ("recall", "fpr", "fnr", "selection_rate")
QUANTILES = (0.025, 0.975)
MAX_CELLS_PER_CHUNK = 2_000_000  # resampled confusion counts held in memory at once


def metric_names(classes: Sequence[str]) -> list[str]:
    """Every metric the audit reports, averages first, then one-vs-rest rates per class."""
    return [*AVERAGE_METRICS, *(f"{kind}:{c}" for kind in CLASS_METRICS for c in classes)]


def check_metric(name: str, classes: Sequence[str]) -> None:
    """Raise ConfigError unless ``name`` is one of :func:`metric_names` for these classes.

    Example:
        >>> check_metric("recall:cat", ["cat", "dog"])
    """
    kind, sep, label = name.partition(":")
    if sep and kind in CLASS_METRICS:
        if label in classes:
            return
        raise ConfigError(f"The 'metric' parameter names class '{label}', which the model does not "
                          f"have.{did_you_mean(label, list(classes))} Classes: {', '.join(classes)}.")
    if not sep and name in AVERAGE_METRICS:
        return
    valid = [*AVERAGE_METRICS, *(f"{kind}:LABEL" for kind in CLASS_METRICS)]
    raise ConfigError(f"Unknown metric '{name}'.{did_you_mean(name, metric_names(classes))} "
                      f"Valid: {', '.join(valid)}.")


def _reference_functions(classes: Sequence[str]) -> dict[str, Callable]:
    """scikit-learn and fairlearn implementations, NaN where a metric is undefined."""
    from fairlearn.metrics import false_negative_rate, false_positive_rate, selection_rate
    from sklearn import metrics as skm

    labels = list(classes)

    def macro(score: Callable) -> Callable:
        return lambda t, p: score(t, p, labels=labels, average="macro", zero_division=np.nan)

    def one_vs_rest(c: str, rate: Callable, needs: str | None) -> Callable:
        def metric(t, p):
            pos = t == c
            if (needs == "positives" and not pos.any()) or (needs == "negatives" and pos.all()):
                return np.nan
            return rate(pos, p == c)
        return metric

    functions = {"accuracy": skm.accuracy_score, "balanced_accuracy": skm.balanced_accuracy_score,
                 "precision": macro(skm.precision_score), "recall": macro(skm.recall_score),
                 "f1": macro(skm.f1_score)}
    rates = {"recall": (skm.recall_score, "positives"),
             "fpr": (lambda t, p: false_positive_rate(t, p, pos_label=True), "negatives"),
             "fnr": (lambda t, p: false_negative_rate(t, p, pos_label=True), "positives"),
             "selection_rate": (lambda t, p: selection_rate(t, p, pos_label=True), None)}
    for kind, (rate, needs) in rates.items():
        for c in classes:
            functions[f"{kind}:{c}"] = one_vs_rest(c, rate, needs)
    return functions


def point_estimates(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray,
                    classes: Sequence[str]):
    """A fairlearn MetricFrame of every metric, overall and by group (no bootstrap).

    Example:
        >>> y = np.array(["a", "b", "b", "a"])
        >>> float(point_estimates(y, y, np.array(["x", "x", "y", "y"]), ["a", "b"]).overall["f1"])
        1.0
    """
    from fairlearn.metrics import MetricFrame

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's ill-defined-metric warnings: NaN says it
        return MetricFrame(metrics=_reference_functions(classes), y_true=np.asarray(y_true),
                           y_pred=np.asarray(y_pred), sensitive_features=np.asarray(groups))


def confusion_by_group(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray,
                       group_names: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Counts of shape (groups, true class, predicted class).

    Example:
        >>> confusion_by_group(np.array(["a"]), np.array(["b"]), np.array(["g"]), ["g"], ["a", "b"])
        array([[[0, 1],
                [0, 0]]])
    """
    def codes(values: np.ndarray, names: Sequence[str]) -> np.ndarray:
        index = {name: k for k, name in enumerate(names)}
        return np.array([index[v] for v in values], dtype=int)

    g, t, p = codes(groups, group_names), codes(y_true, classes), codes(y_pred, classes)
    k = len(classes)
    cells = np.bincount((g * k + t) * k + p, minlength=len(group_names) * k * k)
    return cells.reshape(len(group_names), k, k)


def _nanmean(values: np.ndarray) -> np.ndarray:
    defined = ~np.isnan(values)
    count = defined.sum(axis=-1)
    total = np.where(defined, values, 0.0).sum(axis=-1)
    return np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    top, bottom = np.broadcast_arrays(np.asarray(top, float), np.asarray(bottom, float))
    return np.divide(top, bottom, out=np.full(top.shape, np.nan), where=bottom > 0)


def metrics_from_confusion(cm: np.ndarray, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """Every metric of :func:`metric_names` from confusion counts (..., K, K), vectorised.

    Example:
        >>> m = metrics_from_confusion(np.array([[3, 1], [0, 0]]), ["a", "b"])
        >>> float(m["accuracy"]), float(m["recall:b"])
        (0.75, nan)
    """
    cm = np.asarray(cm, dtype=float)
    total = cm.sum(axis=(-2, -1))
    hits = np.diagonal(cm, axis1=-2, axis2=-1)
    actual, predicted = cm.sum(axis=-1), cm.sum(axis=-2)
    recall = _ratio(hits, actual)
    out = {"accuracy": _ratio(hits.sum(axis=-1), total), "balanced_accuracy": _nanmean(recall),
           "precision": _nanmean(_ratio(hits, predicted)), "recall": _nanmean(recall),
           "f1": _nanmean(_ratio(2 * hits, actual + predicted))}
    negatives = total[..., None] - actual
    per_class = {"recall": recall, "fpr": _ratio(predicted - hits, negatives),
                 "fnr": np.where(np.isnan(recall), np.nan, 1 - recall),
                 "selection_rate": _ratio(predicted, total[..., None])}
    for kind, values in per_class.items():
        for k, c in enumerate(classes):
            out[f"{kind}:{c}"] = values[..., k]
    return out


def _pair(point: np.ndarray) -> tuple[int, int] | None:
    """Indices of the highest and lowest group of a metric's point estimates; None below 2."""
    if (~np.isnan(point)).sum() < 2:
        return None
    return int(np.nanargmax(point)), int(np.nanargmin(point))


def _pair_spread(by_group: np.ndarray, pair: tuple[int, int] | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Signed difference (high minus low group) and ratio (low over high) of one fixed pair of
    groups in each resample. Recomputing the extremes in every resample would give an
    interval of max - min, which is never below 0 and so could not say 'no real gap'."""
    if pair is None:
        nan = np.full(by_group.shape[:-1], np.nan)
        return nan, nan
    high, low = by_group[..., pair[0]], by_group[..., pair[1]]
    return high - low, _ratio(low, high)


def bootstrap_intervals(cm_by_group: np.ndarray, classes: Sequence[str], n_boot: int,
                        seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """95 % percentile intervals per metric of ``overall``, ``by_group``, ``difference`` and
    ``ratio`` (each an array whose first axis is low/high), from ``n_boot`` resamples of rows.
    ``difference`` is that of the groups highest and lowest on the data itself, signed: an
    interval reaching below 0 means the gap may be chance.

    Example:
        >>> cm = np.array([[[8, 2], [1, 9]], [[5, 5], [5, 5]]])
        >>> ci = bootstrap_intervals(cm, ["a", "b"], n_boot=200)
        >>> ci["accuracy"]["by_group"].shape
        (2, 2)
    """
    counts = cm_by_group.ravel()
    pairs = {name: _pair(values) for name, values in metrics_from_confusion(cm_by_group, classes).items()}
    rng = np.random.default_rng(seed)
    chunk = max(1, MAX_CELLS_PER_CHUNK // max(1, counts.size))
    samples: dict[str, dict[str, list]] = {}
    for start in range(0, n_boot, chunk):
        draws = rng.multinomial(counts.sum(), counts / counts.sum(), size=min(chunk, n_boot - start))
        draws = draws.reshape(-1, *cm_by_group.shape)
        by_group = metrics_from_confusion(draws, classes)
        overall = metrics_from_confusion(draws.sum(axis=1), classes)
        for name, values in by_group.items():
            difference, ratio = _pair_spread(values, pairs[name])
            parts = {"overall": overall[name], "by_group": values, "difference": difference,
                     "ratio": ratio}
            for part, array in parts.items():
                samples.setdefault(name, {}).setdefault(part, []).append(array)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # metrics undefined in every resample
        return {name: {part: np.nanquantile(np.concatenate(arrays), QUANTILES, axis=0)
                       for part, arrays in parts.items()} for name, parts in samples.items()}


def _number(value) -> float | None:
    value = float(value)
    return None if np.isnan(value) else round(value, 6)


def _interval(values) -> list[float] | None:
    """[low, high], or None without a bootstrap or where resamples never define the metric."""
    if values is None or np.isnan(np.asarray(values, dtype=float)).any():
        return None
    return [_number(v) for v in values]


def summarise(frame, intervals: dict | None, group_names: Sequence[str]) -> dict[str, dict]:
    """One JSON-ready record per metric: overall, by group, gap and ratio with their intervals.

    Args:
        frame: :func:`point_estimates` of the evaluated rows.
        intervals: :func:`bootstrap_intervals`, or None without a bootstrap.
        group_names: Groups in the order of ``intervals``' group axis.
    """
    by_group = frame.by_group.reindex(list(group_names))
    difference, ratio = frame.difference(method="between_groups"), frame.ratio(method="between_groups")
    out = {}
    for name in by_group.columns:
        column = by_group[name].astype(float)
        ci = intervals[name] if intervals else {}
        two = column.notna().sum() >= 2  # a gap needs two groups where the metric is defined
        out[name] = {
            "overall": _number(frame.overall[name]), "overall_ci": _interval(ci.get("overall")),
            "by_group": {g: {"value": _number(column[g]),
                             "ci": _interval(ci["by_group"][:, k]) if ci else None}
                         for k, g in enumerate(group_names)},
            "min_group": column.idxmin() if two else None,
            "max_group": column.idxmax() if two else None,
            "difference": _number(difference[name]) if two else None,
            "difference_ci": _interval(ci.get("difference")) if two else None,
            "ratio": _number(ratio[name]) if two else None,
            "ratio_ci": _interval(ci.get("ratio")) if two else None,
        }
    return out
