"""The table of export formats, and the checks every format's writer shares: parity with the
saved model, speed, accuracy. Installed packages add formats through the ``imgcls.exporters``
entry-point group (an :class:`ExportFormat` object)."""

from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.errors import ModelError
from ...core.io import atomic_write_text
from ...core.log import info, warn
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


INT8_ACCURACY_WARNING = 0.01


def three_channels(images: np.ndarray) -> np.ndarray:
    """A prepared stack as the graphs take it: uint8 (N, H, W, 3), grey repeated."""
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=3)
    return np.ascontiguousarray(images, dtype=np.uint8)


def require_agreement(runtime: str, agreement: dict) -> None:
    """A ModelError unless every top-1 label agrees (a flip at a tie is rounding)."""
    if agreement["disagreements"] > agreement["disagreements_at_ties"]:
        raise ModelError(f"The {runtime} export disagrees with PyTorch on {agreement['disagreements']} of "
                         f"{agreement['n']} test images (max probability difference "
                         f"{agreement['max_abs_diff']:.3g}); nothing was written. Please report this.")


def int8_summary(fp32_proba: np.ndarray, proba: np.ndarray, fp32_speed: float, speed: float,
                 labels, classes, decide=None) -> dict:
    """How an int8 copy compares with its fp32 original: accuracy change, agreement, speed-up;
    a loss of more than one accuracy point is also a warning."""
    fp32_acc = accuracy(fp32_proba, labels, classes, decide)
    int8_acc = accuracy(proba, labels, classes, decide)
    change = None if fp32_acc is None or int8_acc is None else round(int8_acc - fp32_acc, 4)
    agreement = parity(fp32_proba, proba)
    info(f"int8: {speed / fp32_speed:.2f}x the fp32 speed, top-1 agreement {agreement['top1_agreement']:.2%}"
         + ("" if change is None else f", accuracy change {change * 100:+.2f} points"))
    if change is not None and change < -INT8_ACCURACY_WARNING:
        warn(f"int8 loses {-change * 100:.1f} accuracy points on the test images; "
             "prefer the fp32 model or calibrate on more images (--calibration).")
    return {"accuracy_fp32": fp32_acc, "accuracy_int8": int8_acc, "accuracy_change": change,
            "top1_agreement_with_fp32": agreement["top1_agreement"],
            "max_abs_diff_from_fp32": agreement["max_abs_diff"],
            "images_per_s_fp32": round(fp32_speed, 1), "images_per_s_int8": round(speed, 1),
            "speedup": round(speed / fp32_speed, 2)}


def file_facts(path: Path, precision: str, runtime: str | None = None) -> dict:
    """Size and sha256 of an exported file, or of a folder's files in name order."""
    import hashlib

    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode())
        digest.update(f.read_bytes())
    facts = {"precision": precision, "bytes": sum(f.stat().st_size for f in files),
             "sha256": digest.hexdigest()}
    return {**facts, "runtime": runtime} if runtime else facts


@contextlib.contextmanager
def quiet_converter() -> Iterator[None]:
    """Keep a converter's progress lines, progress bars and warnings off the user's terminal
    (stdout is for results); its errors still raise."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def int8_section(quantize_into: Callable[[], None], runner: Callable, fp32_proba: np.ndarray,
                 fp32_speed: float, images: np.ndarray, labels, classes, decide, calib: np.ndarray) -> dict:
    """Quantise (``quantize_into()`` writes the int8 file ``runner`` reads), then compare it with fp32."""
    started = time.perf_counter()
    quantize_into()
    seconds = round(time.perf_counter() - started, 2)
    proba, speed = timed(runner(), images)
    return {"calibration_images": int(len(calib)), "quantize_seconds": seconds,
            **int8_summary(fp32_proba, proba, fp32_speed, speed, labels, classes, decide)}


def commit_staged(staged: dict[str, Path], out_dir: Path, names: dict[str, str]) -> None:
    """Move each staged file that exists to its name in ``out_dir``; remove the ones not made
    this time (an int8 copy from an earlier export would be stale)."""
    for precision, path in staged.items():
        if path.exists():
            path.replace(out_dir / names[precision])
        else:
            (out_dir / names[precision]).unlink(missing_ok=True)
