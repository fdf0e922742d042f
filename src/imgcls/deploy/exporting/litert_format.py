"""The LiteRT (TFLite) row of the export table: ``model.tflite`` for Android, iOS and
microcontroller-class boards, converted from the same PyTorch module the ONNX graph comes
from (uint8 NHWC in, preprocessing, softmax and decision inside) by ``litert-torch``, then
run here by LiteRT's interpreter (``ai-edge-litert``) on the run's test images beside
PyTorch and kept only if every top-1 label agrees.

``--quantize int8`` adds ``model.int8.tflite``: int8 weights and activations calibrated on
training images (``ai-edge-quantizer``'s static recipe); its probabilities come out as
int8 with a scale and zero point (``(q - zero_point) * scale``), reported against fp32 as
the ONNX int8 copy is. The graph has a batch of one (litert-torch cannot convert a dynamic
batch here); interpreters resize it (``resize_tensor_input``), as the check does.

The imgcls metadata (classes, image spec, decision...) is saved beside it as
``model.tflite.json`` (LiteRT's own metadata schema is for its task library, not ours).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ...core.errors import ConfigError, ModelError
from ...core.io import atomic_write_text
from ...runs import ONNX_FILES, Run
from ..predictors import OnnxPredictor
from .formats import (
    ExportFormat,
    accuracy,
    commit_staged,
    file_facts,
    int8_section,
    parity,
    quiet_converter,
    require_agreement,
    three_channels,
    timed,
)
from .onnx_format import write_onnx_export

LITERT_FILES = {"fp32": "model.tflite", "int8": "model.int8.tflite"}
METADATA_FILE = "model.tflite.json"
INSTALL = ("pip install 'imgcls[litert]' && sh tools/install-litert.sh pip (from a source checkout; "
           "or pip install --no-deps litert-torch==0.10.0 litert-converter==0.5.0 xdsl==0.28.0)")


class LiteRTRunner:
    """A ``.tflite`` file run by LiteRT's interpreter: uint8 (N, H, W, 3) -> probabilities."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]
        self.batch = 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = three_channels(images)
        if len(images) != self.batch:
            self.interpreter.resize_tensor_input(self.input["index"], list(images.shape))
            self.interpreter.allocate_tensors()
            self.batch = len(images)
            self.output = next(o for o in self.interpreter.get_output_details()  # not the int64 label
                               if o["dtype"] in (np.float32, np.int8, np.uint8))
        self.interpreter.set_tensor(self.input["index"], images)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])
        scale, zero = self.output["quantization"]
        return (out.astype(np.float32) - zero) * scale if scale else out.astype(np.float32)


def write_litert_export(clf, run: Run, out_dir: Path, check, calib, quantize: str | None) -> dict:
    try:
        import litert_torch
        import torch
    except ImportError:
        raise ConfigError(f"The litert format needs litert-torch and ai-edge-litert: {INSTALL}.") from None
    from .graph import inference_module

    report = write_onnx_export(clf, run, out_dir, check, None, None)  # verified first; predict uses it
    module = inference_module(clf)
    size = clf.image_spec.size
    images, labels = check
    decide = clf.decide if clf.is_multilabel else None
    staged = {p: out_dir / f".{name}.staged" for p, name in LITERT_FILES.items()}
    try:
        started = time.perf_counter()
        example = (torch.zeros((1, size, size, 3), dtype=torch.uint8),)
        try:
            with quiet_converter():
                litert_torch.convert(module, example).export(str(staged["fp32"]))
        except Exception as exc:  # noqa: BLE001 - the converter raises many kinds
            raise ModelError(f"litert-torch could not convert this model: {type(exc).__name__}: "
                             f"{str(exc)[:500]}") from None
        seconds = time.perf_counter() - started
        reference = clf.predict_proba(images)
        fp32 = LiteRTRunner(staged["fp32"])
        exported, speed = timed(fp32, images)
        agreement = parity(reference, exported)
        require_agreement("LiteRT", agreement)
        section = {**agreement, "images_per_s": round(speed, 1), "convert_seconds": round(seconds, 2),
                   "accuracy": accuracy(exported, labels, clf.classes_, decide), "batch": "1, resizable"}
        if quantize == "int8":
            section["int8"] = int8_section(lambda: _quantize(staged["fp32"], staged["int8"], calib),
                                           lambda: LiteRTRunner(staged["int8"]), exported, speed, images,
                                           labels, clf.classes_, decide, calib)
        commit_staged(staged, out_dir, LITERT_FILES)
    finally:
        for path in staged.values():
            path.unlink(missing_ok=True)
    meta = OnnxPredictor(out_dir / ONNX_FILES["fp32"]).metadata
    atomic_write_text(out_dir / METADATA_FILE, json.dumps(
        {**meta, "input": "uint8 (1, H, W, 3), batch resizable", "output": "probabilities (N, classes), "
         "then label (N,) int64" + ("; int8 copy: probabilities as int8, (q - zero_point) * scale"
                                    if quantize else "")}, indent=2))
    import ai_edge_litert

    report["format"] = "litert"
    report["versions"]["litert-torch"] = getattr(litert_torch, "__version__", "unknown")
    report["versions"]["ai-edge-litert"] = getattr(ai_edge_litert, "__version__", "unknown")
    report["litert"] = section
    for precision, name in LITERT_FILES.items():
        if (out_dir / name).exists():
            report["files"][name] = file_facts(out_dir / name, precision, "litert")
    report["files"][METADATA_FILE] = file_facts(out_dir / METADATA_FILE, "fp32", "litert")
    return report


def _quantize(source: Path, target: Path, calib: np.ndarray) -> None:
    """Static int8 (weights and activations) with ranges from the calibration images."""
    from ai_edge_quantizer import quantizer, recipe

    with quiet_converter():
        qt = quantizer.Quantizer(str(source))
        qt.load_quantization_recipe(recipe.static_wi8_ai8())
        samples = [{"args_0": three_channels(calib[i:i + 1])} for i in range(len(calib))]
        qt.quantize(qt.calibrate({"serving_default": samples})).export_model(str(target), overwrite=True)


LITERT_FORMAT = ExportFormat(
    "litert", ".tflite", "LiteRT / TFLite (model.tflite, int8 optional) for Android, iOS and "
    "microcontroller-class boards; converted by litert-torch, parity-checked here by LiteRT's interpreter",
    ("int8",), write_litert_export)
