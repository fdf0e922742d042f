"""Evaluation: metrics of a model's probabilities (:mod:`.metrics`), the scoring of a fitted
model's splits (:mod:`.scoring`), and ``evaluate``: re-evaluate a saved run on its own test
split or on other data.

Example:
    >>> result = evaluate("runs/digits-svm")                 # doctest: +SKIP
    >>> result.metrics["accuracy"], result.path              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import cache_root, resolve_n_jobs
from ..core.errors import DataError
from ..core.log import info
from ..data import load_images
from ..deploy.inputs import as_dataset
from ..models.unknown import (
    available_methods,
    detection_metrics,
    energy_score,
    knn_score,
    logits_of,
    msp_score,
)
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
             out: str | Path | None = None, progress: bool = True,
             ood: str | Path | Sequence[str | Path] | None = None) -> EvaluationResult:
    """Re-evaluate a saved run on its own test split, or on another dataset.

    Args:
        run: Run folder written by ``imgcls train`` (or its model folder).
        data: Dataset (folder, manifest, built-in); default the run's own data.
        split: Rows to use: ``test`` (default for the run's data), ``all`` (default for other
            data), ``train`` or ``val``.
        out: Folder for metrics.json, predictions.csv and report.html; default
            ``RUN/eval-<data>-<split>``.
        ood: Images of other kinds, one or several (folder, glob, manifest or built-in dataset;
            labels are not read): how well each unknown score the model can give tells them
            from ``data``'s images, as AUROC and the false-positive rate at 95 % true-positive
            rate, and what share of each the model's own threshold calls unknown
            (``metrics["ood"][name]``).

    Example:
        >>> evaluate("runs/digits-svm", "photos/").metrics["accuracy"]   # doctest: +SKIP
    """
    opened = Run.open(run)
    cfg = opened.require_config()
    clf = opened.model
    ds, split = opened.rows(data, split)
    loaded = load_images(ds, clf.image_spec, resolve_n_jobs(cfg.n_jobs), cache_root(cfg), progress)
    warn_skipped(loaded, ds)
    metrics, proba, decided, scores = score(clf, loaded.images, ds.labels[loaded.rows])
    out_dir = Path(out) if out else opened.path / f"eval-{ds.name}-{split}"
    ds.table["split"] = split
    predictions = predictions_table(ds, loaded, np.arange(len(loaded.rows)), proba, clf.classes_, split,
                                    decided, scores)
    results = {"test": metrics, "dataset": ds.summary()}
    if ood is not None and len(others := [str(o) for o in ([ood] if isinstance(ood, str | Path) else ood)]):
        results["ood"] = ood_metrics(clf, loaded.images, proba, others, resolve_n_jobs(cfg.n_jobs),
                                     cache_root(cfg), progress, scores)
    write_outputs(out_dir, results, predictions, ds, loaded, cfg, clf)
    info(f"{split} accuracy {metrics['accuracy']:.4f} on {metrics['n']} images; "
         f"report: {out_dir / REPORT}")
    if "ood" in results:
        metrics = {**metrics, "ood": results["ood"]}
    return EvaluationResult(out_dir, split, metrics)


def ood_metrics(clf, images: np.ndarray, proba: np.ndarray, others: Sequence[str], n_jobs: int = 1,
                cache_dir=None, progress: bool = False, scores: np.ndarray | None = None) -> dict[str, dict]:
    """For each dataset of ``others``: how well each unknown score this model can give tells its
    images from the in-distribution ``images`` (AUROC, FPR at 95 % TPR), and the share of
    each that the model's own threshold calls unknown. Keyed by the dataset as given."""
    in_scores = _all_scores(clf, images, proba, scores)
    out: dict[str, dict] = {}
    for ood in others:
        other_ds = as_dataset([ood])
        other = load_images(other_ds, clf.image_spec, n_jobs, cache_dir, progress)
        if len(other.images) == 0:
            raise DataError(f"No image of '{ood}' could be decoded to compare against; give a folder, glob, "
                            "manifest or built-in dataset of images of other kinds.")
        other_proba = clf.predict_proba(other.images)
        theirs = _all_scores(clf, other.images, other_proba)
        found = {"n_in": int(len(images)), "n_out": int(len(other.images)),
                 "skipped_out": int(len(other.skipped)),
                 "methods": {m: detection_metrics(in_scores[m], theirs[m]) for m in in_scores}}
        if clf.unknown_ is not None:
            mine = clf.unknown_.method
            found["threshold"] = {"method": mine, "value": clf.unknown_.threshold,
                                  "rejected_in": float(clf.unknown_.flags(in_scores[mine]).mean()),
                                  "rejected_out": float(clf.unknown_.flags(theirs[mine]).mean())}
        for method, m in found["methods"].items():
            info(f"unknown ({method}) vs '{ood}': AUROC {m['auroc']:.3f}, FPR@95TPR {m['fpr_at_95_tpr']:.3f}")
        if "threshold" in found:
            t = found["threshold"]
            info(f"the model's threshold calls {t['rejected_out']:.1%} of '{ood}' unknown and "
                 f"{t['rejected_in']:.1%} of the evaluated images")
        out[str(ood)] = found
    return out


def _all_scores(clf, images: np.ndarray, proba: np.ndarray, known: np.ndarray | None = None
                ) -> dict[str, np.ndarray]:
    """Every unknown score the model can give these images (knn only where the model keeps
    training vectors, i.e. its detector is knn); ``known``: the detector's own scores of
    them, already computed."""
    scores = {}
    for method in available_methods(clf):
        if known is not None and clf.unknown_ is not None and method == clf.unknown_.method:
            scores[method] = np.asarray(known, dtype=np.float64)
        elif method == "knn":
            if clf.unknown_ is not None and clf.unknown_.bank is not None:
                scores[method] = knn_score(clf.representation(images), clf.unknown_.bank, clf.unknown_.k,
                                           clf.unknown_.metric)
        elif method == "energy":
            scores[method] = energy_score(logits_of(clf, images))
        else:
            scores[method] = msp_score(proba)
    return scores
