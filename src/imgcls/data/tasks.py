"""What a dataset's labels are: unordered classes, ordered grades (severity, stage, ripeness),
or any number of labels per image (multi-label: "sunset" and "landscape").

A multi-label dataset keeps one ``label`` string per image, its labels sorted and joined by
``|`` ('' for an image with none), so that tables, caches and splits handle it as any other;
:func:`indicator` turns them into the 0/1 matrix models learn from.

Example:
    >>> from imgcls.config import TaskConfig
    >>> ds = Dataset("t", pd.DataFrame({"path": ["a", "b", "c"], "label": ["2", "10", "1"]}))
    >>> grade_order(TaskConfig(kind="ordinal"), ds)
    ('1', '2', '10')
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd  # noqa: F401 - the example

from ..config import TaskConfig
from ..core.errors import ConfigError, DataError
from .dataset import Dataset, join_labels, natural_key, split_labels

TRUE = {"1", "1.0", "true", "yes", "y", "t"}
FALSE = {"0", "0.0", "false", "no", "n", "f", ""}


def grade_order(task: TaskConfig, ds: Dataset) -> tuple[str, ...] | None:
    """The classes from lowest to highest grade for an ordinal task, None for unordered classes.

    ``task.kind=auto`` is ordinal when ``task.order`` is given or the dataset declares its
    grades (``elpv4`` does); the order is ``task.order``, else the dataset's, else the labels
    sorted as numbers.
    """
    unordered = task.kind == "auto" and task.order is None and ds.order is None
    if task.kind in ("single", "multilabel") or unordered:
        return None
    if ds.multilabel:
        raise ConfigError(f"'{ds.name}' is a multi-label dataset; ordered grades need one label per image.")
    order = task.order or (list(ds.order) if ds.order else None)
    classes = ds.classes
    if order is None:
        try:
            order = sorted(classes, key=float)
        except ValueError:
            raise ConfigError(f"task.kind=ordinal needs the grades' order for the labels {classes}, which "
                              "are not numbers: set task.order=[lowest, ..., highest].") from None
    order = [str(c) for c in order]
    if sorted(order) != sorted(classes) or len(set(order)) != len(order):
        raise ConfigError(f"The 'task.order' parameter must list each class once, lowest grade first; the "
                          f"classes are {classes}. Got {order}.")
    return tuple(order)


def is_multilabel(task: TaskConfig, ds: Dataset) -> bool:
    """``task.kind=multilabel``, or ``auto`` for a dataset that declares it (a built-in one)."""
    return task.kind == "multilabel" or (task.kind == "auto" and ds.multilabel)


def as_multilabel(ds: Dataset, task: TaskConfig) -> Dataset:
    """The dataset with canonical multi-label ``label`` values (a copy): from ``task.label_columns``
    (0/1 per label), else from its ``label`` values split at ``task.separator``."""
    table = ds.table.copy()
    if task.label_columns:
        missing = [c for c in task.label_columns if c not in table.columns]
        if missing:
            raise DataError(f"task.label_columns: '{ds.name}' has no column(s) {missing}; its columns are "
                            f"{list(table.columns)}.")
        flags = {}
        for column in task.label_columns:
            values = table[column].astype(str).str.strip().str.lower()
            bad = sorted(set(values) - TRUE - FALSE)
            if bad:
                raise DataError(f"'{ds.name}' column '{column}' (task.label_columns) holds {bad[:5]}; "
                                "use 0/1 or true/false.")
            flags[column] = values.isin(TRUE).to_numpy()
        table["label"] = [join_labels(c for c in task.label_columns if flags[c][i])
                          for i in range(len(table))]
        table = table.drop(columns=list(task.label_columns))
    else:
        sep = task.separator
        table["label"] = [join_labels(v.strip() for v in str(value).split(sep) if v.strip())
                          for value in table["label"]]
    out = ds.subset(np.arange(len(ds)))
    out.table, out.multilabel = table, True
    names = out.classes
    if len(names) < 2:
        raise DataError(f"'{ds.name}' has {len(names)} label(s) ({names}); a multi-label task needs at "
                        "least 2 (with one, train task.kind=single on label / no label).")
    return out


def label_names(labels: Sequence[str]) -> list[str]:
    """Every label of multi-label ``label`` values, in natural order."""
    return sorted({n for value in labels for n in split_labels(value)}, key=natural_key)


def indicator(labels: Sequence[str], names: Sequence[str], strict: bool = True) -> np.ndarray:
    """The 0/1 matrix (N, len(names)) of multi-label ``label`` values; a label outside ``names``
    is a DataError (``strict``) or left out."""
    index = {str(n): k for k, n in enumerate(names)}
    out = np.zeros((len(labels), len(names)), dtype=np.uint8)
    for i, value in enumerate(labels):
        for name in split_labels(value):
            if name in index:
                out[i, index[name]] = 1
            elif strict:
                raise DataError(f"Label '{name}' is not one of the model's labels {list(index)}.")
    return out


def from_indicator(matrix: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Multi-label ``label`` values of a 0/1 (or boolean) matrix."""
    names = [str(n) for n in names]
    return np.asarray([join_labels(n for n, on in zip(names, row, strict=True) if on)
                       for row in np.asarray(matrix, dtype=bool)], dtype=object)
