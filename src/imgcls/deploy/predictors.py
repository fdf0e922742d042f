"""One predictor interface over every way a model can run: ONNX Runtime or the saved Classifier.

``predict``, the server and batch jobs only talk to a :class:`Predictor`: images prepared
from its ``spec`` (:func:`imgcls.data.prepare_image`, the one prepare step) go to
``predict_proba``; ``predict_images`` prepares decoded images of any size itself. Which
backend runs is chosen once, by :func:`imgcls.deploy.loading.load_predictor`.

Example:
    >>> predictor = load_predictor("runs/elpv")                 # doctest: +SKIP
    >>> predictor.backend, predictor.classes[:2]                # doctest: +SKIP
    ('onnx-fp32', ['defect', 'ok'])
    >>> proba = predictor.predict_images([decode_image("cell.png")])   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..core.errors import ModelError
from ..data.prepare import ImageSpec, prepare_images, read_prepared
from ..models.decision import Decision

METADATA_KEY = "imgcls"


class Predictor(ABC):
    """Class probabilities for images prepared from ``spec``; callers decode and prepare in
    threads while the model runs.

    Both methods may be called from several threads at once (ONNX Runtime sessions,
    PyTorch modules in eval mode and fitted scikit-learn models are safe to share).
    ``version`` is a short sha256 of the saved model, the same for every backend of it.
    """

    classes: list[str]
    spec: ImageSpec
    backend: str
    name: str = "model"
    version: str = ""
    path: Path | None = None
    decision: Decision | None = None  # the model's tuned decision rule; None: the most probable class
    unknown: dict | None = None  # the model's unknown detector (method, threshold, rate); None: none
    multilabel: bool = False  # independent labels per image: a decision is a set, joined by '|'

    @abstractmethod
    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """A stack of prepared images -> probabilities (N, n_classes), columns as ``classes``."""

    def predict_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, unknown scores); the scores are None for a model without an unknown
        detector (see :mod:`imgcls.models.unknown`)."""
        return self.predict_proba(batch), None

    def unknown_flags(self, scores: np.ndarray | None, n: int) -> np.ndarray:
        """Which rows the model calls unknown (none without a detector)."""
        if scores is None or self.unknown is None:
            return np.zeros(n, dtype=bool)
        return np.asarray(scores, dtype=np.float64) > float(self.unknown["threshold"])

    @property
    def rule(self) -> Decision:
        """The model's decision rule; untuned: the most probable class, or every label at 0.5."""
        return self.decision or (Decision.multilabel(len(self.classes)) if self.multilabel else Decision())

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """The label of each row of probabilities, by the model's decision rule (for a
        multi-label model, its labels joined by '|')."""
        return self.rule.labels(proba, self.classes)

    def predict_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Decoded images of any size -> probabilities (prepared here, once)."""
        if not len(images):
            return np.zeros((0, len(self.classes)), np.float32)
        return self.predict_proba(prepare_images(images, self.spec))

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "backend": self.backend,
                "classes": list(self.classes), "input_size": self.spec.size,
                "channels": self.spec.channels, "resize": self.spec.resize, "roi": self.spec.roi,
                "window": self.spec.window,
                "decision": (self.decision or Decision()).describe(),
                "unknown": None if self.unknown is None else {
                    k: self.unknown[k] for k in ("method", "threshold", "rate")}}


class ClassifierPredictor(Predictor):
    """A loaded Classifier of either school, run in-process (scikit-learn or PyTorch)."""

    def __init__(self, clf, threads: int | None = None) -> None:
        self.clf = clf
        self.classes = [str(c) for c in clf.classes_]
        self.spec = clf.image_spec
        self.backend = clf.backend
        self.decision = clf.decision_
        self.multilabel = clf.is_multilabel
        self.unknown = clf.unknown_.to_dict() if clf.unknown_ is not None else None
        if threads:
            clf.set_runtime(n_jobs=threads)

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.clf.predict_proba(batch), dtype=np.float32)

    def predict_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        proba, scores = self.clf.predict_with_unknown(batch)
        return np.asarray(proba, dtype=np.float32), scores


class OnnxPredictor(Predictor):
    """An exported ``.onnx`` file run by ONNX Runtime on the CPU.

    The graph takes uint8 (N, H, W, 3) and holds normalisation and softmax; everything
    else needed (classes, size, resize rule, ROI, DICOM window) is read from its metadata, so the file
    alone is enough.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"'{self.path}' does not exist; run `imgcls export RUN` first.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            graph = self.path.read_bytes()  # read once: the session and the digest the browser is given
            self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise ModelError(f"'{self.path}' cannot be loaded by ONNX Runtime: {exc}") from None
        meta = read_onnx_metadata(self.session, self.path)
        self.metadata = meta
        self.decision = Decision.from_dict(meta.get("decision"))
        self.unknown = meta.get("unknown") or None
        self.multilabel = bool(meta.get("multilabel"))
        try:
            self.classes = [str(c) for c in meta["classes"]]
            spec = meta["image_spec"]
            self.spec = ImageSpec(size=int(spec["size"]), channels=3, resize=spec["resize"],
                                  roi=spec.get("roi", "none"), window=spec.get("window", "file"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"'{self.path}': its imgcls metadata is incomplete ({exc!r}); export it again."
                             ) from None
        self.backend = f"onnx-{meta.get('precision', 'fp32')}"
        self.version = meta.get("model_sha256", "")[:12]
        self.onnx_file = self.path  # ``path`` may be renamed to the run folder; this stays the graph
        self.onnx_sha256 = hashlib.sha256(graph).hexdigest()  # exactly what was loaded
        self.input_name = self.session.get_inputs()[0].name

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: self._input(batch)})[0]

    def predict_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = self.session.run(None, {self.input_name: self._input(batch)})
        return outputs[0], (outputs[2].astype(np.float64) if len(outputs) > 2 else None)

    def graph_labels(self, batch: np.ndarray) -> np.ndarray:
        """The decided class indices the graph computes itself (its second output, when it has one)."""
        outputs = self.session.run(None, {self.input_name: self._input(batch)})
        if len(outputs) > 1:
            return outputs[1]
        return self.rule.indices(outputs[0], self.classes)

    @staticmethod
    def _input(batch: np.ndarray) -> np.ndarray:
        if batch.ndim == 3:  # a grey stack; the graph takes three channels
            batch = np.repeat(batch[..., None], 3, axis=3)
        return np.ascontiguousarray(batch, dtype=np.uint8)


