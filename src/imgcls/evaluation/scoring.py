"""Score a fitted model on the splits it was not trained on, and write what a run or an
evaluation folder holds: metrics.json, predictions.csv, skipped.csv and report.html, whose
worst errors carry heat maps from the explainer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import DecisionConfig, RunConfig
from ..core.errors import ConfigError, DataError
from ..core.log import info, warn
from ..data import Dataset, LoadedImages
from ..data.tasks import indicator
from ..models.calibration import expected_calibration_error, fit_temperature, log_loss
from ..models.decision import Decision, set_confidence, tune_decision, tune_multilabel
from ..models.unknown import fit_unknown, resolve_method
from ..report import worst_errors, write_report
from ..review.explaining import error_overlays
from ..runs import REPORT, write_results
from .metrics import compute_metrics
from .multilabel import multilabel_metrics


def decision_order(clf) -> tuple[str, ...] | None:
    """The grade order of a model that decides ordered grades (its rule's), else None."""
    rule = getattr(clf, "decision_", None)
    return rule.order if rule is not None and rule.order else None


def score(clf, images, labels, order: Sequence[str] | None = None
          ) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray | None]:
    """Metrics of a prepared stack, its probabilities, the labels the model decides and their
    unknown scores (None without a detector). A calibrated model's metrics also say what its
    probabilities were before calibration (``calibration``); one with an unknown detector,
    how many images it would call unknown and the accuracy on the rest (``unknown``)."""
    raw = clf.raw_proba(images)
    proba = clf.calibrate(raw)
    decided = clf.decide(proba)
    order = order or decision_order(clf)
    if clf.is_multilabel:
        rule = clf.decision_ or Decision.multilabel(len(clf.classes_))
        metrics = multilabel_metrics(labels, proba, clf.classes_, decided, thresholds=rule.thresholds)
    else:
        metrics = compute_metrics(labels, proba, clf.classes_, y_pred=decided, order=order)
    if clf.calibration_ is not None:
        classes = [str(c) for c in clf.classes_]
        y = np.asarray([classes.index(str(v)) for v in labels])
        chosen = np.asarray([classes.index(str(v)) for v in decided])
        confidence = np.asarray(raw, dtype=np.float64)[np.arange(len(raw)), chosen]
        ece, reliability = expected_calibration_error(chosen == y, confidence)
        metrics["calibration"] = {"temperature": clf.calibration_.temperature, "ece_before": ece,
                                  "log_loss_before": log_loss(y, np.asarray(raw, dtype=np.float64)),
                                  "reliability_before": reliability}
    scores = None
    if clf.unknown_ is not None:
        scores = clf.unknown_.scores(clf, images, proba)
        flagged = clf.unknown_.flags(scores)
        correct = np.asarray(decided).astype(str) == np.asarray(labels).astype(str)
        metrics["unknown"] = {"method": clf.unknown_.method, "threshold": clf.unknown_.threshold,
                              "rejected": float(flagged.mean()),
                              "accuracy_accepted": _mean_or_none(correct[~flagged]),
                              "accuracy_rejected": _mean_or_none(correct[flagged])}
    return metrics, proba, decided, scores


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def evaluate_splits(clf, ds: Dataset, loaded: LoadedImages, order: Sequence[str] | None = None) -> dict:
    """Metrics of the val and test splits, and their probabilities and labels (``predictions``)."""
    metrics: dict[str, Any] = {"predictions": {}}
    for split in ("val", "test"):
        rows = loaded.split_rows(ds, split)
        if len(rows) == 0:
            continue
        metrics[split], proba, decided, scores = score(clf, loaded.images[rows], ds.labels[loaded.rows[rows]],
                                                       order)
        metrics["predictions"][split] = (rows, proba, decided, scores)
    if "test" in metrics:
        m = metrics["test"]
        if m.get("task") == "multilabel":
            info(f"test micro-F1 {m['micro']['f1']:.4f}  macro-F1 {m['macro']['f1']:.4f}  mAP "
                 f"{m['map'] or 0:.4f}  subset accuracy {m['accuracy']:.4f}  (n={m['n']})")
        else:
            info(f"test accuracy {m['accuracy']:.4f}  macro-F1 {m['macro']['f1']:.4f}  (n={m['n']})")
    return metrics


def needs_validation(decision: DecisionConfig) -> list[str]:
    """The ``decision.*`` settings that cannot be met without a validation split."""
    asked = {"target": decision.target not in ("argmax", "auto", "threshold"),
             "calibration": decision.calibration == "temperature",
             "unknown": decision.unknown not in ("auto", "none")}
    return [f"decision.{k}={getattr(decision, k)}" for k, wanted in asked.items() if wanted]


