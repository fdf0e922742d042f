"""Atomic writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
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


def row_digests(array: np.ndarray) -> np.ndarray:
    """A 16-byte content digest of every row (image) of ``array``, as an ``S16`` array."""
    rows = np.ascontiguousarray(array).reshape(len(array), -1)
    return np.array([hashlib.blake2b(row.data, digest_size=16).digest() for row in rows], dtype="S16")


def cached_rows(cache_dir: Path | None, kind: str, header: Sequence, array: np.ndarray,
                compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``compute(array)`` for a function that treats each row (image) on its own, cached row by
    row: a stack that shares images with earlier ones (train + validation, after each apart)
    computes only its new rows. Entries live in ``cache_dir/kind/<settings hash>/`` as chunks
    (``keys`` and ``values``), one per call that computed something; unreadable ones are
    ignored and computed again."""
    if cache_dir is None or len(array) == 0:
        return compute(array)
    settings = json.dumps([*header, list(array.shape[1:]), str(array.dtype)], sort_keys=True, default=str)
    folder = Path(cache_dir) / kind / hashlib.sha256(settings.encode()).hexdigest()[:32]
    keys = row_digests(array)
    found: dict[bytes, np.ndarray] = {}
    wanted = set(keys.tolist())
    for chunk in sorted(folder.glob("*.npz")) if folder.is_dir() else ():
        try:
            with np.load(chunk) as npz:
                chunk_keys = npz["keys"]
                hits = np.flatnonzero(np.isin(chunk_keys, keys))
                if len(hits):
                    values = npz["values"]
                    found.update((chunk_keys[i].tobytes(), values[i]) for i in hits)
        except (OSError, ValueError, KeyError):
            continue
        if wanted <= found.keys():
            break
    missing = np.array([k not in found for k in keys.tolist()], dtype=bool)
    if missing.any():
        fresh = np.asarray(compute(array[missing]))
        new_keys = keys[missing]
        found.update(zip(new_keys.tolist(), fresh, strict=True))
        name = hashlib.sha256(new_keys.tobytes()).hexdigest()[:32]
        with atomic_open(folder / f"{name}.npz", "wb") as fh:
            np.savez(fh, keys=new_keys, values=fresh)
    return np.stack([found[k] for k in keys.tolist()])


