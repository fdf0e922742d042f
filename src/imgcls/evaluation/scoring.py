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
from ..core.log import info, warn
from ..data import Dataset, LoadedImages
from ..report import worst_errors, write_report
from ..review.explaining import error_overlays
from ..runs import REPORT, write_results
from .metrics import compute_metrics


def evaluate_splits(clf, ds: Dataset, loaded: LoadedImages) -> dict:
    """Metrics of the val and test splits, and their probabilities (``predictions``)."""
    metrics: dict[str, Any] = {"predictions": {}}
    for split in ("val", "test"):
        rows = loaded.split_rows(ds, split)
        if len(rows) == 0:
            continue
        proba = clf.predict_proba(loaded.images[rows])
        labels = ds.labels[loaded.rows[rows]]
        metrics[split] = compute_metrics(labels, proba, clf.classes_)
        metrics["predictions"][split] = (rows, proba)
    if "test" in metrics:
        m = metrics["test"]
        info(f"test accuracy {m['accuracy']:.4f}  macro-F1 {m['macro']['f1']:.4f}  (n={m['n']})")
    return metrics


def predictions_table(ds: Dataset, loaded: LoadedImages, rows: np.ndarray, proba: np.ndarray,
                      classes: Sequence[str], split: str) -> pd.DataFrame:
    picked = loaded.rows[rows]
    pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    table = pd.DataFrame({"path": np.asarray(ds.paths, dtype=object)[picked],
                          "label": ds.labels[picked], "prediction": pred,
                          "confidence": proba.max(axis=1).round(6), "split": split})
    for k, c in enumerate(classes):
        table[f"p_{c}"] = proba[:, k].round(6)
    for column in ds.metadata_columns:  # kept for per-group analysis (audits)
        table[column] = ds.table[column].to_numpy()[picked]
    return table


def split_predictions(metrics: dict, ds: Dataset, loaded: LoadedImages, classes) -> pd.DataFrame:
    """The predictions table of every evaluated split; removes them from ``metrics``."""
    tables = [predictions_table(ds, loaded, rows, proba, classes, split)
              for split, (rows, proba) in metrics.pop("predictions").items()]
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
