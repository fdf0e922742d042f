"""Export a trained run for deployment, verified against the original before it is kept.

``imgcls export RUN [--quantize int8]`` writes ``RUN/export/model.onnx`` (and
``model.int8.onnx``) plus ``export.json``: the graph takes uint8 (N, H, W, 3) images at the
model's input size and returns probabilities, with normalisation, test-time augmentation
and softmax inside. Each export is checked by the ONNX checker and then run on the run's
test images beside PyTorch; the files are kept only if every top-1 label agrees.

Example:
    >>> report = export("runs/elpv", quantize="int8")             # doctest: +SKIP
    >>> report["parity"]["top1_agreement"], report["int8"]["accuracy_change"]   # doctest: +SKIP
    (1.0, -0.003)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, ModelError
from ..inference import EXPORT_DIR, ONNX_FILES, export_dir
from ..ioutils import atomic_write_text
from ..log import info
from ..registry import Registry

EXPORT_JSON = "export.json"
PARITY_LIMIT = 1000
TTA_CHOICES = ("none", "hflip", "hflip+vflip")
TIE = 1e-4  # a top-1 flip between two classes closer than this is rounding, not disagreement


@dataclass(frozen=True)
class ExportFormat:
    """One row of the table of formats: ``imgcls export --format NAME``."""

    name: str
    suffix: str
    description: str
    quantize: tuple[str, ...]
    write: Callable


FORMATS: Registry[ExportFormat] = Registry("export format")


def list_formats() -> list[ExportFormat]:
    return [FORMATS.get(n) for n in FORMATS.names()]


def export(run: str | Path, format: str = "onnx", *, quantize: str | None = None,
           out: str | Path | None = None, data: str | Path | None = None,
           calibration: int = 128, tta: str | None = None, progress: bool = True) -> dict:
    """Export a run's model and verify it; returns the report also written to ``export.json``.

    Args:
        run: Run folder (or model folder) of a deep model.
        format: A name from ``list_formats()``.
        quantize: ``int8`` adds a statically quantised copy, calibrated on training images.
        out: Folder for the files; default ``RUN/export``.
        data: Images to verify on instead of the run's test split (a folder or manifest).
        calibration: How many training images calibrate int8 activation ranges.
        tta: Test-time augmentation in the graph: None keeps the run's ``train.tta``;
            ``none`` drops it (each view costs one more forward pass), ``hflip``, ``hflip+vflip``.
    """
    fmt = FORMATS.get(format)
    if quantize is not None and quantize not in fmt.quantize:
        raise ConfigError(f"The 'quantize' parameter of format {format} must be one of "
                          f"{list(fmt.quantize)}. Got {quantize!r}.")
    if tta not in (None, *TTA_CHOICES):
        raise ConfigError(f"The 'tta' parameter must be one of {list(TTA_CHOICES)}. Got {tta!r}.")
    from ..models import load_model

    run = Path(run)
    clf = load_model(run)
    saved_tta = getattr(clf, "train_options", {}).get("tta", "none")
    if tta is not None and clf.school == "deep":
        clf.train_options["tta"] = tta  # reference and graph both run the chosen views
    if out is None and tta is not None and tta != saved_tta:
        out = export_dir(run).with_name(f"{EXPORT_DIR}-tta-{tta}")  # never silently change RUN/export
    out_dir = _out_dir(run, out)
    check, calib = _verification_images(run, clf, data, calibration if quantize else 0, progress)
    try:
        report = fmt.write(clf, run, out_dir, check, calib, quantize)
        atomic_write_text(out_dir / EXPORT_JSON, json.dumps(report, indent=2))
    except OSError as exc:
        raise ModelError(f"Cannot write the export to '{out_dir}': {exc}") from None
    info(f"Exported to {out_dir}: top-1 agreement {report['parity']['top1_agreement']:.2%} on "
         f"{report['parity']['n']} images, max probability difference {report['parity']['max_abs_diff']:.2g}")
    return report


def _out_dir(run: Path, out: str | Path | None) -> Path:
    """The export folder; refused when it holds files an imgcls export did not write."""
    out_dir = Path(out) if out else export_dir(run)
    if out_dir.is_file():
        raise ConfigError(f"--out '{out_dir}' is a file; give a folder.")
    ours = {EXPORT_JSON, *ONNX_FILES.values()}
    present = {p.name for p in out_dir.iterdir() if not p.name.startswith(".")} if out_dir.is_dir() else set()
    if present - ours or (present and EXPORT_JSON not in present):
        raise ConfigError(f"--out '{out_dir}' holds other files; give an empty or new folder "
                          "(an export never overwrites files it did not write).")
    return out_dir


def mark_in_progress(out_dir: Path) -> None:
    """Called before the first file of an export is replaced: until the new export.json is
    written, no file in ``out_dir`` counts as current, so a failure half-way never leaves a
    mix of new and old files that predict would trust."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / EXPORT_JSON, json.dumps({"status": "in progress"}))