def tune_on_validation(clf, ds: Dataset, loaded: LoadedImages, decision: DecisionConfig,
                       order: Sequence[str] | None = None, seed: int = 0) -> None:
    """Tune on the validation split, in this order: the calibration (a temperature, see
    :mod:`imgcls.models.calibration`), the decision rule to ``decision.target`` (see
    :mod:`imgcls.models.decision`) on the calibrated probabilities, and the unknown detector
    (see :mod:`imgcls.models.unknown`), whose training vectors come from the train split.
    Without a validation split, the ``auto`` settings leave the model as fitted."""
    rows = loaded.split_rows(ds, "val")
    if len(rows) == 0:
        asked = needs_validation(decision)
        if asked:
            raise DataError(f"{', '.join(asked)} is tuned on a validation split, and '{ds.name}' has none.")
        if decision.calibration == "auto" or decision.unknown == "auto":
            info("no validation split: probabilities left as the model gives them and no unknown detector; "
                 "set split.val=0.1 (or give a val split) to calibrate them and answer 'unknown'")
        return
    images, labels = loaded.images[rows], ds.labels[loaded.rows[rows]]
    classes = [str(c) for c in clf.classes_]
    if clf.is_multilabel:
        return _tune_multilabel(clf, ds, loaded, decision, images, labels, seed)
    known = np.isin(labels.astype(str), classes)
    raw = clf.raw_proba(images)
    if decision.calibration != "none" and known.sum() >= 2:
        y = np.asarray([classes.index(str(v)) for v in labels[known]])
        clf.calibration_ = fit_temperature(y, raw[known])
        v = clf.calibration_.validation
        info(f"calibration: {clf.calibration_.describe()}; validation ECE {v['ece_before']:.3f} -> "
             f"{v['ece']:.3f}")
    proba = clf.calibrate(raw)
    target = decision.target
    if target != "argmax":
        rule = tune_decision(target, labels, proba, clf.classes_, order)
        clf.decision_ = rule
        reached = ", ".join(f"{k} {v:.3f}" for k, v in rule.validation.items() if k != "n")
        info(f"decision.target={target} -> {rule.describe()}" + (f"; on {len(rows)} validation images: "
                                                                  f"{reached}" if reached else ""))
    _tune_unknown(clf, ds, loaded, decision, images, proba, seed)


def _tune_unknown(clf, ds: Dataset, loaded: LoadedImages, decision: DecisionConfig, images: np.ndarray,
                  proba: np.ndarray, seed: int) -> None:
    """The unknown detector ``decision.unknown`` asks for: training vectors from the train split,
    the threshold from the validation images."""
    method = resolve_method(decision.unknown, clf)
    if method is not None:
        train_rows = loaded.split_rows(ds, "train")
        clf.unknown_ = fit_unknown(clf, method, loaded.images[train_rows], images, decision.unknown_rate,
                                   seed, proba)
        info(f"unknown: {clf.unknown_.describe()}")


def _tune_multilabel(clf, ds: Dataset, loaded: LoadedImages, decision: DecisionConfig, images: np.ndarray,
                     labels: np.ndarray, seed: int) -> None:
    """Multi-label: per-label thresholds (``decision.target``: f1 by default) and the unknown
    detector (knn); the probabilities are the model's own (no temperature)."""
    if decision.calibration == "temperature":
        raise ConfigError("decision.calibration=temperature is for one label per image; a multi-label "
                          "model's per-label probabilities are used as they are (decision.calibration=none).")
    proba = clf.predict_proba(images)
    truth = indicator(labels, clf.classes_, strict=False)
    clf.decision_ = tune_multilabel(decision.target, truth, proba, clf.classes_)
    info(f"decision.target={clf.decision_.target} -> {clf.decision_.describe()} on {len(images)} validation "
         "images")
    _tune_unknown(clf, ds, loaded, decision, images, proba, seed)


def predictions_table(ds: Dataset, loaded: LoadedImages, rows: np.ndarray, proba: np.ndarray,
                      classes: Sequence[str], split: str, decided: np.ndarray | None = None,
                      scores: np.ndarray | None = None) -> pd.DataFrame:
    """One row per image: label, the decided prediction, its probability, every class's, and
    the unknown score when the model has a detector."""
    picked = loaded.rows[rows]
    names = [str(c) for c in classes]
    pred = np.asarray(names, dtype=object)[proba.argmax(axis=1)] if decided is None else decided
    if ds.multilabel:
        confidence = set_confidence(proba, indicator(pred, names).astype(bool))
    else:
        index = np.array([names.index(str(p)) for p in pred], dtype=int)
        confidence = proba[np.arange(len(proba)), index]
    table = pd.DataFrame({"path": np.asarray(ds.paths, dtype=object)[picked],
                          "label": ds.labels[picked], "prediction": pred,
                          "confidence": np.asarray(confidence).round(6), "split": split})
    for k, c in enumerate(classes):
        table[f"p_{c}"] = proba[:, k].round(6)
    if scores is not None:
        table["unknown_score"] = np.asarray(scores, dtype=np.float64).round(6)
    for column in ds.metadata_columns:  # kept for per-group analysis (audits)
        table[column] = ds.table[column].to_numpy()[picked]
    return table


def split_predictions(metrics: dict, ds: Dataset, loaded: LoadedImages, classes) -> pd.DataFrame:
    """The predictions table of every evaluated split; removes them from ``metrics``."""
    tables = [predictions_table(ds, loaded, rows, proba, classes, split, decided, scores)
              for split, (rows, proba, decided, scores) in metrics.pop("predictions").items()]
    return pd.concat(tables) if tables else pd.DataFrame()


def report_heatmaps(clf, predictions: pd.DataFrame, ds: Dataset, loaded: LoadedImages,
                    limit: int) -> dict[str, dict]:
    """Heat maps of why the model chose its answer, for the ``limit`` worst test errors; a
    failure leaves them out (the report is still written)."""
    if limit <= 0 or predictions.empty or "split" not in predictions or clf.is_multilabel:
        return {}  # multi-label: an explanation targets one label, not a set
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
