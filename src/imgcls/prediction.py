"""Predict labels for files, folders, globs or a built-in dataset with a saved model.

Example:
    >>> table = predict("runs/digits-svm", ["photos/"], top_k=3)     # doctest: +SKIP
    >>> table.columns[:4].tolist()                                   # doctest: +SKIP
    ['path', 'prediction', 'confidence', 'top1']
    >>> table = predict("runs/elpv", ["s3://bucket/cells/"], engine="ray", address="auto")  # doctest: +SKIP
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .data import Dataset
from .data.decode import is_image_name
from .errors import ConfigError, DataError
from .inference import Predictor, iter_batches, load_predictor
from .ioutils import atomic_write_text
from .models import Classifier
from .progress import progress_bar
from .registry import did_you_mean

ENGINES = ("local", "ray")
MANIFEST_SUFFIXES = (".csv", ".parquet", ".pq")


def expand_inputs(inputs: Sequence[str | Path]) -> list[str]:
    """Files as given, folders walked for image files (hidden ones skipped), globs expanded."""
    paths: list[str] = []
    for item in map(str, inputs):
        if os.path.isdir(item):
            for dirpath, dirnames, filenames in os.walk(item):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                paths += [os.path.join(dirpath, f) for f in sorted(filenames)
                          if not f.startswith(".") and is_image_name(f)]
        elif os.path.exists(item):
            paths.append(item)
        elif glob.has_magic(item):
            paths += sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
        else:
            raise DataError(f"'{item}' does not exist (give files, folders, globs or a built-in "
                            "dataset name).")
    return paths


def as_dataset(inputs: Sequence[str | Path]) -> Dataset:
    """One built-in dataset name, one CSV/Parquet manifest, or files, folders and globs."""
    from .data.builtins import DATASETS

    names = [str(i) for i in inputs]
    if len(names) == 1 and not os.path.exists(names[0]) and names[0] in DATASETS:
        return DATASETS.get(names[0]).load()
    if len(names) == 1 and os.path.isfile(names[0]) and names[0].lower().endswith(MANIFEST_SUFFIXES):
        return _manifest(Path(names[0]))
    paths = expand_inputs(names)
    if not paths:
        raise DataError(f"No image files found in {names}.")
    return Dataset("inputs", pd.DataFrame({"path": paths, "label": ""}))


def _manifest(path: Path) -> Dataset:
    """A CSV/Parquet manifest's ``path`` column (relative to its folder); labels are not needed."""
    from .data.sources import read_manifest

    table = read_manifest(path)
    if "path" not in table.columns:
        raise DataError(f"Manifest '{path}' lacks a 'path' column; found {list(table.columns)}.")
    paths = table["path"].fillna("").astype(str).str.strip()
    return Dataset(path.stem, pd.DataFrame({"path": paths, "label": ""}), root=path.parent.resolve())


def predict(model: str | Path | Classifier | Predictor, inputs: Sequence[str | Path], *, top_k: int = 3,
            output: str | Path | None = None, limit: int | None = None, n_jobs: int = 0,
            progress: bool = True, backend: str = "auto", precision: str = "fp32",
            batch_size: int = 32, export: bool = False, engine: str = "local",
            address: str | None = None) -> pd.DataFrame:
    """Top-k predictions per image; unreadable files get a row with ``error`` set.

    Decoding runs in threads ahead of the model, and a run with an up-to-date ONNX export
    runs on ONNX Runtime (see :func:`imgcls.inference.load_predictor`).

    Args:
        model: Run folder, model folder, ``.onnx`` file, fitted Classifier or Predictor.
        inputs: Files, folders, globs, one CSV/Parquet manifest or one built-in dataset name
            (with ``engine="ray"`` also ``s3://``, ``gs://``... URIs that pyarrow can open).
        top_k: How many labels (with probabilities) per image.
        output: Write ``.csv``, ``.jsonl`` or ``.parquet``; the suffix picks the format.
        limit: Predict only the first ``limit`` images.
        n_jobs: Threads for inference (0: every core of this machine; with ``engine="ray"``,
            threads per actor, 0 meaning 1, and one actor per that many cluster CPUs).
        backend: ``auto``, ``onnx`` or ``torch``; precision: ``fp32`` or ``int8``.
        export: Export the run to ONNX first when it has no export yet.
        engine: ``local`` (this process) or ``ray`` (``map_batches`` over a Ray cluster, same
            table; see :mod:`imgcls.batch_ray`).
        address: With ``engine="ray"``, the cluster to join (``auto``, ``ray://host:10001``);
            default: a local Ray instance on this machine's cores.
    """
    _check_options(top_k, batch_size, engine, address)
    if engine == "ray":
        from .batch_ray import predict_rows

        paths, rows, k = predict_rows(model, inputs, top_k=top_k, limit=limit, backend=backend,
                                      precision=precision, threads=n_jobs, batch_size=batch_size,
                                      export=export, address=address, progress=progress)
    else:
        paths, rows, k = _local_rows(model, inputs, top_k=top_k, limit=limit, backend=backend,
                                     precision=precision, n_jobs=n_jobs, batch_size=batch_size,
                                     export=export, progress=progress)
    table = build_table(rows, paths, k)
    if output is not None:
        write_table(table, Path(output))
    return table