def _model_dir(run: Path) -> Path:
    return run / "model" if (run / "model").is_dir() else run


def model_digest(run: str | Path) -> str:
    """sha256 over the model folder's files: what an export was made from."""
    digest = hashlib.sha256()
    folder = _model_dir(Path(run))
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def export_is_current(run: str | Path, exported: Path) -> bool:
    """True when ``exported``'s export.json was made from the model now in ``run``."""
    try:
        report = json.loads((exported.parent / EXPORT_JSON).read_text())
    except (OSError, ValueError):
        return False
    return report.get("model_sha256") == model_digest(run) and exported.name in report.get("files", {})


def _verification_images(run: Path, clf, data, calibration: int, progress: bool):
    """(test images, labels) to check parity on and training images to calibrate int8 on.

    With ``data``, its images are shuffled and split: calibration takes up to
    ``calibration`` of them, the check the rest (all of them when not quantising).
    """
    from ..config import resolve_n_jobs
    from ..data import assign_splits, load_dataset, load_images
    from ..training import Run

    try:
        if data is not None:
            ds = load_dataset(str(data))
            order = np.random.default_rng(0).permutation(len(ds))
            n_calib = min(calibration, len(ds) // 2)
            train, test = ds.subset(np.sort(order[:n_calib])), ds.subset(np.sort(order[n_calib:]))
        else:
            opened = Run.open(export_dir(run).parent)
            ds = assign_splits(load_dataset(opened.config.data), opened.config.split)
            split = ds.table["split"].to_numpy()
            test = ds.subset(np.flatnonzero(split == "test"))
            train = ds.subset(np.flatnonzero(split == "train"))
    except (DataError, ConfigError) as exc:
        raise ModelError(f"Cannot verify the export: the run's images are not available ({exc}). "
                         "Export with `imgcls export RUN --data FOLDER`, images like the training "
                         "ones.") from None
    if len(test) == 0:
        raise ModelError(f"'{run}' has no test images to verify the export on; pass --data FOLDER.")
    rng = np.random.default_rng(0)
    test = test.subset(np.sort(rng.permutation(len(test))[:PARITY_LIMIT]))
    check = load_images(test, clf.image_spec, resolve_n_jobs(0), None, progress)
    calib = None
    if calibration:
        if len(train) == 0:
            raise ModelError("No images to calibrate int8 on; give --data with more images.")
        picked = train.subset(np.sort(rng.permutation(len(train))[:calibration]))
        calib = load_images(picked, clf.image_spec, resolve_n_jobs(0), None, progress).images
    labels = test.labels[check.rows] if "label" in test.table else None
    return (np.asarray(check.images), labels), calib


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


def accuracy(proba: np.ndarray, labels, classes) -> float | None:
    if labels is None:
        return None
    known = np.isin(labels, classes)
    if not known.any():
        return None
    return float((np.asarray(classes, dtype=object)[proba.argmax(1)][known] == labels[known]).mean())


from . import onnx_format  # noqa: E402,F401 - registers the ONNX row of FORMATS
