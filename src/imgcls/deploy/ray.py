"""Batch prediction on a Ray cluster: ``imgcls predict RUN DATA --engine ray [--address auto]``.

The driver lists the inputs as the local engine does (files, folders, globs, a manifest or a
built-in dataset name), plus object-store URIs (``s3://``, ``gs://``, ``file://``...) that
``pyarrow.fs`` can open. It makes a ``ray.data`` dataset of (input position, location) rows,
and ``map_batches`` runs :class:`BatchPredictor` actors: each builds its Predictor once, then
reads, decodes (imgcls's own safe decoder), prepares and predicts one batch per call. Rows
come back with their input position, so :func:`imgcls.deploy.tables.build_table` gives the very
table the local engine gives.

Example:
    >>> import imgcls
    >>> table = imgcls.predict("runs/elpv", ["s3://bucket/cells/"], engine="ray",
    ...                        address="auto", output="preds.parquet")   # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import PIL_DEFAULT_MAX_PIXELS
from ..core.errors import ConfigError, DataError, ImageDecodeError, ModelError
from ..data.builtins import DATASETS
from ..data.decode import decode_image, decode_with_info, is_image_name
from .inputs import as_dataset, is_uri
from .loading import load_predictor
from .predictors import iter_batches
from .tables import UNKNOWN_COLUMNS, check_abstain, top_k_rows


@dataclass(frozen=True)
class Source:
    """What the actors read. ``paths`` name the table's rows; ``locations`` say where each image
    is: an absolute local path, a path in the filesystem of the URI ``uris[roots[i]]`` (when
    ``roots[i] >= 0``), or "" for an image of the in-memory ``builtin`` dataset.
    """

    paths: list[str]
    locations: list[str]
    roots: list[int]
    uris: list[str] = field(default_factory=list)
    builtin: str | None = None
    max_pixels: int | None = PIL_DEFAULT_MAX_PIXELS


def predict_rows(model, inputs: Sequence[str | Path], *, top_k: int, limit: int | None, backend: str,
                 precision: str, threads: int, batch_size: int, export: bool, address: str | None,
                 progress: bool, abstain: bool = False) -> tuple[list[str], list[dict], int]:
    """The rows of :func:`imgcls.predict` (keyed by input position), computed on Ray."""
    ray = _import_ray()
    if not isinstance(model, str | Path):
        raise ConfigError("engine='ray' needs a run folder, model folder or .onnx file (every actor "
                          f"loads it); got a {type(model).__name__} object.")
    # Loaded here once: a bad model fails before Ray starts, and `export` happens only once.
    predictor = load_predictor(model, backend=backend, precision=precision, threads=1, export=export)
    check_abstain(abstain, predictor)
    if predictor.spec.frames:
        raise ConfigError("engine='ray' predicts images; a clip model (video files, folders of frames) "
                          "runs on the local engine: leave out --engine ray.")
    classes = predictor.classes
    source = list_inputs(inputs, limit)
    k = min(top_k, len(classes))
    started = _connect(ray, address)
    try:
        rows = _run(ray, source, progress=progress, batch_size=batch_size, threads=threads or 1,
                    model=str(Path(model).resolve()), backend=backend, precision=precision, top_k=k,
                    abstain=abstain)
    finally:
        if started:
            ray.shutdown()  # for a cluster joined with `address`, this only disconnects
    return source.paths, rows, k


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - the data extra, not only the core
    except ImportError:
        raise ConfigError("engine='ray' needs Ray Data: pip install 'imgcls[ray]'.") from None
    return ray


def _connect(ray, address: str | None) -> bool:
    """Join ``address``, or start a local instance on this machine's cores; True if we called init."""
    if ray.is_initialized():
        return False
    import logging

    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    return True


def list_inputs(inputs: Sequence[str | Path], limit: int | None = None) -> Source:
    """The local engine's input list, plus URIs listed with ``pyarrow.fs``; first ``limit`` only."""
    items = [str(i) for i in inputs]
    if not any(is_uri(i) for i in items):
        ds = as_dataset(items)
        n = len(ds) if limit is None else min(limit, len(ds))
        if ds.arrays is not None:
            return Source(ds.paths[:n], [""] * n, [-1] * n, builtin=items[0])
        locations = [os.path.abspath(ds.file_path(i)) for i in range(n)]
        return Source(ds.paths[:n], locations, [-1] * n, max_pixels=ds.max_image_pixels)
    paths, locations, roots, uris = [], [], [], []
    for item in items:
        if is_uri(item):
            root, found = list_uri(item)
            shown = item.split("?", 1)[0].rstrip("/")  # the URI as given, for the table
            paths += [shown + path[len(root.rstrip("/")):] for path in found]
            locations += found
            roots += [len(uris)] * len(found)
            uris.append(item)
        else:  # a file, folder, glob or manifest beside the URIs
            ds = as_dataset([item])
            if ds.arrays is not None:
                raise DataError(f"The built-in dataset '{item}' cannot be mixed with other inputs.")
            paths += ds.paths
            locations += [os.path.abspath(ds.file_path(i)) for i in range(len(ds))]
            roots += [-1] * len(ds)
    if not paths:
        raise DataError(f"No image files found in {items}.")
    return Source(paths[:limit], locations[:limit], roots[:limit], uris)


