"""Render a run's metrics, predictions and dataset into one self-contained report.html."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import RunConfig, config_to_yaml
from ..data import Dataset, LoadedImages
from ..ioutils import atomic_write_text
from . import plots

MAX_ERRORS = 16
MAX_SKIPPED = 200


def render(template: str, **context) -> str:
    """Render one of the package's templates with autoescaping."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("imgcls.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    return env.get_template(template).render(**context)


def worst_errors(predictions: pd.DataFrame, ds: Dataset, loaded: LoadedImages,
                 limit: int = MAX_ERRORS, clf=None, explained: int = 0) -> list[dict]:
    """The most confident wrong predictions, each with a thumbnail; with ``clf``, the first
    ``explained`` of them also get a heat map of why the model predicted what it did."""
    wrong = predictions[(predictions["label"] != predictions["prediction"])
                        & (predictions["split"] == "test")]
    wrong = wrong.sort_values("confidence", ascending=False).head(limit)
    position = {p: k for k, p in enumerate(np.asarray(ds.paths, dtype=object)[loaded.rows])}
    out = []
    for row in wrong.itertuples(index=False):
        k = position.get(row.path)
        thumb = plots.thumbnail_uri(loaded.images[k]) if k is not None else None
        out.append({"path": row.path, "label": row.label, "prediction": row.prediction,
                    "confidence": row.confidence, "thumbnail": thumb, "index": k})
    if clf is not None and explained:
        _explain_errors([e for e in out if e["index"] is not None][:explained], loaded, clf)
    return out


def _explain_errors(errors: list[dict], loaded: LoadedImages, clf) -> None:
    """Grad-CAM (networks) or occlusion (classical) overlays; a failure leaves the report whole."""
    from ..explaining import error_overlays
    from ..log import info

    if not errors:
        return
    images = loaded.images[[e["index"] for e in errors]]
    try:
        overlays = error_overlays(clf, images, [str(e["prediction"]) for e in errors])
    except Exception as exc:  # noqa: BLE001 - an explanation is extra; the report must still be written
        info(f"report: worst errors not explained ({type(exc).__name__}: {exc})")
        return
    method = "Grad-CAM" if clf.school == "deep" else "occlusion"
    for entry, uri in zip(errors, overlays, strict=True):
        entry["explanation"], entry["method"] = uri, method


def _split_counts(ds: Dataset) -> tuple[list[str], list[dict]]:
    splits = [s for s in ("train", "val", "test") if (ds.table.get("split") == s).any()] \
        if "split" in ds.table else []
    rows = []
    for c in ds.classes:
        mask = ds.table["label"] == c
        counts = {s: int((mask & (ds.table["split"] == s)).sum()) for s in splits}
        rows.append({"label": c, "total": int(mask.sum()), **counts})
    return splits, rows


def _figures(test: dict) -> dict:
    cm = test["confusion_matrix"]
    return {
        "cm_counts": plots.confusion_matrix_plot(cm["counts"], cm["labels"], normalized=False),
        "cm_norm": plots.confusion_matrix_plot(cm["normalized"], cm["labels"], normalized=True),
        "per_class": plots.per_class_plot(test["per_class"]),
        "reliability": plots.reliability_plot(test["reliability"], test["ece"]),
    }


def write_report(path: Path, metrics: dict, predictions: pd.DataFrame, ds: Dataset,
                 loaded: LoadedImages, cfg: RunConfig, clf=None) -> Path:
    """Write ``report.html`` for a run or an evaluation; with the fitted ``clf``, the worst
    errors (``cfg.explain.report_errors`` of them) carry heat maps."""
    test = metrics.get("test")
    splits, class_rows = _split_counts(ds)
    context = {
        "title": Path(path).parent.name,
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "metrics": metrics,
        "test": test,
        "val": metrics.get("val"),
        "figures": _figures(test) if test else {},
        "errors": worst_errors(predictions, ds, loaded, clf=clf,
                               explained=cfg.explain.report_errors) if test else [],
        "dataset": ds.summary(),
        "splits": splits,
        "class_rows": class_rows,
        "image_shape": list(loaded.images.shape[1:]),
        "skipped": loaded.skipped.head(MAX_SKIPPED).to_dict("records"),
        "n_skipped": len(loaded.skipped),
        "config_yaml": config_to_yaml(cfg),
        "model": metrics.get("model", {}),
    }
    html = render("report.html.j2", **context)
    atomic_write_text(path, html)
    return Path(path)
