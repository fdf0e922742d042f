"""ONNX export of a sequence model (:mod:`imgcls.models.sequence`): two graphs, because a
clip is embedded frame by frame and then read as a whole.

- ``encoder.onnx``: uint8 frames (N, H, W, 3) -> embeddings (N, D), the backbone's
  normalisation inside (a camera app runs it once per new frame);
- ``temporal.onnx``: embeddings (N, T, D) -> probabilities (N, classes), softmax inside
  (run over the last T embeddings).

Both carry the imgcls metadata (classes, image spec with ``frames``, the temporal head, which
graph is which). They are checked together on the run's test clips: frames through the
encoder, the clip's embeddings through the temporal graph, against the model's own
probabilities; the files are kept only if every top-1 label agrees. ``predict`` and ``serve``
keep running the model in-process.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ...core.errors import ConfigError
from ...models.base import versions
from ...runs import Run
from .formats import accuracy, file_facts, mark_in_progress, parity, require_agreement, timed
from .onnx import write_graph

SEQUENCE_FILES = ("encoder.onnx", "temporal.onnx")


def write_sequence_export(clf, run: Run, out_dir: Path, check, calib, quantize: str | None) -> dict:
    import onnx
    import onnxruntime
    import torch

    if quantize is not None:
        raise ConfigError("A sequence model exports at fp32 only; drop --quantize.")
    encoder, temporal = clf.sequence_networks()
    spec = clf.image_spec
    dim = int(clf.head_.dim)
    meta = {"family": clf.family, "mode": "sequence", "classes": [str(c) for c in clf.classes_],
            "image_spec": spec.to_dict(), "temporal": clf.options["temporal"], "embedding_dim": dim,
            "model_sha256": run.model_digest(), "precision": "fp32",
            "versions": {**versions(), "torch": torch.__version__, "onnx": onnx.__version__,
                         "onnxruntime": onnxruntime.__version__}}
    staged = [out_dir / f".{name}.staged" for name in SEQUENCE_FILES]
    started = time.perf_counter()
    try:
        write_graph(encoder, torch.zeros((2, spec.size, spec.size, 3), dtype=torch.uint8), "frames",
                    ["embeddings"], {**meta, "graph": "encoder", "input": "uint8 (N, H, W, 3) frames",
                                     "output": f"embeddings (N, {dim})"}, staged[0],
                    f"{clf.family} frame encoder: uint8 frames (N, {spec.size}, {spec.size}, 3) -> "
                    f"(N, {dim})")
        write_graph(temporal, torch.zeros((2, spec.frames, dim)), "embeddings", ["probabilities"],
                    {**meta, "graph": "temporal", "input": f"embeddings (N, {spec.frames}, {dim})",
                     "output": "probabilities (N, classes)"}, staged[1],
                    f"{clf.options['temporal']} head: (N, {spec.frames}, {dim}) -> probabilities of "
                    f"{meta['classes']}")
        seconds = time.perf_counter() - started
        images, labels = check
        reference, torch_speed = timed(clf.predict_proba, images)
        options = onnxruntime.SessionOptions()
        sessions = [onnxruntime.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                    for p in staged]

        def run_graphs(clips: np.ndarray) -> np.ndarray:
            frames = np.ascontiguousarray(clips.reshape(-1, *clips.shape[2:]), dtype=np.uint8)
            embeddings = sessions[0].run(None, {"frames": frames})[0].reshape(len(clips), clips.shape[1], -1)
            return sessions[1].run(None, {"embeddings": embeddings.astype(np.float32)})[0]

        exported, onnx_speed = timed(run_graphs, images, batch=8)
        report = parity(reference, exported)
        require_agreement("ONNX (encoder + temporal)", report)
        mark_in_progress(out_dir)
        for path, name in zip(staged, SEQUENCE_FILES, strict=True):
            path.replace(out_dir / name)
    finally:
        for path in staged:
            path.unlink(missing_ok=True)
    return {"format": "onnx", "kind": "sequence", "model_sha256": meta["model_sha256"],
            "classes": meta["classes"], "tta": "none", "image_spec": meta["image_spec"],
            "versions": meta["versions"], "export_seconds": round(seconds, 2),
            "files": {name: file_facts(out_dir / name, "fp32", "onnx") for name in SEQUENCE_FILES},
            "parity": {**report, "torch_clips_per_s": round(torch_speed, 1),
                       "onnx_clips_per_s": round(onnx_speed, 1),
                       "accuracy_torch": accuracy(reference, labels, clf.classes_),
                       "accuracy_onnx": accuracy(exported, labels, clf.classes_)}}
