"""Predict labels for files, folders, globs or a built-in dataset with a saved model.

Example:
    >>> table = predict("runs/digits-svm", ["photos/"], top_k=3)     # doctest: +SKIP
    >>> table.columns[:4].tolist()                                   # doctest: +SKIP
    ['path', 'prediction', 'confidence', 'top1']
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


def _as_dataset(inputs: Sequence[str | Path]) -> Dataset:
    from .data.builtins import DATASETS

    names = [str(i) for i in inputs]
    if len(names) == 1 and not os.path.exists(names[0]) and names[0] in DATASETS:
        return DATASETS.get(names[0]).load()
    paths = expand_inputs(names)
    if not paths:
        raise DataError(f"No image files found in {names}.")
    return Dataset("inputs", pd.DataFrame({"path": paths, "label": ""}))


def predict(model: str | Path | Classifier | Predictor, inputs: Sequence[str | Path], *, top_k: int = 3,
            output: str | Path | None = None, limit: int | None = None, n_jobs: int = 0,
            progress: bool = True, backend: str = "auto", precision: str = "fp32",
            batch_size: int = 32, export: bool = False) -> pd.DataFrame:
    """Top-k predictions per image; unreadable files get a row with ``error`` set.

    Decoding runs in threads ahead of the model, and a run with an up-to-date ONNX export
    runs on ONNX Runtime (see :func:`imgcls.inference.load_predictor`).

    Args:
        model: Run folder, model folder, ``.onnx`` file, fitted Classifier or Predictor.
        inputs: Files, folders, globs, or one built-in dataset name.
        top_k: How many labels (with probabilities) per image.
        output: Write ``.csv``, ``.jsonl`` or ``.parquet``; the suffix picks the format.
        limit: Predict only the first ``limit`` images.
        n_jobs: Threads for inference (0: every core of this machine).
        backend: ``auto``, ``onnx`` or ``torch``; precision: ``fp32`` or ``int8``.
        export: Export the run to ONNX first when it has no export yet.
    """
    if top_k < 1:
        raise ConfigError(f"The 'top_k' parameter must be >= 1. Got {top_k}.")
    if batch_size < 1:
        raise ConfigError(f"The 'batch_size' parameter must be >= 1. Got {batch_size}.")
    predictor = model if isinstance(model, Predictor) else load_predictor(
        model, backend=backend, precision=precision, threads=n_jobs or None, export=export)
    ds = _as_dataset(inputs)
    if limit is not None:
        ds = ds.subset(np.arange(min(limit, len(ds))))
    k = min(top_k, len(predictor.classes))
    classes = np.asarray(predictor.classes, dtype=object)
    rows: list[dict] = []
    with progress_bar(len(ds), f"Predicting ({predictor.backend})", progress) as advance:
        for done, proba, failed in iter_batches(predictor, range(len(ds)), ds.read, batch_size):
            rows += [{"index": i, "error": reason} for i, reason in failed]
            rows += _top_k_rows(done, proba, classes, k)
            advance(len(done) + len(failed))
    rows.sort(key=lambda r: r["index"])
    columns = ["path", "prediction", "confidence"] + [
        f"{n}{r}" for r in range(1, k + 1) for n in ("top", "p")] + ["error"]
    table = pd.DataFrame(rows, columns=["index", *columns[1:]])
    table.insert(0, "path", np.asarray(ds.paths, dtype=object)[table.pop("index").to_numpy(dtype=int)])
    table = table.reindex(columns=columns).fillna({"error": ""})
    if output is not None:
        write_table(table, Path(output))
    return table


def _top_k_rows(done: list[int], proba: np.ndarray, classes: np.ndarray, k: int) -> list[dict]:
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