def list_uri(uri: str) -> tuple[str, list[str]]:
    """The URI's path in its filesystem, and the paths of one object or of the image objects
    under a prefix (hidden names skipped), sorted."""
    from pyarrow import fs as pafs

    filesystem, root = _filesystem(uri)
    info = filesystem.get_file_info(root)
    if info.type == pafs.FileType.File:
        return root, [root]
    if info.type != pafs.FileType.Directory:
        raise DataError(f"'{uri}' does not exist (or cannot be listed).")
    found = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
    keep = [f.path for f in found if f.type == pafs.FileType.File and is_image_name(f.path)
            and not any(part.startswith(".") for part in Path(f.path).relative_to(root).parts)]
    return root, sorted(keep)


def _filesystem(uri: str):
    import pyarrow
    from pyarrow import fs as pafs

    try:
        return pafs.FileSystem.from_uri(uri)
    except (pyarrow.ArrowException, ValueError) as exc:
        raise DataError(f"'{uri}': pyarrow cannot open this URI ({exc}).") from None


def _run(ray, source: Source, *, progress: bool, batch_size: int, threads: int, **model) -> list[dict]:
    """``map_batches`` over (index, root, location) rows with one BatchPredictor per actor."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = context.print_on_execution_start = progress
    batches = math.ceil(len(source.paths) / batch_size)
    actors = max(1, min(batches, int(ray.cluster_resources().get("CPU", 1)) // threads))
    items = [{"index": i, "root": root, "location": loc}
             for i, (root, loc) in enumerate(zip(source.roots, source.locations, strict=True))]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, min(batches, actors * 4)))
    predicted = dataset.map_batches(
        BatchPredictor, batch_size=batch_size, batch_format="numpy", num_cpus=threads,
        compute=ray.data.ActorPoolStrategy(size=actors),
        fn_constructor_kwargs={**model, "threads": threads, "batch_size": batch_size,
                               "builtin": source.builtin, "uris": source.uris,
                               "max_pixels": source.max_pixels})
    try:
        table = predicted.to_pandas()
    except ray.exceptions.RayError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise ModelError(f"Ray batch prediction failed: {lines[-1] if lines else exc}") from None
    return [record if record["error"] == "" else {"index": record["index"], "error": record["error"]}
            for record in table.to_dict("records")]


class BatchPredictor:
    """A Ray actor: builds the Predictor once, then predicts one batch of rows per call.

    A batch is ``{"index": int64[N], "root": int64[N], "location": str[N]}``; the answer has
    ``index``, ``prediction``, ``confidence``, ``top1``, ``p1``, ... and ``error`` (failed rows:
    "" and NaN in the value columns, the reason in ``error``).
    """

    def __init__(self, model: str, backend: str, precision: str, threads: int, top_k: int,
                 batch_size: int, builtin: str | None, uris: list[str], max_pixels: int | None,
                 abstain: bool = False) -> None:
        self.abstain = abstain
        self.predictor = load_predictor(model, backend=backend, precision=precision, threads=threads)
        self.classes = np.asarray(self.predictor.classes, dtype=object)
        self.k, self.batch_size, self.max_pixels = top_k, batch_size, max_pixels
        self.arrays = None
        if builtin is not None:
            self.arrays = DATASETS.get(builtin).load().arrays
        self.uris, self._filesystems = uris, {}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        index, roots, locations = (batch[c].tolist() for c in ("index", "root", "location"))

        def read(j: int, draft: int | None, window: str) -> np.ndarray:
            return self.read(index[j], roots[j], locations[j], draft, window)

        rows: list[dict] = []
        for done, proba, failed, scores in iter_batches(self.predictor, range(len(index)), read,
                                                        self.batch_size):
            rows += [{"index": index[j], "error": reason} for j, reason in failed]
            rows += top_k_rows([index[j] for j in done], proba, self.classes, self.k,
                               self.predictor.decide(proba), scores,
                               self.predictor.unknown_flags(scores, len(done)), self.abstain,
                               self.predictor.rule.chosen(proba) if self.predictor.multilabel else None)
        return self._columns(rows)

    def read(self, index: int, root: int, location: str, draft: int | None, window: str = "file"
             ) -> np.ndarray:
        """Image ``index``: from the built-in arrays, a local file, or the bytes of a URI's object."""
        if not location:
            return self.arrays[index]
        if root < 0:
            return decode_image(location, self.max_pixels, draft, window=window)
        if root not in self._filesystems:  # one filesystem per URI given, opened once per actor
            self._filesystems[root] = _filesystem(self.uris[root])[0]
        try:
            with self._filesystems[root].open_input_file(location) as fh:
                data = fh.read()
        except OSError as exc:  # pyarrow's IO errors are OSErrors
            raise ImageDecodeError(location, f"cannot read file ({exc})", "unreadable") from None
        return decode_with_info(location, data=data, max_pixels=self.max_pixels, draft_size=draft,
                                window=window)[0]

    def _columns(self, rows: list[dict]) -> dict[str, np.ndarray]:
        names = ["prediction", "confidence"] + [f"{n}{r}" for r in range(1, self.k + 1) for n in ("top", "p")]
        out = {"index": np.asarray([r["index"] for r in rows], dtype=np.int64),
               "error": np.asarray([r["error"] for r in rows], dtype=object)}
        if self.predictor.unknown is not None:
            names += list(UNKNOWN_COLUMNS)
        for name in names:
            text = name == "prediction" or name.startswith("top")
            out[name] = (np.asarray([r.get(name, "") for r in rows], dtype=object) if text
                         else np.asarray([r.get(name, np.nan) for r in rows], dtype=np.float64))
        return out
