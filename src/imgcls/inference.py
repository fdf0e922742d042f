"""One predictor interface over every way a model can run: ONNX Runtime or the saved Classifier.

``predict``, the server and batch jobs only talk to a :class:`Predictor`: give it decoded
uint8 images of any size, it prepares them (ROI crop, resize, channels) and returns class
probabilities. ``load_predictor`` picks ONNX Runtime when the run has an up-to-date export
(see :mod:`imgcls.exporting`) and the Classifier otherwise, so both schools look the same.

Example:
    >>> predictor = load_predictor("runs/elpv")                 # doctest: +SKIP
    >>> predictor.backend, predictor.classes[:2]                # doctest: +SKIP
    ('onnx-fp32', ['defect', 'ok'])
    >>> proba = predictor.predict_images([decode_image("cell.png")])   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .data.loading import ImageSpec, prepare_image, read_prepared, to_channels
from .errors import ConfigError, ModelError
from .log import info

BACKENDS = ("auto", "onnx", "torch")
PRECISIONS = ("fp32", "int8")
EXPORT_DIR = "export"
ONNX_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
METADATA_KEY = "imgcls"


class Predictor(ABC):
    """Class probabilities for decoded images; ``prepare`` + ``predict_proba`` split the work
    so that callers can decode and prepare in threads while the model runs.

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

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One decoded uint8 image (H, W) or (H, W, C) -> the model's input for one image."""
        img = prepare_image(np.asarray(image), self.spec)
        return to_channels(img, self.spec.channels) if self.spec.channels else img

    @abstractmethod
    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """A stack of prepared images -> probabilities (N, n_classes), columns as ``classes``."""

    def predict_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if not len(images):
            return np.zeros((0, len(self.classes)), np.float32)
        return self.predict_proba(np.stack([self.prepare(img) for img in images]))

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "backend": self.backend,
                "classes": list(self.classes), "input_size": self.spec.size,
                "channels": self.spec.channels, "resize": self.spec.resize, "roi": self.spec.roi}


class ClassifierPredictor(Predictor):
    """A loaded Classifier of either school, run in-process (scikit-learn or PyTorch)."""

    def __init__(self, clf, threads: int | None = None) -> None:
        self.clf = clf
        self.classes = [str(c) for c in clf.classes_]
        self.spec = clf.image_spec
        self.backend = "torch" if clf.school == "deep" else "sklearn"
        if threads and clf.school == "deep":
            clf.n_jobs = threads

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.clf.predict_proba(batch), dtype=np.float32)


class OnnxPredictor(Predictor):
    """An exported ``.onnx`` file run by ONNX Runtime on the CPU.

    The graph takes uint8 (N, H, W, 3) and holds normalisation and softmax; everything
    else needed (classes, size, resize rule, ROI) is read from its metadata, so the file
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
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise ModelError(f"'{self.path}' cannot be loaded by ONNX Runtime: {exc}") from None
        meta = read_onnx_metadata(self.session, self.path)
        self.metadata = meta
        try:
            self.classes = [str(c) for c in meta["classes"]]
            spec = meta["image_spec"]
            self.spec = ImageSpec(size=int(spec["size"]), channels=3, resize=spec["resize"],
                                  roi=spec.get("roi", "none"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"'{self.path}': its imgcls metadata is incomplete ({exc!r}); export it again."
                             ) from None
        self.backend = f"onnx-{meta.get('precision', 'fp32')}"
        self.version = meta.get("model_sha256", "")[:12]
        self.input_name = self.session.get_inputs()[0].name

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        if batch.ndim == 3:  # a grey stack; the graph takes three channels
            batch = np.repeat(batch[..., None], 3, axis=3)
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.uint8)})[0]


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


def export_dir(run: str | Path) -> Path:
    """Where ``imgcls export RUN`` writes: ``RUN/export`` (for a model folder, beside it)."""
    run = Path(run)
    is_model_folder = (run / "model.json").is_file() and not (run / "model").is_dir()
    return (run.parent if is_model_folder else run) / EXPORT_DIR


def find_export(run: str | Path, precision: str = "fp32") -> Path | None:
    """The run's exported ONNX file for ``precision`` when it exists and matches the saved model."""
    run = Path(run)
    path = export_dir(run) / ONNX_FILES[precision]
    if not path.is_file():
        return None
    from .exporting import export_is_current

    if not export_is_current(run, path):
        info(f"{path} is older than the model in {run}; not used (run `imgcls export {run}` again)")
        return None
    return path


