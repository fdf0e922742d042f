"""The Core ML row of the export table: ``model.mlpackage`` (an ML program) for iPhones, iPads
and Macs, converted by ``coremltools`` from the PyTorch module the ONNX graph comes from
(preprocessing, softmax and decision inside).

Core ML takes no uint8 tensors, so the input is int32 (N, H, W, 3) holding 0-255 values
(N from 1 to ``MAX_BATCH``); everything else is as in the ONNX graph, computed in float32.

Core ML predicts only on Apple systems. On macOS the export is parity-checked on the run's
test images like every other format; elsewhere (Linux, CI) it cannot be, and ``export.json``
says so: the check there reads the saved package back and verifies its inputs, outputs,
deployment target and the imgcls metadata (``user_defined_metadata["imgcls"]``, JSON).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from ...core.errors import ConfigError, ModelError
from ...runs import ONNX_FILES, Run
from ..predictors import OnnxPredictor
from .formats import (
    ExportFormat,
    accuracy,
    file_facts,
    parity,
    quiet_converter,
    require_agreement,
    three_channels,
    timed,
)
from .onnx_format import write_onnx_export

PACKAGE = "model.mlpackage"
MAX_BATCH = 64
INPUT, OUTPUT = "images", "probabilities"


def write_coreml_export(clf, run: Run, out_dir: Path, check, calib, quantize: str | None) -> dict:
    try:
        with quiet_converter():  # off macOS it prints that its runtime cannot load
            import coremltools as ct
    except ImportError:
        raise ConfigError("The coreml format needs coremltools: pip install 'imgcls[coreml]'.") from None
    report = write_onnx_export(clf, run, out_dir, check, None, None)  # verified first; predict uses it
    meta = OnnxPredictor(out_dir / ONNX_FILES["fp32"]).metadata
    meta = {**meta, "input": f"int32 (N, H, W, 3) of 0-255 values, N from 1 to {MAX_BATCH}"}
    staged = out_dir / f".staged-{PACKAGE}"
    shutil.rmtree(staged, ignore_errors=True)
    try:
        started = time.perf_counter()
        model = _convert(clf, ct)
        names = ", ".join(map(str, clf.classes_[:8])) + ("…" if len(clf.classes_) > 8 else "")
        model.short_description = f"imgcls {clf.family}: {len(clf.classes_)} classes ({names})"
        model.author = "imgcls"
        model.version = str(meta.get("model_sha256", ""))[:12]
        model.user_defined_metadata["imgcls"] = json.dumps(meta)
        model.save(str(staged))
        seconds = time.perf_counter() - started
        section = {"convert_seconds": round(seconds, 2), **_read_back(ct, staged, clf, meta)}
        if sys.platform == "darwin":  # Core ML runs here: the same parity check as every format
            section.update(_parity(ct, staged, clf, check))
        else:
            section["parity"] = ("not run: Core ML predicts only on macOS / iOS; the package's inputs, "
                                 "outputs and metadata were checked instead")
        target = out_dir / PACKAGE
        shutil.rmtree(target, ignore_errors=True)
        staged.rename(target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    report["format"] = "coreml"
    report["versions"]["coremltools"] = ct.__version__
    report["coreml"] = section
    report["files"][PACKAGE] = file_facts(out_dir / PACKAGE, "fp32", "coreml")
    return report


def _convert(clf, ct):
    import torch

    from .graph import inference_module

    size = clf.image_spec.size
    module = inference_module(clf).to(memory_format=torch.contiguous_format)
    example = (torch.zeros((2, size, size, 3), dtype=torch.int32),)
    batch = {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}
    shape = (ct.RangeDim(1, MAX_BATCH, default=1), size, size, 3)
    try:
        with quiet_converter(), torch.inference_mode(False):
            program = torch.export.export(module, example, dynamic_shapes=(batch,)).run_decompositions({})
            return ct.convert(program, inputs=[ct.TensorType(name=INPUT, shape=shape, dtype=np.int32)],
                              outputs=[ct.TensorType(name=OUTPUT, dtype=np.float32)]
                              + [ct.TensorType(name=n) for n in ("label", "unknown_score")[
                                  :1 + (clf.unknown_ is not None)]],
                              convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                              compute_precision=ct.precision.FLOAT32)
    except Exception as exc:  # noqa: BLE001 - torch.export and coremltools raise many kinds
        raise ModelError(f"coremltools could not convert this model: {type(exc).__name__}: "
                         f"{str(exc)[:500]}") from None


def _read_back(ct, path: Path, clf, meta: dict) -> dict:
    """The saved package's interface, checked against what the model needs."""
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    types = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType
    inputs = [{"name": f.name, "dtype": types.Name(f.type.multiArrayType.dataType),
               "shape": list(f.type.multiArrayType.shape),
               "batch": [int(r.lowerBound), int(r.upperBound)] if (
                   r := next(iter(f.type.multiArrayType.shapeRange.sizeRanges), None)) else None}
              for f in spec.description.input]
    outputs = [{"name": f.name, "dtype": types.Name(f.type.multiArrayType.dataType)}
               for f in spec.description.output]
    size = clf.image_spec.size
    problems = []
    if [i["name"] for i in inputs] != [INPUT] or inputs[0]["dtype"] != "INT32" or inputs[0]["shape"][1:] != [
            size, size, 3]:
        problems.append(f"input {inputs}")
    if not outputs or outputs[0]["name"] != OUTPUT or outputs[0]["dtype"] != "FLOAT32":
        problems.append(f"outputs {outputs}")
    saved = json.loads(spec.description.metadata.userDefined.get("imgcls", "{}"))
    if saved.get("classes") != meta["classes"] or saved.get("image_spec") != meta["image_spec"]:
        problems.append("the imgcls metadata did not survive the save")
    if problems:
        raise ModelError(f"The Core ML package is not what the model needs ({'; '.join(problems)}); nothing "
                         "was written. Please report this.")
    return {"inputs": inputs, "outputs": outputs, "spec_version": int(spec.specificationVersion),
            "deployment_target": "iOS17 / macOS14", "compute_precision": "float32",
            "metadata": "imgcls JSON in user_defined_metadata, read back and compared"}


def _parity(ct, path: Path, clf, check) -> dict:  # pragma: no cover - needs macOS
    images, labels = check
    model = ct.models.MLModel(str(path))
    reference = clf.predict_proba(images)

    def run(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict({INPUT: three_channels(batch).astype(np.int32)})[OUTPUT])

    exported, speed = timed(run, images)
    agreement = parity(reference, exported)
    require_agreement("Core ML", agreement)
    decide = clf.decide if clf.is_multilabel else None
    return {**agreement, "images_per_s": round(speed, 1), "accuracy": accuracy(exported, labels, clf.classes_,
                                                                                decide)}


COREML_FORMAT = ExportFormat(
    "coreml", ".mlpackage", "Core ML (model.mlpackage, ML program, float32) for iPhones, iPads and Macs; "
    "converted here, parity-checked on macOS only (elsewhere its interface and metadata are checked)",
    (), write_coreml_export)
