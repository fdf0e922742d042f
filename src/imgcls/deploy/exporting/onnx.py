"""Write, check and quantise ONNX files; read only by ONNX Runtime afterwards.

The graph comes from ``torch.onnx.export`` (the dynamo exporter, which needs onnxscript)
with a dynamic batch dimension; ``metadata_props["imgcls"]`` carries what a predictor
needs besides the graph (classes, size, resize rule, ROI, versions).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from ...core.errors import ModelError
from ...core.io import atomic_open
from ..predictors import METADATA_KEY

INPUT, OUTPUT, LABEL, UNKNOWN = "images", "probabilities", "label", "unknown_score"
OPSET = 18
MAX_BATCH = 4096


def write_onnx(module, size: int, metadata: dict, path: Path) -> None:
    """Export ``module`` (uint8 (N, size, size, 3) -> probabilities) to ``path``, then check it."""
    import torch

    example = torch.zeros((2, size, size, 3), dtype=torch.uint8)
    outputs = [OUTPUT, LABEL] + ([UNKNOWN] if getattr(module, "unknown", None) is not None else [])
    doc = (f"{metadata['family']}: uint8 images (N, {size}, {size}, 3) -> probabilities of "
           f"{metadata['classes']}")
    write_graph(module, example, INPUT, outputs, metadata, path, doc)


def write_graph(module, example, input_name: str, outputs: list[str], metadata: dict, path: Path,
                doc: str) -> None:
    """Export ``module`` on ``example`` (batch dimension dynamic) with the imgcls metadata,
    check it with the ONNX checker and write it atomically."""
    import contextlib
    import io

    import onnx
    import torch

    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with tempfile.TemporaryDirectory(prefix="imgcls-onnx-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        chatter = io.StringIO()  # the exporter prints progress lines; keep stdout for results
        try:
            with torch.inference_mode(False), contextlib.redirect_stdout(chatter):
                torch.onnx.export(module, (example,), str(raw), dynamo=True, opset_version=OPSET,
                                  input_names=[input_name], output_names=outputs,
                                  dynamic_shapes=({0: batch},), optimize=True, external_data=False)
        except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds
            raise ModelError(f"torch.onnx.export failed for this model: {type(exc).__name__}: {exc}"
                             ) from None
        model = onnx.load(str(raw))
    set_metadata(model, metadata, doc)
    _check(model, full=True)
    _save_atomic(model, path)


def _check(model, full: bool) -> None:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=full)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ModelError(f"The exported graph fails the ONNX checker: {exc}") from None


def set_metadata(model, metadata: dict, doc: str | None = None) -> None:
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    model.producer_name = "imgcls"
    size = metadata["image_spec"]["size"]
    model.doc_string = doc or (f"{metadata['family']}: uint8 images (N, {size}, {size}, 3) -> probabilities "
                               f"of {metadata['classes']}")


def _save_atomic(model, path: Path) -> None:
    with atomic_open(path, "wb") as fh:  # graphs here stay far below protobuf's 2 GB limit
        fh.write(model.SerializeToString())


def _flush_every(n_images: int, batch_size: int) -> int | None:
    """How many batches of activations the calibrator holds before merging their ranges.

    Bounding it keeps memory flat; ONNX Runtime 1.31 raises "No data is collected" when the
    number of batches is a multiple of it (the last flush leaves nothing), so pick one that
    is not.
    """
    batches = -(-n_images // batch_size)
    return next((k for k in range(4, batches) if batches % k), None)


def quantize_int8(fp32_path: Path, out_path: Path, calibration: np.ndarray, metadata: dict,
                  batch_size: int = 16) -> None:
    """Static int8 quantisation (QDQ, per-channel weights, MinMax activation ranges)
    calibrated on ``calibration``, uint8 (N, H, W, 3) training images."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration[s:s + batch_size] for s in range(0, len(calibration), batch_size))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: np.ascontiguousarray(batch)}

    flush = _flush_every(len(calibration), batch_size)
    with tempfile.TemporaryDirectory(prefix="imgcls-int8-") as tmp:
        prepared, quantized = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        try:
            _quantize(fp32_path, prepared, quantized, Reader(), flush)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's quantiser raises many kinds
            raise ModelError(f"int8 quantisation failed: {type(exc).__name__}: {exc}. The fp32 "
                             "export is fine; use it, or retry with more --calibration images.") from None
        model = onnx.load(str(quantized))
    set_metadata(model, {**metadata, "precision": "int8", "calibration_images": len(calibration)})
    _check(model, full=False)
    _save_atomic(model, out_path)


def _quantize(fp32_path: Path, prepared: Path, quantized: Path, reader, flush: int | None) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(fp32_path), str(prepared))
    quantize_static(str(prepared), str(quantized), reader, quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"CalibMaxIntermediateOutputs": flush})
