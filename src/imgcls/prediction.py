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

from .config import resolve_n_jobs
from .data import Dataset, load_images
from .data.decode import is_image_name
from .errors import ConfigError, DataError
from .ioutils import atomic_write_text
from .models import Classifier, load_model
from .progress import progress_bar

BATCH = 256


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


def predict(model: str | Path | Classifier, inputs: Sequence[str | Path], *, top_k: int = 3,
            output: str | Path | None = None, limit: int | None = None, n_jobs: int = 0,
            progress: bool = True) -> pd.DataFrame:
    """Top-k predictions per image; unreadable files get a row with ``error`` set.

    Args:
        model: Run folder, model folder, or a fitted Classifier.
        inputs: Files, folders, globs, or one built-in dataset name.
        top_k: How many labels (with probabilities) per image.
        output: Write ``.csv``, ``.jsonl`` or ``.parquet``; the suffix picks the format.
        limit: Predict only the first ``limit`` images.
    """
    if top_k < 1:
        raise ConfigError(f"The 'top_k' parameter must be >= 1. Got {top_k}.")
    clf = model if isinstance(model, Classifier) else load_model(model)
    ds = _as_dataset(inputs)
    if limit is not None:
        ds = ds.subset(np.arange(min(limit, len(ds))))
    k = min(top_k, len(clf.classes_))
    tables = []
    with progress_bar(len(ds), "Predicting", progress) as advance:
        for start in range(0, len(ds), BATCH):
            chunk = ds.subset(np.arange(start, min(start + BATCH, len(ds))))
            tables.append(_predict_chunk(clf, chunk, k, resolve_n_jobs(n_jobs)))
            advance(len(chunk))
    table = pd.concat(tables, ignore_index=True)
    if output is not None:
        write_table(table, Path(output))
    return table


def _predict_chunk(clf: Classifier, chunk: Dataset, k: int, n_jobs: int) -> pd.DataFrame:
    loaded = load_images(chunk, clf.image_spec, n_jobs, None, progress=False)
    rows = [{"path": p, "error": r} for p, r in loaded.skipped.itertuples(index=False)]
    if len(loaded.rows):
        proba = clf.predict_proba(loaded.images)
        order = np.argsort(-proba, axis=1)[:, :k]
        for j, i in enumerate(loaded.rows):
            row = {"path": chunk.paths[i], "prediction": clf.classes_[order[j, 0]],
                   "confidence": round(float(proba[j, order[j, 0]]), 6), "error": ""}
            for rank, c in enumerate(order[j], start=1):
                row[f"top{rank}"] = clf.classes_[c]
                row[f"p{rank}"] = round(float(proba[j, c]), 6)
            rows.append(row)
    position = {p: n for n, p in enumerate(chunk.paths)}
    rows.sort(key=lambda r: position[r["path"]])
    columns = ["path", "prediction", "confidence"] + [
        f"{n}{r}" for r in range(1, k + 1) for n in ("top", "p")] + ["error"]
    return pd.DataFrame(rows).reindex(columns=columns).fillna({"error": ""})


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
