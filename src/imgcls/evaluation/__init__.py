"""Evaluation: metrics of a model's probabilities (:mod:`.metrics`), the scoring of a fitted
model's splits (:mod:`.scoring`), and ``evaluate``: re-evaluate a saved run on its own test
split or on other data.

Example:
    >>> result = evaluate("runs/digits-svm")                 # doctest: +SKIP
    >>> result.metrics["accuracy"], result.path              # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import cache_root, resolve_n_jobs
from ..core.log import info
from ..data import load_images
from ..runs import REPORT, Run
from .metrics import compute_metrics
from .scoring import predictions_table, score, warn_skipped, write_outputs

__all__ = ["EvaluationResult", "compute_metrics", "evaluate"]


@dataclass
class EvaluationResult:
    """What ``evaluate`` wrote: its folder, the split's name and its metrics."""

    path: Path
    split: str
    metrics: dict

    @property
    def report(self) -> Path:
        return self.path / REPORT


def evaluate(run: str | Path, data: str | Path | None = None, *, split: str | None = None,
             out: str | Path | None = None, progress: bool = True) -> EvaluationResult:
    """Re-evaluate a saved run on its own test split, or on another dataset.

    Args:
        run: Run folder written by ``imgcls train`` (or its model folder).
        data: Dataset (folder, manifest, built-in); default the run's own data.
        split: Rows to use: ``test`` (default for the run's data), ``all`` (default for other
            data), ``train`` or ``val``.
        out: Folder for metrics.json, predictions.csv and report.html; default
            ``RUN/eval-<data>-<split>``.

    Example:
        >>> evaluate("runs/digits-svm", "photos/").metrics["accuracy"]   # doctest: +SKIP
    """
    opened = Run.open(run)
    cfg = opened.require_config()
    clf = opened.model
    ds, split = opened.rows(data, split)
    loaded = load_images(ds, clf.image_spec, resolve_n_jobs(cfg.n_jobs), cache_root(cfg), progress)
    warn_skipped(loaded, ds)
    metrics, proba, decided = score(clf, loaded.images, ds.labels[loaded.rows])
    out_dir = Path(out) if out else opened.path / f"eval-{ds.name}-{split}"
    ds.table["split"] = split
    predictions = predictions_table(ds, loaded, np.arange(len(loaded.rows)), proba, clf.classes_, split,
                                    decided)
    write_outputs(out_dir, {"test": metrics, "dataset": ds.summary()}, predictions, ds, loaded, cfg, clf)
    info(f"{split} accuracy {metrics['accuracy']:.4f} on {metrics['n']} images; "
         f"report: {out_dir / REPORT}")
    return EvaluationResult(out_dir, split, metrics)
