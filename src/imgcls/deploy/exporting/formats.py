"""The table of export formats, and the checks every format's writer shares: parity with the
saved model, speed, accuracy. Installed packages add formats through the ``imgcls.exporters``
entry-point group (an :class:`ExportFormat` object)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.io import atomic_write_text
from ...core.registry import Registry
from ...runs import EXPORT_JSON

TIE = 1e-4  # a top-1 flip between two classes closer than this is rounding, not disagreement


@dataclass(frozen=True)
class ExportFormat:
    """One row of the table of formats: ``imgcls export --format NAME``.

    ``write(clf, run, out_dir, check, calib, quantize) -> dict`` writes the files into
    ``out_dir``, verifies them on ``check`` = (prepared images, labels or None) and returns the
    report saved as export.json (with ``files`` and ``parity``).
    """

    name: str
    suffix: str
    description: str
    quantize: tuple[str, ...]
    write: Callable


def _plugin_check(name: str, obj: object) -> str | None:
    return None if isinstance(obj, ExportFormat) else f"it is a {type(obj).__name__}, not an ExportFormat"


FORMATS: Registry[ExportFormat] = Registry("export format", group="imgcls.exporters", check=_plugin_check)


def mark_in_progress(out_dir: Path) -> None:
    """Called before the first file of an export is replaced: until the new export.json is
    written, no file in ``out_dir`` counts as current, so a failure half-way never leaves a
    mix of new and old files that predict would trust."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / EXPORT_JSON, json.dumps({"status": "in progress"}))


def parity(reference: np.ndarray, exported: np.ndarray) -> dict:
    """Top-1 agreement and the largest probability difference between two predictors."""
    ref_top, exp_top = reference.argmax(1), exported.argmax(1)
    ordered = np.sort(reference, axis=1)
    margin = ordered[:, -1] - ordered[:, -2] if reference.shape[1] > 1 else np.ones(len(reference))
    flips = ref_top != exp_top
    return {"n": int(len(reference)), "top1_agreement": float(1 - flips.mean()) if len(flips) else 1.0,
            "disagreements": int(flips.sum()), "disagreements_at_ties": int((flips & (margin < TIE)).sum()),
            "max_abs_diff": float(np.abs(reference - exported).max()) if len(flips) else 0.0}


def timed(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch: int = 32):
    """Probabilities and images/s of ``predict`` over ``images`` in batches."""
    started = time.perf_counter()
    proba = np.concatenate([predict(images[s:s + batch]) for s in range(0, len(images), batch)])
    return proba, len(images) / max(time.perf_counter() - started, 1e-9)


def accuracy(proba: np.ndarray, labels, classes, decide=None) -> float | None:
    """Accuracy of the most probable class; with ``decide`` (probabilities -> labels, e.g. a
    multi-label model's label sets), of what it decides."""
    if labels is None:
        return None
    if decide is not None:
        return float(np.mean(np.asarray(decide(proba)) == np.asarray(labels))) if len(labels) else None
    known = np.isin(labels, classes)
    if not known.any():
        return None
    return float((np.asarray(classes, dtype=object)[proba.argmax(1)][known] == labels[known]).mean())
