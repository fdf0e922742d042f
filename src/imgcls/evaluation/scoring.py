"""Score a fitted model on the splits it was not trained on, and write what a run or an
evaluation folder holds: metrics.json, predictions.csv, skipped.csv and report.html, whose
worst errors carry heat maps from the explainer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import RunConfig
from ..core.errors import DataError
from ..core.log import info, warn
from ..data import Dataset, LoadedImages
from ..models.decision import tune_decision
from ..report import worst_errors, write_report
from ..review.explaining import error_overlays
from ..runs import REPORT, write_results
from .metrics import compute_metrics


def decision_order(clf) -> tuple[str, ...] | None:
    """The grade order of a model that decides ordered grades (its rule's), else None."""
    rule = getattr(clf, "decision_", None)
    return rule.order if rule is not None and rule.order else None


def score(clf, images, labels, order: Sequence[str] | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Metrics of a prepared stack, its probabilities and the labels the model decides."""
    proba = clf.predict_proba(images)
    decided = clf.decide(proba)
    order = order or decision_order(clf)
    return compute_metrics(labels, proba, clf.classes_, y_pred=decided, order=order), proba, decided


def evaluate_splits(clf, ds: Dataset, loaded: LoadedImages, order: Sequence[str] | None = None) -> dict:
    """Metrics of the val and test splits, and their probabilities and labels (``predictions``)."""
    metrics: dict[str, Any] = {"predictions": {}}
    for split in ("val", "test"):
        rows = loaded.split_rows(ds, split)
        if len(rows) == 0:
            continue
        metrics[split], proba, decided = score(clf, loaded.images[rows], ds.labels[loaded.rows[rows]], order)
        metrics["predictions"][split] = (rows, proba, decided)
    if "test" in metrics:
        m = metrics["test"]
        info(f"test accuracy {m['accuracy']:.4f}  macro-F1 {m['macro']['f1']:.4f}  (n={m['n']})")
    return metrics


def tune_on_validation(clf, ds: Dataset, loaded: LoadedImages, target: str,
                       order: Sequence[str] | None = None) -> None:
    """Tune the model's decision rule to ``target`` on the validation split (see
    :mod:`imgcls.models.decision`); ``argmax`` leaves the most probable class."""
    if target == "argmax":
        return
    rows = loaded.split_rows(ds, "val")
    if len(rows) == 0:
        raise DataError(f"decision.target={target} is tuned on a validation split, and '{ds.name}' has none.")
    labels = ds.labels[loaded.rows[rows]]
    rule = tune_decision(target, labels, clf.predict_proba(loaded.images[rows]), clf.classes_, order)
    clf.decision_ = rule
    reached = ", ".join(f"{k} {v:.3f}" for k, v in rule.validation.items() if k != "n")
    info(f"decision.target={target} -> {rule.describe()}" + (f"; on {len(rows)} validation images: "
                                                              f"{reached}" if reached else ""))


def predictions_table(ds: Dataset, loaded: LoadedImages, rows: np.ndarray, proba: np.ndarray,
                      classes: Sequence[str], split: str, decided: np.ndarray | None = None) -> pd.DataFrame:
    """One row per image: label, the decided prediction, its probability, every class's."""
    picked = loaded.rows[rows]
    names = [str(c) for c in classes]
    pred = np.asarray(names, dtype=object)[proba.argmax(axis=1)] if decided is None else decided
    index = np.array([names.index(str(p)) for p in pred], dtype=int)
    table = pd.DataFrame({"path": np.asarray(ds.paths, dtype=object)[picked],
                          "label": ds.labels[picked], "prediction": pred,
                          "confidence": proba[np.arange(len(proba)), index].round(6), "split": split})
    for k, c in enumerate(classes):
        table[f"p_{c}"] = proba[:, k].round(6)
    for column in ds.metadata_columns:  # kept for per-group analysis (audits)
        table[column] = ds.table[column].to_numpy()[picked]
    return table


def split_predictions(metrics: dict, ds: Dataset, loaded: LoadedImages, classes) -> pd.DataFrame:
    """The predictions table of every evaluated split; removes them from ``metrics``."""
    tables = [predictions_table(ds, loaded, rows, proba, classes, split, decided)
              for split, (rows, proba, decided) in metrics.pop("predictions").items()]
    return pd.concat(tables) if tables else pd.DataFrame()


def report_heatmaps(clf, predictions: pd.DataFrame, ds: Dataset, loaded: LoadedImages,
                    limit: int) -> dict[str, dict]:
    """Heat maps of why the model chose its answer, for the ``limit`` worst test errors; a
    failure leaves them out (the report is still written)."""
    if limit <= 0 or predictions.empty or "split" not in predictions:
        return {}
    position = {p: k for k, p in enumerate(np.asarray(ds.paths, dtype=object)[loaded.rows])}
    errors = [row for row in worst_errors(predictions).itertuples(index=False)
              if row.path in position][:limit]
    if not errors:
        return {}
    images = loaded.images[[position[row.path] for row in errors]]
    try:
        uris, method = error_overlays(clf, images, [str(row.prediction) for row in errors])
    except Exception as exc:  # noqa: BLE001 - an explanation is extra; the report must still be written
        info(f"report: worst errors not explained ({type(exc).__name__}: {exc})")
        return {}
    return {row.path: {"uri": uri, "method": method} for row, uri in zip(errors, uris, strict=True)}


def write_outputs(folder: Path, metrics: dict, predictions: pd.DataFrame, ds: Dataset,
                  loaded: LoadedImages, cfg: RunConfig, clf) -> None:
    """The tables, metrics.json and report.html of a run or an evaluation folder."""
    write_results(folder, metrics, predictions, loaded.skipped)
    heatmaps = report_heatmaps(clf, predictions, ds, loaded, cfg.explain.report_errors)
    write_report(folder / REPORT, metrics, predictions, ds, loaded, cfg, heatmaps)


def warn_skipped(loaded: LoadedImages, ds: Dataset) -> None:
    for path, reason in loaded.skipped.itertuples(index=False):
        warn(f"skipped {path}: {reason}")
    if len(loaded.skipped):
        warn(f"{len(loaded.skipped)} of {len(ds)} images skipped; reasons in skipped.csv")
