"""Atomic writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Write to a temporary file beside ``path``; replace ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Fill a temporary folder; it becomes ``path`` (replacing an old one) only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def content_cache_path(cache_dir: Path | None, kind: str, header: list, array: np.ndarray) -> Path | None:
    """``cache_dir/kind/<hash>.npy`` keyed by ``header`` (JSON-able settings) and the array's
    bytes, shape and dtype; None when caching is off."""
    if cache_dir is None:
        return None
    digest = hashlib.sha256(json.dumps([*header, list(array.shape), str(array.dtype)],
                                       sort_keys=True, default=str).encode())
    digest.update(np.ascontiguousarray(array).data)
    return Path(cache_dir) / kind / f"{digest.hexdigest()[:32]}.npy"


def cached_array(path: Path | None, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """Load ``path`` if a readable copy exists, else compute and store it atomically."""
    if path is not None and path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass  # unreadable cache entry: compute again and replace it
    result = compute()
    if path is not None:
        with atomic_open(path, "wb") as fh:
            np.save(fh, result)
    return result
