"""The rows an audit measures (true label, prediction, group) and the groups' representation.

Predictions come from the run's own ``predictions.csv`` when it holds the split and the group
column, otherwise from the saved model applied to the data, as ``imgcls evaluate`` does.

Example:
    >>> import pandas as pd
    >>> group_labels(pd.Series(["mono", None, "", 1.0])).tolist()
    ['mono', '(missing)', '(missing)', '1.0']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...config import cache_root, resolve_n_jobs
from ...core.errors import DataError, ImgclsError
from ...core.log import warn
from ...data import load_images
from ...data.dataset import natural_key, split_labels
from ...runs import Run

MISSING = "(missing)"
PREDICTION_COLUMNS = ("path", "label", "prediction", "confidence", "split")


@dataclass
class AuditRows:
    """True and predicted labels of the evaluated images, with each image's group."""

    dataset: str
    split: str
    source: str  # "predictions.csv" or "model"
    y_true: np.ndarray
    y_pred: np.ndarray
    groups: np.ndarray

    @property
    def group_names(self) -> list[str]:
        return sorted(set(self.groups), key=natural_key)


def group_labels(values: pd.Series) -> np.ndarray:
    """Group values as strings; missing and blank values become ``(missing)``."""
    text = values.astype(object).where(values.notna(), MISSING).astype(str)
    return np.where(text.str.strip() == "", MISSING, text).astype(object)


def check_group_column(columns: list[str], group_by: str, where: str) -> None:
    """Raise DataError unless ``group_by`` is one of the metadata ``columns``."""
    if group_by in columns:
        return
    listed = ", ".join(columns) if columns else "none"
    raise DataError(f"Column '{group_by}' is not in {where}; metadata columns: {listed}. "
                    "Use --group-by with one of them.")


def _metadata_columns(table: pd.DataFrame, classes: list[str]) -> list[str]:
    probabilities = {f"p_{c}" for c in classes}
    return [c for c in table.columns if c not in PREDICTION_COLUMNS and c not in probabilities]


def rows_from_predictions(run, group_by: str, split: str, classes: list[str]) -> AuditRows | None:
    """The ``split`` rows of the run's predictions.csv; None when it cannot answer (no file,
    no such rows, no such column: the model then predicts)."""
    table = run.predictions() if split != "all" else None
    if table is None:
        return None
    if "split" not in table or group_by not in _metadata_columns(table, classes):
        return None
    table = table[table["split"] == split]
    if table.empty:
        return None
    name = run.metrics.get("dataset", {}).get("name") or Path(run.require_config().data.source).stem
    return AuditRows(name, split, "predictions.csv", table["label"].to_numpy(object),
                     table["prediction"].to_numpy(object), group_labels(table[group_by]))


def rows_from_model(run, data, split: str | None, group_by: str, progress: bool) -> AuditRows:
    """Predict ``data`` (None: the run's own data) with the run's saved model."""
    cfg = run.require_config()
    ds, split = run.rows(data, split)
    check_group_column(ds.metadata_columns, group_by, f"'{ds.name}'")
    clf = run.model
    loaded = load_images(ds, clf.image_spec, resolve_n_jobs(cfg.n_jobs), cache_root(cfg), progress)
    if len(loaded.skipped):
        warn(f"{len(loaded.skipped)} of {len(ds)} images could not be decoded; the audit leaves "
             "them out.")
    if len(loaded.rows) == 0:
        raise DataError(f"No image of '{ds.name}' ({split}) could be decoded.")
    y_pred = clf.decide(clf.predict_proba(loaded.images))  # the model's decision rule, as predict
    groups = group_labels(ds.table[group_by].iloc[loaded.rows].reset_index(drop=True))
    return AuditRows(ds.name, split, "model", ds.labels[loaded.rows].astype(str).astype(object),
                     y_pred.astype(str).astype(object), groups)


def binary_classes(label: str) -> list[str]:
    return [label, f"not {label}"]


def one_label(values: np.ndarray, label: str) -> np.ndarray:
    """Multi-label values ('a|b') as one label's two classes: ``label`` or ``not label``."""
    return np.asarray([label if label in split_labels(v) else f"not {label}" for v in values], dtype=object)


