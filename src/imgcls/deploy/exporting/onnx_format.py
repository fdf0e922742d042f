"""The ONNX row of the export table: fp32 graph, optional int8 copy, both verified."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ...core.errors import ModelError
from ...data.tasks import from_indicator
from ...models import ONNX
from ...models.base import versions
from ...models.decision import Decision
from ...runs import ONNX_FILES, Run
from ..predictors import OnnxPredictor
from .formats import (
    ExportFormat,
    accuracy,
    file_facts,
    int8_section,
    mark_in_progress,
    parity,
    require_agreement,
    timed,
)
from .onnx import quantize_int8, write_onnx


def write_onnx_export(clf, run: Run, out_dir: Path, check, calib, quantize: str | None) -> dict:
    import onnx
    import onnxruntime
    import torch

    from .graph import inference_module

    if not clf.supports(ONNX):
        clf.network()  # raises the family's own reason
    module = inference_module(clf)
    images, labels = check
    decide = clf.decide if clf.is_multilabel else None  # label sets; else the most probable class
    described = clf.to_json()
    meta = {"family": clf.family, "mode": described.get("mode"), "classes": [str(c) for c in clf.classes_],
            "image_spec": clf.image_spec.to_dict(), "input": "uint8 (N, H, W, 3)",
            "output": "probabilities (N, classes); label (N,) int64, the decided class index"
                      + ("; unknown_score (N,) float, unknown above unknown.threshold"
                         if clf.unknown_ else ""),
            "precision": "fp32", "tta": clf.tta, **clf.tuned_json(), "multilabel": clf.is_multilabel,
            "model_sha256": run.model_digest(),
            "versions": {**versions(), "torch": torch.__version__, "onnx": onnx.__version__,
                         "onnxruntime": onnxruntime.__version__}}
    started = time.perf_counter()
    staged = out_dir / f".{ONNX_FILES['fp32']}.staged"
    write_onnx(module, clf.image_spec.size, meta, staged)
    export_seconds = time.perf_counter() - started
    try:
        reference, torch_speed = timed(clf.predict_proba, images)
        fp32 = OnnxPredictor(staged)
        exported, onnx_speed = timed(fp32.predict_proba, images)
        report = parity(reference, exported)
        graph = [fp32.graph_labels(images[s:s + 32]) for s in range(0, len(images), 32)]
        if clf.is_multilabel:  # the graph's label output: (N, labels) 0/1
            decided = from_indicator(np.concatenate(graph), fp32.classes) if graph else np.zeros(0)
            report = multilabel_parity(report, clf, reference, exported)
        else:
            decided = np.asarray(fp32.classes, dtype=object)[np.concatenate(graph)] if graph else np.zeros(0)
        report["label_agreement"] = float(np.mean(decided == clf.decide(reference))) if len(images) else 1.0
        if clf.unknown_ is not None:
            report["unknown"] = unknown_parity(clf, fp32, images, reference)
        require_agreement("ONNX", report)
        mark_in_progress(out_dir)
        staged.replace(out_dir / ONNX_FILES["fp32"])
    finally:
        staged.unlink(missing_ok=True)
    result = {"format": "onnx", "model_sha256": meta["model_sha256"], "classes": meta["classes"],
              "tta": meta["tta"],
              "image_spec": meta["image_spec"], "versions": meta["versions"],
              "export_seconds": round(export_seconds, 2),
              "files": {ONNX_FILES["fp32"]: file_facts(out_dir / ONNX_FILES["fp32"], "fp32")},
              "parity": {**report, "torch_images_per_s": round(torch_speed, 1),
                         "onnx_images_per_s": round(onnx_speed, 1),
                         "accuracy_torch": accuracy(reference, labels, clf.classes_, decide),
                         "accuracy_onnx": accuracy(exported, labels, clf.classes_, decide)}}
    if quantize == "int8":
        result["int8"] = _int8(out_dir, meta, calib, images, labels, exported, onnx_speed, clf.classes_,
                               decide)
        result["files"][ONNX_FILES["int8"]] = file_facts(out_dir / ONNX_FILES["int8"], "int8")
    else:
        (out_dir / ONNX_FILES["int8"]).unlink(missing_ok=True)  # an old int8 copy would be stale
    return result


def multilabel_parity(report: dict, clf, reference: np.ndarray, exported: np.ndarray) -> dict:
    """Multi-label: a disagreement is an image whose label set differs; at a tie when every
    label that differs is within 1e-4 of its threshold."""
    rule = clf.decision_ or Decision.multilabel(len(clf.classes_))
    ours, theirs = rule.chosen(reference), rule.chosen(exported)
    differ = ours != theirs
    near = np.abs(reference - np.asarray(rule.thresholds)[None, :]) < 1e-4
    images = differ.any(axis=1)
    return {**report, "disagreements": int(images.sum()),
            "disagreements_at_ties": int((images & ~(differ & ~near).any(axis=1)).sum()),
            "top1_agreement": float(1 - images.mean()) if len(images) else 1.0}


def unknown_parity(clf, exported: OnnxPredictor, images: np.ndarray, reference: np.ndarray) -> dict:
    """The graph's unknown scores against the model's own: largest difference, and on how many
    images they call a different answer (only images within a hair of the threshold may);
    a ModelError when any other image is answered differently."""
    if not len(images):
        return {"max_abs_diff": 0.0, "flag_disagreements": 0}
    ours = clf.unknown_.scores(clf, images, reference)
    theirs = np.concatenate([exported.predict_outputs(images[s:s + 32])[1]
                             for s in range(0, len(images), 32)])
    threshold = clf.unknown_.threshold
    differ = (ours > threshold) != (theirs > threshold)
    near = np.abs(ours - threshold) < 1e-4
    if (differ & ~near).any():
        raise ModelError(f"The ONNX export's unknown score disagrees with the model's on {int(differ.sum())} "
                         f"of {len(images)} images (max difference {np.abs(ours - theirs).max():.3g}); "
                         "nothing was written. Please report this.")
    return {"max_abs_diff": float(np.abs(ours - theirs).max()), "flag_disagreements": int(differ.sum())}


def _int8(out_dir: Path, meta: dict, calib: np.ndarray, images, labels, fp32_proba, fp32_speed,
          classes, decide=None) -> dict:
    path = out_dir / ONNX_FILES["int8"]
    return int8_section(lambda: quantize_int8(out_dir / ONNX_FILES["fp32"], path, calib, meta),
                        lambda: OnnxPredictor(path).predict_proba, fp32_proba, fp32_speed, images, labels,
                        classes, decide, calib)


ONNX_FORMAT = ExportFormat(
    "onnx", ".onnx", "ONNX (opset 18) for ONNX Runtime and most serving stacks; uint8 NHWC input, "
    "normalisation, TTA and softmax inside", ("int8",), write_onnx_export)
