"""The OpenVINO row of the export table: the verified ONNX graph (preprocessing, softmax and
all) converted to OpenVINO IR (``model.xml`` + ``model.bin``) for Intel CPUs and edge boxes,
then checked against the saved model on the run's test images, as the ONNX export is.

The imgcls metadata (classes, image spec, decision...) travels in the IR's ``rt_info`` under
``imgcls/metadata`` (JSON), so the two files alone are enough for a client.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...core.errors import ConfigError
from ...runs import ONNX_FILES, Run
from ..predictors import OnnxPredictor, default_threads
from .formats import ExportFormat, accuracy, file_facts, parity, require_agreement, timed
from .onnx_format import write_onnx_export

IR_FILES = ("model.xml", "model.bin")


def write_openvino_export(clf, run: Run, out_dir: Path, check, calib, quantize: str | None) -> dict:
    try:
        import openvino as ov
    except ImportError:
        raise ConfigError("The openvino format needs OpenVINO: pip install 'imgcls[openvino]' "
                          "(or pip install openvino).") from None
    report = write_onnx_export(clf, run, out_dir, check, calib, None)  # the graph, verified first
    onnx_file = out_dir / ONNX_FILES["fp32"]
    meta = OnnxPredictor(onnx_file).metadata
    model = ov.convert_model(str(onnx_file))
    model.set_rt_info(json.dumps(meta), ["imgcls", "metadata"])
    staged = out_dir / f".staged-{IR_FILES[0]}"  # OpenVINO wants the .xml suffix
    ov.save_model(model, str(staged), compress_to_fp16=False)
    staged_bin = staged.with_suffix(".bin")
    try:
        images, labels = check
        compiled = ov.Core().compile_model(str(staged), "CPU", {"INFERENCE_NUM_THREADS": default_threads(),
                                                                "INFERENCE_PRECISION_HINT": "f32"})
        output = compiled.outputs[0]
        reference = clf.predict_proba(images)
        exported, speed = timed(lambda batch: np.asarray(compiled(batch)[output]), images)
        agreement = parity(reference, exported)
        require_agreement("OpenVINO", agreement)
        staged.replace(out_dir / IR_FILES[0])
        staged_bin.replace(out_dir / IR_FILES[1])
    finally:
        staged.unlink(missing_ok=True)
        staged_bin.unlink(missing_ok=True)
    decide = clf.decide if clf.is_multilabel else None
    report["format"] = "openvino"
    report["versions"]["openvino"] = ov.__version__
    report["openvino"] = {**agreement, "images_per_s": round(speed, 1),
                          "accuracy": accuracy(exported, labels, clf.classes_, decide)}
    for name in IR_FILES:
        report["files"][name] = {**file_facts(out_dir / name, "fp32"), "runtime": "openvino"}
    return report


OPENVINO_FORMAT = ExportFormat(
    "openvino", ".xml", "OpenVINO IR (model.xml + model.bin) for Intel CPUs, GPUs and NPUs and edge "
    "boxes; converted from the verified ONNX graph (written beside it), parity-checked here",
    (), write_openvino_export)
