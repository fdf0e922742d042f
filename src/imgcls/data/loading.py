"""Decode and resize a dataset once, in parallel, into one uint8 array (cached on disk).

Example:
    >>> from imgcls.data import load_dataset
    >>> loaded = load_images(load_dataset("digits"), ImageSpec(size=8), progress=False)
    >>> loaded.images.shape
    (1797, 8, 8)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ImageDecodeError
from ..ioutils import atomic_open, atomic_write_text
from ..progress import progress_bar
from .dataset import Dataset
from .decode import is_grey
from .roi import crop_to_foreground

LOADER_VERSION = "2"  # 2: crop cuts the centre square before resizing


@dataclass(frozen=True)
class ImageSpec:
    """What a model expects: a square ``size``, ``channels`` (1 grey, 3 RGB), a resize rule and
    an optional region-of-interest crop applied before resizing."""

    size: int
    channels: int | None = None  # None: 1 if every image is grey, else 3
    resize: str = "squash"
    roi: str = "none"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LoadedImages:
    """``images[k]`` is row ``rows[k]`` of the dataset; ``skipped`` lists rows that failed."""

    images: np.ndarray
    rows: np.ndarray
    skipped: pd.DataFrame

    @property
    def channels(self) -> int:
        return 1 if self.images.ndim == 3 else self.images.shape[-1]


def resize_image(img: np.ndarray, size: int, rule: str = "squash") -> np.ndarray:
    """Resize to ``size`` x ``size``: squash (stretch), crop (centre) or pad (letterbox).

    ``crop`` cuts the centre square before resizing, so a very thin image never becomes a
    huge intermediate (a 20000 x 2 strip would otherwise be scaled to 2.2M x 224 pixels).
    """
    import cv2

    h, w = img.shape[:2]
    if rule == "crop":
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        img, h, w = img[top : top + side, left : left + side], side, side
    if rule == "pad":
        scale = size / max(h, w)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    else:
        new_w, new_h = size, size
    if (new_h, new_w) != (h, w):
        shrink = new_h * new_w < h * w
        img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if rule == "pad":
        canvas = np.zeros((size, size, *img.shape[2:]), dtype=img.dtype)
        top, left = (size - new_h) // 2, (size - new_w) // 2
        canvas[top : top + new_h, left : left + new_w] = img
        img = canvas
    return np.ascontiguousarray(img)


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """Grey (H, W) <-> RGB (H, W, 3), using ITU-R 601 luma for colour to grey."""
    if channels == 1 and img.ndim == 3:
        import cv2

        return img[..., 0].copy() if is_grey(img) else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if channels == 3 and img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    return img


def prepare_image(img: np.ndarray, spec: ImageSpec) -> np.ndarray:
    if spec.roi != "none":
        img = crop_to_foreground(img, spec.roi)
    img = resize_image(img, spec.size, spec.resize)
    return to_channels(img, spec.channels) if spec.channels else img


def read_prepared(read: Callable[[int | None], np.ndarray], spec: ImageSpec,
                  prepare: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray | str:
    """Decode one image with ``read(draft_size)`` and prepare it; a failure becomes its reason.

    A ROI crop keeps part of the image, so it is decoded at full size, not a draft near ``size``.
    """
    try:
        img = read(spec.size if spec.roi == "none" else None)
        return prepare(img) if prepare is not None else prepare_image(img, spec)
    except ImageDecodeError as exc:
        return exc.reason
    except Exception as exc:  # noqa: BLE001 - one bad file never ends a run
        return f"cannot decode: {type(exc).__name__}: {exc}"


def _read_one(ds: Dataset, i: int, spec: ImageSpec) -> np.ndarray | str:
    return read_prepared(lambda draft: ds.read(i, draft_size=draft), spec)


def _stack(arrays: list[np.ndarray], spec: ImageSpec) -> np.ndarray:
    channels = spec.channels
    if not arrays:
        return np.zeros((0, spec.size, spec.size, *([3] if channels == 3 else [])), np.uint8)
    if channels is None:
        channels = 1 if all(is_grey(a) for a in arrays) else 3
    return np.stack([to_channels(a, channels) for a in arrays])


def load_images(
    ds: Dataset,
    spec: ImageSpec,
    n_jobs: int = 1,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> LoadedImages:
    """Decode, resize and stack every image of ``ds``; unreadable files go to ``skipped``."""
    key = _cache_key(ds, spec) if cache_dir else None
    if key and (cached := _read_cache(Path(cache_dir), key)) is not None:
        return cached
    results: list[np.ndarray | str] = []
    with ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool, progress_bar(
        len(ds), f"Decoding {ds.name}", progress
    ) as advance:
        for result in pool.map(lambda i: _read_one(ds, i, spec), range(len(ds)), chunksize=16):
            results.append(result)
            advance(1)
    ok = [i for i, r in enumerate(results) if not isinstance(r, str)]
    bad = [i for i, r in enumerate(results) if isinstance(r, str)]
    skipped = pd.DataFrame({"path": [ds.paths[i] for i in bad],
                            "reason": [results[i] for i in bad]})
    loaded = LoadedImages(_stack([results[i] for i in ok], spec),
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
