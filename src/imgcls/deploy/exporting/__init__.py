"""Export a trained run for deployment, verified against the original before it is kept.

``imgcls export RUN [--quantize int8]`` writes ``RUN/export/model.onnx`` (and
``model.int8.onnx``) plus ``export.json``: the graph takes uint8 (N, H, W, 3) images at the
model's input size and returns probabilities, with normalisation, test-time augmentation
and softmax inside. Each export is checked by the ONNX checker and then run on the run's
test images beside PyTorch; the files are kept only if every top-1 label agrees.

Example:
    >>> result = export("runs/elpv", quantize="int8")                        # doctest: +SKIP
    >>> result.parity["top1_agreement"], result.report["int8"]["accuracy_change"]  # doctest: +SKIP
    (1.0, -0.003)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...config import resolve_n_jobs
from ...core.errors import ConfigError, DataError, ModelError
from ...core.io import atomic_write_text
from ...core.log import info
from ...data import load_dataset, load_images
from ...models import SEQUENCE, TEST_TIME_VIEWS
from ...runs import EXPORT_DIR, EXPORT_JSON, ONNX_FILES, Run
from .coreml_format import COREML_FORMAT
from .coreml_format import PACKAGE as COREML_PACKAGE
from .executorch_format import EXECUTORCH_FORMAT, PTE_FILES
from .executorch_format import METADATA_FILE as PTE_METADATA
from .formats import FORMATS, ExportFormat
from .litert_format import LITERT_FILES, LITERT_FORMAT
from .litert_format import METADATA_FILE as LITERT_METADATA
from .onnx_format import ONNX_FORMAT
from .openvino_format import IR_FILES, OPENVINO_FORMAT
from .sequence_export import SEQUENCE_FILES, write_sequence_export
from .web_format import WEB_DIR, WEB_FORMAT

__all__ = ["FORMATS", "ExportFormat", "ExportResult", "export", "list_formats"]

PARITY_LIMIT = 1000
TTA_CHOICES = ("none", "hflip", "hflip+vflip")

FORMATS.add(ONNX_FORMAT.name, ONNX_FORMAT)
FORMATS.add(OPENVINO_FORMAT.name, OPENVINO_FORMAT)
FORMATS.add(WEB_FORMAT.name, WEB_FORMAT)
FORMATS.add(LITERT_FORMAT.name, LITERT_FORMAT)
FORMATS.add(EXECUTORCH_FORMAT.name, EXECUTORCH_FORMAT)
FORMATS.add(COREML_FORMAT.name, COREML_FORMAT)
OUR_FILES = frozenset({EXPORT_JSON, *ONNX_FILES.values(), *IR_FILES, WEB_DIR, *LITERT_FILES.values(),
                       LITERT_METADATA, *PTE_FILES.values(), PTE_METADATA,
                       COREML_PACKAGE, *SEQUENCE_FILES})  # what exports write


@dataclass
class ExportResult:
    """What an export wrote: its folder and the report saved there as export.json."""

    path: Path
    report: dict

    @property
    def files(self) -> dict[str, dict]:
        return self.report["files"]

    @property
    def parity(self) -> dict:
        return self.report["parity"]


def list_formats() -> list[ExportFormat]:
    return [FORMATS.get(n) for n in FORMATS.names()]


def export(run: str | Path, format: str = "onnx", *, quantize: str | None = None,
           out: str | Path | None = None, data: str | Path | None = None,
           calibration: int = 128, tta: str | None = None, progress: bool = True) -> ExportResult:
    """Export a run's model and verify it; the report is also written to ``export.json``.

    Args:
        run: Run folder (or model folder) of a model that can be exported (see ``imgcls models``).
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
    opened = Run.open(run)
    clf = opened.model
    if clf.supports(SEQUENCE) and fmt.name != "onnx":
        raise ConfigError(f"A sequence model exports to ONNX only (encoder.onnx + temporal.onnx), not to "
                          f"{format}; use --format onnx.")
    saved_tta = clf.tta
    if tta is not None and clf.supports(TEST_TIME_VIEWS):
        clf.set_tta(tta)  # reference and graph both run the chosen views
    if out is None and tta is not None and tta != saved_tta:
        out = opened.path / f"{EXPORT_DIR}-tta-{tta}"  # never silently change RUN/export
    out_dir = _out_dir(opened, out)
    check, calib = _verification_images(opened, clf, data, calibration if quantize else 0, progress)
    try:
        write = write_sequence_export if clf.supports(SEQUENCE) else fmt.write
        report = write(clf, opened, out_dir, check, calib, quantize)
        atomic_write_text(out_dir / EXPORT_JSON, json.dumps(report, indent=2))
        for stale in OUR_FILES - set(report["files"]) - {EXPORT_JSON}:  # an earlier export's, now untrue
            if (out_dir / stale).is_dir():
                shutil.rmtree(out_dir / stale)
            else:
                (out_dir / stale).unlink(missing_ok=True)
    except OSError as exc:
        raise ModelError(f"Cannot write the export to '{out_dir}': {exc}") from None
    info(f"Exported to {out_dir}: top-1 agreement {report['parity']['top1_agreement']:.2%} on "
         f"{report['parity']['n']} images, max probability difference {report['parity']['max_abs_diff']:.2g}")
    return ExportResult(out_dir, report)


def _out_dir(run: Run, out: str | Path | None) -> Path:
    """The export folder; refused when it holds files an imgcls export did not write."""
    out_dir = Path(out) if out else run.export_dir
    if out_dir.is_file():
        raise ConfigError(f"--out '{out_dir}' is a file; give a folder.")
    ours = OUR_FILES
    present = {p.name for p in out_dir.iterdir() if not p.name.startswith(".")} if out_dir.is_dir() else set()
    if present - ours or (present and EXPORT_JSON not in present):
        raise ConfigError(f"--out '{out_dir}' holds other files; give an empty or new folder "
                          "(an export never overwrites files it did not write).")
    return out_dir


def _verification_images(run: Run, clf, data, calibration: int, progress: bool):
    """(test images, labels) to check parity on and training images to calibrate int8 on.

    With ``data``, its images are shuffled and split: calibration takes up to
    ``calibration`` of them, the check the rest (all of them when not quantising).
    """
    try:
        if data is not None:
            ds = load_dataset(str(data))
            order = np.random.default_rng(0).permutation(len(ds))
            n_calib = min(calibration, len(ds) // 2)
            train, test = ds.subset(np.sort(order[:n_calib])), ds.subset(np.sort(order[n_calib:]))
        else:
            ds = run.dataset()
            split = ds.table["split"].to_numpy()
            test = ds.subset(np.flatnonzero(split == "test"))
            train = ds.subset(np.flatnonzero(split == "train"))
    except (DataError, ConfigError) as exc:
        raise ModelError(f"Cannot verify the export: the run's images are not available ({exc}). "
                         "Export with `imgcls export RUN --data FOLDER`, images like the training "
                         "ones.") from None
    if len(test) == 0:
        raise ModelError(f"'{run.path}' has no test images to verify the export on; pass --data FOLDER.")
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
