"""Decode and prepare a dataset once, in parallel, into one uint8 stack (cached on disk).

Example:
    >>> from imgcls.data import load_dataset
    >>> loaded = load_images(load_dataset("digits"), ImageSpec(size=8), progress=False)
    >>> loaded.images.shape
    (1797, 8, 8)
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.io import atomic_open, atomic_write_text
from ..core.progress import progress_bar
from .dataset import Dataset
from .prepare import ImageSpec, read_prepared, stack_prepared

LOADER_VERSION = "2"  # 2: crop cuts the centre square before resizing


@dataclass
class LoadedImages:
    """``images[k]`` is row ``rows[k]`` of the dataset; ``skipped`` lists rows that failed."""

    images: np.ndarray
    rows: np.ndarray
    skipped: pd.DataFrame

    @property
    def channels(self) -> int:
        return 1 if self.images.ndim == 3 else self.images.shape[-1]

    def split_rows(self, ds: Dataset, split: str) -> np.ndarray:
        """Positions in ``images`` of the decoded images of one split of ``ds``."""
        splits = ds.table["split"].to_numpy()[self.rows]
        return np.flatnonzero(splits == split)


def load_images(
    ds: Dataset,
    spec: ImageSpec,
    n_jobs: int = 1,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> LoadedImages:
    """Decode and prepare every image of ``ds``; unreadable files go to ``skipped``."""
    key = _cache_key(ds, spec) if cache_dir else None
    if key and (cached := _read_cache(Path(cache_dir), key)) is not None:
        return cached
    results: list[np.ndarray | str] = []
    with ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool, progress_bar(
        len(ds), f"Decoding {ds.name}", progress
    ) as advance:
        read = lambda i: read_prepared(lambda draft, window: ds.read_sample(i, draft, window), spec)  # noqa: E731
        for result in pool.map(read, range(len(ds)), chunksize=16):
            results.append(result)
            advance(1)
    ok = [i for i, r in enumerate(results) if not isinstance(r, str)]
    bad = [i for i, r in enumerate(results) if isinstance(r, str)]
    skipped = pd.DataFrame({"path": [ds.paths[i] for i in bad],
                            "reason": [results[i] for i in bad]})
    loaded = LoadedImages(stack_prepared([results[i] for i in ok], spec),
                          np.asarray(ok, dtype=int), skipped)
    if key:
        _write_cache(Path(cache_dir), key, loaded)
    return loaded


def _cache_key(ds: Dataset, spec: ImageSpec) -> str:
    head = json.dumps([LOADER_VERSION, spec.to_dict(), ds.max_image_pixels]).encode()
    return hashlib.sha256(head + ds.content_key().encode()).hexdigest()[:32]


def _read_cache(cache_dir: Path, key: str) -> LoadedImages | None:
    base = cache_dir / "images" / key
    try:
        meta = json.loads(base.with_suffix(".json").read_text())
        images = np.load(base.with_suffix(".npy"), mmap_mode="r")
    except (OSError, ValueError):
        return None
    return LoadedImages(images, np.asarray(meta["rows"], dtype=int),
                        pd.DataFrame(meta["skipped"], columns=["path", "reason"]))


def _write_cache(cache_dir: Path, key: str, loaded: LoadedImages) -> None:
    base = cache_dir / "images" / key
    with atomic_open(base.with_suffix(".npy"), "wb") as fh:
        np.save(fh, np.ascontiguousarray(loaded.images))
    meta = {"rows": loaded.rows.tolist(), "skipped": loaded.skipped.values.tolist()}
    atomic_write_text(base.with_suffix(".json"), json.dumps(meta))