def load_predictor(model, *, backend: str = "auto", precision: str = "fp32",
                   threads: int | None = None, export: bool = False) -> Predictor:
    """A Predictor for a run folder, a model folder, an ``.onnx`` file or a fitted Classifier.

    Args:
        backend: ``auto`` (ONNX Runtime when an up-to-date export exists), ``onnx`` or ``torch``
            (the saved Classifier, whatever its school).
        precision: ``fp32`` or ``int8`` (an int8 export; needs ``imgcls export --quantize int8``).
        export: With ``backend`` auto or onnx, export the run first when it has no export.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"The 'backend' parameter must be one of {BACKENDS}. Got {backend!r}.")
    if precision not in PRECISIONS:
        raise ConfigError(f"The 'precision' parameter must be one of {PRECISIONS}. Got {precision!r}.")
    from .models import Classifier, load_model

    if isinstance(model, Classifier):
        if backend == "onnx" or precision != "fp32":
            raise ConfigError("A Classifier object runs in-process; export its run to use ONNX or int8.")
        return ClassifierPredictor(model, threads)
    path = Path(model)
    if path.suffix == ".onnx":
        return _named(OnnxPredictor(path, threads), path)
    if not path.exists():
        raise ModelError(f"'{path}' does not exist (give a run folder, model folder or .onnx file).")
    if backend != "torch":
        onnx_path = find_export(path, precision)
        if onnx_path is None and (export or backend == "onnx" or precision == "int8"):
            onnx_path = _export_now(path, precision, required=backend == "onnx" or precision == "int8",
                                    asked=export)
        if onnx_path is not None:
            return _named(OnnxPredictor(onnx_path, threads), path)
    if precision != "fp32":
        raise ConfigError("int8 needs ONNX Runtime; use backend auto or onnx.")
    predictor = ClassifierPredictor(load_model(path), threads)
    from .exporting import model_digest

    predictor.version = model_digest(path)[:12]
    return _named(predictor, path)


def _export_now(run: Path, precision: str, required: bool, asked: bool) -> Path | None:
    from .exporting import export as run_export
    from .models.base import read_model_json

    if not asked:
        raise ModelError(f"'{run}' has no up-to-date {precision} ONNX export; run `imgcls export {run}"
                         f"{' --quantize int8' if precision == 'int8' else ''}` or pass export=True.")
    model_dir = run / "model" if (run / "model").is_dir() else run
    if read_model_json(model_dir).get("school") != "deep":
        if required:
            raise ModelError(f"'{run}' is a classical model; ONNX export is for deep models.")
        return None
    run_export(run, quantize="int8" if precision == "int8" else None, progress=False)
    return export_dir(run) / ONNX_FILES[precision]


def _named(predictor: Predictor, path: Path) -> Predictor:
    predictor.name, predictor.path = (path.stem if path.is_file() else path.name), path
    return predictor


def iter_batches(predictor: Predictor, items: Sequence, read: Callable[[object, int | None], np.ndarray],
                 batch_size: int = 32, workers: int = 2
                 ) -> Iterator[tuple[list, np.ndarray, list[tuple[object, str]]]]:
    """Decode and prepare in threads, ahead of the model: yields (items, proba, failures).

    ``read(item, draft_size)`` decodes one image. While the model runs on one batch (ONNX
    Runtime and PyTorch release the GIL), the pool decodes the next two, so decoding hides
    behind inference.
    """
    def load(item) -> np.ndarray | str:
        return read_prepared(lambda draft: read(item, draft), predictor.spec, predictor.prepare)

    chunks = [list(items[s:s + batch_size]) for s in range(0, len(items), batch_size)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = [pool.map(load, chunk) for chunk in chunks[:2]]
        for n, chunk in enumerate(chunks):
            results = list(pending.pop(0))
            if n + 2 < len(chunks):
                pending.append(pool.map(load, chunks[n + 2]))
            ok = [(i, r) for i, r in zip(chunk, results, strict=True) if not isinstance(r, str)]
            failed = [(i, r) for i, r in zip(chunk, results, strict=True) if isinstance(r, str)]
            proba = (predictor.predict_proba(np.stack([r for _, r in ok])) if ok
                     else np.zeros((0, len(predictor.classes)), np.float32))
            yield [i for i, _ in ok], proba, failed
