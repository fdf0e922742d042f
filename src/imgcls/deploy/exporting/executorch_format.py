"""The ExecuTorch row of the export table: ``model.pte`` for phones and embedded Linux, the
PyTorch module the ONNX graph comes from (uint8 NHWC in, preprocessing, softmax and decision
inside) exported with ``torch.export`` and lowered to the XNNPACK backend, then run here by
ExecuTorch's runtime on the run's test images beside PyTorch and kept only if every top-1
label agrees. The batch dimension is dynamic (1 to ``MAX_BATCH``).

``--quantize int8`` adds ``model.int8.pte``: PT2E quantisation with the XNNPACK quantizer
(symmetric, per-channel weights, int8 activations calibrated on training images), reported
against fp32 as the ONNX int8 copy is. The imgcls metadata is saved beside it as
``model.pte.json``.
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

PTE_FILES = {"fp32": "model.pte", "int8": "model.int8.pte"}
METADATA_FILE = "model.pte.json"
MAX_BATCH = 64


class ExecuTorchRunner:
    """A ``.pte`` file run by ExecuTorch's runtime: uint8 (N, H, W, 3) -> probabilities."""

    def __init__(self, path: Path) -> None:
        from executorch.runtime import Runtime

        self.method = Runtime.get().load_program(str(path)).load_method("forward")

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        images = three_channels(images)
        return np.concatenate([self.method.execute([torch.from_numpy(images[s:s + MAX_BATCH])])[0].numpy()
                               for s in range(0, len(images), MAX_BATCH)])


def write_executorch_export(clf, run: Run, out_dir: Path, check, calib, quantize: str | None) -> dict:
    try:
        import executorch  # noqa: F401 - a clear error before the ONNX work
    except ImportError:
        raise ConfigError("The executorch format needs ExecuTorch: "
                          "pip install 'imgcls[executorch]'.") from None
    import torch

    from .graph import inference_module

    report = write_onnx_export(clf, run, out_dir, check, None, None)  # verified first; predict uses it
    # XNNPACK's layout pass wants NCHW weights; training may have left them channels-last
    module = inference_module(clf).to(memory_format=torch.contiguous_format)
    images, labels = check
    decide = clf.decide if clf.is_multilabel else None
    staged = {p: out_dir / f".{name}.staged" for p, name in PTE_FILES.items()}
    try:
        started = time.perf_counter()
        _lower(module, clf.image_spec.size, staged["fp32"])
        seconds = time.perf_counter() - started
        reference = clf.predict_proba(images)
        exported, speed = timed(ExecuTorchRunner(staged["fp32"]), images)
        agreement = parity(reference, exported)
        require_agreement("ExecuTorch", agreement)
        section = {**agreement, "images_per_s": round(speed, 1), "lower_seconds": round(seconds, 2),
                   "accuracy": accuracy(exported, labels, clf.classes_, decide), "backend": "xnnpack"}
        if quantize == "int8":
            section["int8"] = int8_section(lambda: _lower(module, clf.image_spec.size, staged["int8"], calib),
                                           lambda: ExecuTorchRunner(staged["int8"]), exported, speed, images,
                                           labels, clf.classes_, decide, calib)
        commit_staged(staged, out_dir, PTE_FILES)
    finally:
        for path in staged.values():
            path.unlink(missing_ok=True)
    meta = OnnxPredictor(out_dir / ONNX_FILES["fp32"]).metadata
    atomic_write_text(out_dir / METADATA_FILE, json.dumps(
        {**meta, "input": f"uint8 (N, H, W, 3), N from 1 to {MAX_BATCH}", "method": "forward"}, indent=2))
    from importlib.metadata import version

    report["format"] = "executorch"
    report["versions"]["executorch"] = version("executorch")
    report["executorch"] = section
    for precision, name in PTE_FILES.items():
        if (out_dir / name).exists():
            report["files"][name] = file_facts(out_dir / name, precision, "executorch")
    report["files"][METADATA_FILE] = file_facts(out_dir / METADATA_FILE, "fp32", "executorch")
    return report


def _lower(module, size: int, path: Path, calib: np.ndarray | None = None) -> None:
    """torch.export (dynamic batch) -> XNNPACK -> ``.pte``; with ``calib``, PT2E int8 first."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    # the memory plan's bound follows the example's batch: a batch of 2 caps runs at 15 images
    example = (torch.zeros((16, size, size, 3), dtype=torch.uint8),)
    batch = {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}
    try:
        with quiet_converter(), torch.inference_mode(False):
            program = torch.export.export(module, example, dynamic_shapes=(batch,))
            if calib is not None:
                from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                    XNNPACKQuantizer,
                    get_symmetric_quantization_config,
                )
                from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

                config = get_symmetric_quantization_config(is_per_channel=True)
                quantizer = XNNPACKQuantizer().set_global(config)
                prepared = prepare_pt2e(program.module(), quantizer)
                calib = three_channels(calib)
                for s in range(0, len(calib), 16):
                    prepared(torch.from_numpy(calib[s:s + 16]))
                program = torch.export.export(convert_pt2e(prepared), example, dynamic_shapes=(batch,))
            lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
        path.write_bytes(lowered.buffer)
    except (ImportError, OSError):
        raise
    except Exception as exc:  # noqa: BLE001 - torch.export and the lowering raise many kinds
        raise ModelError(f"ExecuTorch could not lower this model: {type(exc).__name__}: "
                         f"{str(exc)[:500]}") from None


EXECUTORCH_FORMAT = ExportFormat(
    "executorch", ".pte", "ExecuTorch (model.pte, XNNPACK, int8 optional) for Android, iOS and embedded "
    "Linux; lowered from torch.export, parity-checked here by the ExecuTorch runtime", ("int8",),
    write_executorch_export)