def load_rows(run, data, split: str | None, group_by: str, classes: list[str],
              progress: bool, label: str | None = None) -> AuditRows:
    """Rows to audit: predictions.csv when it can answer, else the model's predictions; with
    ``label`` (a multi-label run), as that label's two classes."""
    rows = None
    if data is None:
        rows = rows_from_predictions(run, group_by, split or "test", classes)
    if rows is None:
        rows = rows_from_model(run, data, split, group_by, progress)
    if label is not None:
        rows = AuditRows(rows.dataset, rows.split, rows.source, one_label(rows.y_true, label),
                         one_label(rows.y_pred, label), rows.groups)
        classes = binary_classes(label)
    unknown = sorted(set(rows.y_true) - set(classes))
    if unknown:
        raise DataError(f"Labels {unknown} of '{rows.dataset}' are not among the model's classes "
                        f"{classes}; an audit needs the classes the model was trained on.")
    if len(rows.group_names) < 2:
        raise DataError(f"Column '{group_by}' has {len(rows.group_names)} group(s) in the evaluated "
                        f"rows ({rows.group_names}); an audit compares at least 2.")
    return rows


def training_rows(run: Run, group_by: str) -> tuple[pd.DataFrame | None, str]:
    """Label and group of each training row of the run's own data (table only, nothing
    decoded), or None with the reason when they are unknown."""
    try:
        ds = run.dataset()
    except ImgclsError as exc:
        return None, f"the run's training data cannot be read ({exc})"
    if group_by not in ds.metadata_columns:
        return None, f"the training data has no column '{group_by}'"
    train = ds.table[ds.table["split"] == "train"].reset_index(drop=True)
    return pd.DataFrame({"label": train["label"].astype(str), "group": group_labels(train[group_by])}), ""


def _counts(labels, groups, classes: list[str]) -> pd.DataFrame:
    table = pd.crosstab(pd.Series(groups, name="group"), pd.Series(labels, name="label"))
    return table.reindex(columns=classes, fill_value=0)


def _group_record(group: str, eval_cells: pd.Series, train_cells: pd.Series | None, n_eval: int,
                  n_train: int, min_group_size: int, min_cell: int) -> dict:
    def share(count, total: int) -> float | None:
        return round(float(count) / total, 6) if total else None

    known = train_cells is not None
    return {"group": group, "eval_n": int(eval_cells.sum()), "eval_share": share(eval_cells.sum(), n_eval),
            "train_n": int(train_cells.sum()) if known else None,
            "train_share": share(train_cells.sum(), n_train) if known else None,
            "small": bool(eval_cells.sum() < min_group_size),
            "classes": {c: {"eval_n": int(eval_cells[c]), "train_n": int(train_cells[c]) if known else None,
                            "small": bool(eval_cells[c] < min_cell)} for c in eval_cells.index}}


def representation(rows: AuditRows, training: pd.DataFrame | None, note: str, classes: list[str],
                   min_group_size: int) -> dict:
    """Count and share of each group in the training and the evaluated data, per class too.

    Groups (and group x class cells, at a third of the size) below ``min_group_size`` in the
    evaluated data are flagged ``small``; groups seen only in training are listed with
    ``eval_n`` 0.
    """
    evaluated = _counts(rows.y_true, rows.groups, classes).reindex(rows.group_names, fill_value=0)
    trained = None if training is None else _counts(training["label"], training["group"], classes)
    extra = [] if trained is None else [g for g in trained.index if g not in evaluated.index]
    zeros = pd.Series(0, index=classes)
    min_cell = max(1, min_group_size // 3)
    records = []
    for g in [*evaluated.index, *extra]:
        eval_cells = evaluated.loc[g] if g in evaluated.index else zeros
        train_cells = None if trained is None else trained.loc[g] if g in trained.index else zeros
        records.append(_group_record(g, eval_cells, train_cells, len(rows.groups),
                                     0 if training is None else len(training), min_group_size, min_cell))
    return {"training": {"known": training is not None, "n": None if training is None else len(training),
                         "note": note or None},
            "evaluated": {"n": len(rows.groups), "dataset": rows.dataset, "split": rows.split,
                          "source": rows.source},
            "min_group_size": min_group_size, "min_cell_size": min_cell, "groups": records}