def _check_options(top_k: int, batch_size: int, engine: str, address: str | None) -> None:
    if top_k < 1:
        raise ConfigError(f"The 'top_k' parameter must be >= 1. Got {top_k}.")
    if batch_size < 1:
        raise ConfigError(f"The 'batch_size' parameter must be >= 1. Got {batch_size}.")
    if engine not in ENGINES:
        raise ConfigError(f"The 'engine' parameter must be one of {ENGINES}. Got {engine!r}."
                          + did_you_mean(str(engine), list(ENGINES)))
    if address is not None and engine != "ray":
        raise ConfigError(f"The 'address' parameter is for engine='ray'. Got engine={engine!r}.")


def _local_rows(model, inputs, *, top_k: int, limit: int | None, backend: str, precision: str,
                n_jobs: int, batch_size: int, export: bool, progress: bool
                ) -> tuple[list[str], list[dict], int]:
    from .batch_ray import is_uri

    if any(is_uri(i) for i in inputs):
        raise ConfigError("Object-store URIs (s3://, gs://...) are read by engine='ray'; "
                          "pass engine='ray' (CLI: --engine ray).")
    predictor = model if isinstance(model, Predictor) else load_predictor(
        model, backend=backend, precision=precision, threads=n_jobs or None, export=export)
    ds = as_dataset(inputs)
    if limit is not None:
        ds = ds.subset(np.arange(min(limit, len(ds))))
    k = min(top_k, len(predictor.classes))
    classes = np.asarray(predictor.classes, dtype=object)
    rows: list[dict] = []
    with progress_bar(len(ds), f"Predicting ({predictor.backend})", progress) as advance:
        for done, proba, failed in iter_batches(predictor, range(len(ds)), ds.read, batch_size):
            rows += [{"index": i, "error": reason} for i, reason in failed]
            rows += top_k_rows(done, proba, classes, k)
            advance(len(done) + len(failed))
    return ds.paths, rows, k


def build_table(rows: list[dict], paths: Sequence[str], k: int) -> pd.DataFrame:
    """Rows keyed by input position -> the table, in input order: path, prediction, ..., error."""
    rows = sorted(rows, key=lambda r: r["index"])
    columns = ["path", "prediction", "confidence"] + [
        f"{n}{r}" for r in range(1, k + 1) for n in ("top", "p")] + ["error"]
    table = pd.DataFrame(rows, columns=["index", *columns[1:]])
    table.insert(0, "path", np.asarray(paths, dtype=object)[table.pop("index").to_numpy(dtype=int)])
    return table.reindex(columns=columns).fillna({"error": ""})


def top_k_rows(done: list[int], proba: np.ndarray, classes: np.ndarray, k: int) -> list[dict]:
    order = np.argsort(-proba, axis=1)[:, :k]
    rows = []
    for j, i in enumerate(done):
        row = {"index": i, "prediction": classes[order[j, 0]],
               "confidence": round(float(proba[j, order[j, 0]]), 6), "error": ""}
        for rank, c in enumerate(order[j], start=1):
            row[f"top{rank}"] = classes[c]
            row[f"p{rank}"] = round(float(proba[j, c]), 6)
        rows.append(row)
    return rows


def write_table(table: pd.DataFrame, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        atomic_write_text(path, table.to_csv(index=False))
    elif suffix in (".jsonl", ".json"):
        atomic_write_text(path, table.to_json(orient="records", lines=True))
    elif suffix in (".parquet", ".pq"):
        from .ioutils import atomic_open

        with atomic_open(path, "wb") as fh:
            table.to_parquet(fh, index=False)
    else:
        raise ConfigError(f"Output '{path}': use a .csv, .jsonl or .parquet file name.")
