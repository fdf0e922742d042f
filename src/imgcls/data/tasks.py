"""What a dataset's labels are: unordered classes, or ordered grades (severity, stage, ripeness).

Example:
    >>> from imgcls.config import TaskConfig
    >>> ds = Dataset("t", pd.DataFrame({"path": ["a", "b", "c"], "label": ["2", "10", "1"]}))
    >>> grade_order(TaskConfig(kind="ordinal"), ds)
    ('1', '2', '10')
"""

from __future__ import annotations

import pandas as pd  # noqa: F401 - the example

from ..config import TaskConfig
from ..core.errors import ConfigError
from .dataset import Dataset


def grade_order(task: TaskConfig, ds: Dataset) -> tuple[str, ...] | None:
    """The classes from lowest to highest grade for an ordinal task, None for unordered classes.

    ``task.kind=auto`` is ordinal when ``task.order`` is given or the dataset declares its
    grades (``elpv4`` does); the order is ``task.order``, else the dataset's, else the labels
    sorted as numbers.
    """
    if task.kind == "single" or (task.kind == "auto" and task.order is None and ds.order is None):
        return None
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