def read_onnx_metadata(session, path: Path) -> dict:
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise ModelError(f"'{path}' was not exported by imgcls (no '{METADATA_KEY}' metadata); "
                         "export it with `imgcls export RUN`.")
    try:
        meta = json.loads(props[METADATA_KEY])
    except ValueError as exc:
        raise ModelError(f"'{path}': its imgcls metadata is not valid JSON ({exc}); "
                         "export it again.") from None
    if not isinstance(meta, dict):
        raise ModelError(f"'{path}': its imgcls metadata is not an object; export it again.")
    return meta


def default_threads() -> int:
    """Threads for inference: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def iter_batches(predictor: Predictor, items: Sequence, read: Callable[[object, int | None, str], np.ndarray],
                 batch_size: int = 32, workers: int = 2
                 ) -> Iterator[tuple[list, np.ndarray, list[tuple[object, str]], np.ndarray | None]]:
    """Decode and prepare in threads, ahead of the model: yields (items, proba, failures,
    unknown scores or None).

    ``read(item, draft_size, window)`` decodes one image. While the model runs on one batch (ONNX
    Runtime and PyTorch release the GIL), the pool decodes the next two, so decoding hides
    behind inference.
    """
    def load(item) -> np.ndarray | str:
        return read_prepared(lambda draft, window: read(item, draft, window), predictor.spec)

    chunks = [list(items[s:s + batch_size]) for s in range(0, len(items), batch_size)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = [pool.map(load, chunk) for chunk in chunks[:2]]
        for n, chunk in enumerate(chunks):
            results = list(pending.pop(0))
            if n + 2 < len(chunks):
                pending.append(pool.map(load, chunks[n + 2]))
            ok = [(i, r) for i, r in zip(chunk, results, strict=True) if not isinstance(r, str)]
            failed = [(i, r) for i, r in zip(chunk, results, strict=True) if isinstance(r, str)]
            proba, scores = (predictor.predict_outputs(np.stack([r for _, r in ok])) if ok
                             else (np.zeros((0, len(predictor.classes)), np.float32), None))
            yield [i for i, _ in ok], proba, failed, scores
