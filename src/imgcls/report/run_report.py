"""A run's (or an evaluation's) report.html: metrics, figures, worst errors, dataset, config."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import RunConfig, config_to_yaml
from ..core.io import atomic_write_text
from ..data import Dataset, LoadedImages
from ..data.dataset import split_labels
from ..data.roi import preview_samples
from . import plots
from .render import render

MAX_ERRORS = 16
MAX_SKIPPED = 200


def worst_errors(predictions: pd.DataFrame, limit: int = MAX_ERRORS) -> pd.DataFrame:
    """The most confident wrong predictions on the test split, most confident first."""
    wrong = predictions[(predictions["label"] != predictions["prediction"])
                        & (predictions["split"] == "test")]
    return wrong.sort_values("confidence", ascending=False).head(limit)


def _error_cards(predictions: pd.DataFrame, ds: Dataset, loaded: LoadedImages,
                 heatmaps: dict[str, dict]) -> list[dict]:
    position = {p: k for k, p in enumerate(np.asarray(ds.paths, dtype=object)[loaded.rows])}
    out = []
    for row in worst_errors(predictions).itertuples(index=False):
        k = position.get(row.path)
        card = {"path": row.path, "label": row.label, "prediction": row.prediction,
                "confidence": row.confidence,
                "thumbnail": plots.thumbnail_uri(loaded.images[k]) if k is not None else None}
        if row.path in heatmaps:
            card.update(explanation=heatmaps[row.path]["uri"], method=heatmaps[row.path]["method"])
        out.append(card)
    return out


def _label_errors(predictions: pd.DataFrame, ds: Dataset, loaded: LoadedImages, classes: list[str],
                  limit: int = 6) -> dict[str, list[dict]]:
    """Multi-label: per label, the test images whose probability of it was furthest on the wrong
    side of its decision (missed: the label was there; added: it was not)."""
    position = {p: k for k, p in enumerate(np.asarray(ds.paths, dtype=object)[loaded.rows])}
    rows = predictions[predictions["split"] == "test"] if "split" in predictions else predictions
    out = {}
    for c in classes:
        if f"p_{c}" not in rows:
            continue
        truth = rows["label"].map(lambda v, c=c: c in split_labels(v)).to_numpy(bool)
        chosen = rows["prediction"].map(lambda v, c=c: c in split_labels(v)).to_numpy(bool)
        p = rows[f"p_{c}"].to_numpy(float)
        wrong = np.flatnonzero(truth != chosen)
        badness = np.where(truth[wrong], 1 - p[wrong], p[wrong])
        cards = []
        for i in wrong[np.argsort(-badness)][:limit]:
            row = rows.iloc[i]
            k = position.get(row["path"])
            cards.append({"path": row["path"], "label": row["label"], "prediction": row["prediction"],
                          "probability": float(p[i]), "kind": "missed" if truth[i] else "added",
                          "thumbnail": plots.thumbnail_uri(loaded.images[k]) if k is not None else None})
        out[c] = cards
    return out


def _multilabel_figures(test: dict) -> dict:
    labels = list(test["per_label"])
    return {"per_label": plots.per_class_plot(test["per_label"], "per-label precision, recall, F1"),
            "error_cooccurrence": plots.cooccurrence_plot(test["error_cooccurrence"], labels,
                                                          "labels wrong on the same test image"),
            "reliability": plots.reliability_plot(test["reliability"], test["ece"])}


def _split_counts(ds: Dataset) -> tuple[list[str], list[dict]]:
    splits = [s for s in ("train", "val", "test") if (ds.table.get("split") == s).any()] \
        if "split" in ds.table else []
    rows = []
    for c in ds.classes:
        mask = ds.table["label"].map(lambda v, c=c: c in split_labels(v)) if ds.multilabel else \
            ds.table["label"] == c
        counts = {s: int((mask & (ds.table["split"] == s)).sum()) for s in splits}
        rows.append({"label": c, "total": int(mask.sum()), **counts})
    return splits, rows


def _figures(test: dict, predictions: pd.DataFrame, decision: dict | None) -> dict:
    cm = test["confusion_matrix"]
    out = {
        "cm_counts": plots.confusion_matrix_plot(cm["counts"], cm["labels"], normalized=False),
        "cm_norm": plots.confusion_matrix_plot(cm["normalized"], cm["labels"], normalized=True),
        "per_class": plots.per_class_plot(test["per_class"]),
        "reliability": plots.reliability_plot(test["reliability"], test["ece"],
                                              (test.get("calibration") or {}).get("reliability_before"),
                                              (test.get("calibration") or {}).get("ece_before")),
    }
    if decision and decision.get("kind") == "threshold" and not predictions.empty:
        label = decision["positive"]
        rows = predictions[predictions["split"] == "test"]
        if f"p_{label}" in rows and len(rows):
            out["pr"] = plots.precision_recall_plot((rows["label"] == label).to_numpy(),
                                                    rows[f"p_{label}"].to_numpy(float), decision["threshold"],
                                                    label)
    return out


def roi_preview(ds: Dataset, roi: str, rows: np.ndarray | None = None) -> str | None:
    """The region of interest on sample images (the test split's when there is one): a wrong
    crop is worse than none, so the report shows what was cut."""
    if roi == "none" or not len(ds):
        return None
    if rows is None:
        test = np.flatnonzero(ds.table["split"].to_numpy() == "test") if "split" in ds.table else []
        rows = test if len(test) else np.arange(len(ds))
    samples = preview_samples(lambda k: ds.read_sample(int(rows[k])), len(rows), roi)
    return plots.roi_preview_plot(samples, f"region of interest: {roi}") if samples else None


def write_report(path: Path, metrics: dict, predictions: pd.DataFrame, ds: Dataset,
                 loaded: LoadedImages, cfg: RunConfig, heatmaps: dict[str, dict] | None = None) -> Path:
    """Write ``report.html`` for a run or an evaluation.

    Args:
        heatmaps: For some of the worst errors, by path: ``{"uri": data URI, "method": name}``
            of why the model chose its answer (the caller explains them).
    """
    test = metrics.get("test")
    multilabel = bool(test) and test.get("task") == "multilabel"
    splits, class_rows = _split_counts(ds)
    context = {
        "title": Path(path).parent.name,
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "metrics": metrics,
        "test": test,
        "val": metrics.get("val"),
        "figures": ({} if not test else _multilabel_figures(test) if multilabel
                    else _figures(test, predictions, metrics.get("decision"))),
        "decision": metrics.get("decision"),
        "errors": _error_cards(predictions, ds, loaded, heatmaps or {}) if test and not multilabel else [],
        "label_errors": _label_errors(predictions, ds, loaded, test["classes"]) if multilabel else {},
        "dataset": ds.summary(),
        "splits": splits,
        "class_rows": class_rows,
        "image_shape": list(loaded.images.shape[1:]),
        "skipped": loaded.skipped.head(MAX_SKIPPED).to_dict("records"),
        "n_skipped": len(loaded.skipped),
        "config_yaml": config_to_yaml(cfg),
        "model": metrics.get("model", {}),
        "roi_preview": roi_preview(ds, cfg.model.roi),
        "roi": cfg.model.roi,
    }
    html = render("report.html.j2", **context)
    atomic_write_text(path, html)
    return Path(path)
