"""Read each file once: content hash, header facts, decoded statistics and a small thumbnail.

Records are cached per file (path, size, mtime), so checking a grown folder again only
reads the new files.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..core.errors import ImageDecodeError
from ..core.io import atomic_open
from ..core.progress import progress_bar
from ..data.dataset import Dataset
from ..data.decode import decode_with_info, frame_files, is_clip_path, is_grey
from ..data.tiles import THUMB_SIDE, TiffTiles
from ..data.video import CLIP, VideoClip, clip_facts

THUMB = 64
BIG_FILE = 256 << 20  # bytes: larger files are hashed in chunks, never held in memory whole
INSPECT_VERSION = "3"


def image_stats(arr: np.ndarray) -> dict:
    """Brightness, contrast, entropy, sharpness and a perceptual hash of one image."""
    import cv2
    import imagehash
    from PIL import Image

    grey = arr if arr.ndim == 2 else cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    scale = 256 / max(grey.shape)
    if scale < 1:
        grey = cv2.resize(grey, (max(1, round(grey.shape[1] * scale)),
                                 max(1, round(grey.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    counts = np.bincount(grey.ravel(), minlength=256) / grey.size
    nonzero = counts[counts > 0]
    laplacian = cv2.Laplacian(grey, cv2.CV_32F)
    return {
        "brightness": float(grey.mean() / 255.0),
        "contrast": float(grey.std() / 255.0),
        "entropy": float(-(nonzero * np.log2(nonzero)).sum()),
        "sharpness": float(np.log10(laplacian.var() + 1.0)),
        "phash": str(imagehash.phash(Image.fromarray(grey))),
        "mean_rgb": [round(float(v) / 255.0, 4) for v in
                     (arr.reshape(-1, 3).mean(axis=0) if arr.ndim == 3 else [arr.mean()] * 3)],
        "grey": is_grey(arr),
    }


def thumbnail(arr: np.ndarray) -> np.ndarray:
    import cv2

    grey = arr if arr.ndim == 2 else cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def inspect_row(ds: Dataset, i: int) -> tuple[dict, np.ndarray | None]:
    """One record (never raises for a bad file) and its thumbnail (None when undecodable)."""
    record: dict = {"path": ds.paths[i]}
    if ds.arrays is not None:
        arr = np.ascontiguousarray(ds.arrays[i])
        record.update(sha1=hashlib.sha1(arr.tobytes()).hexdigest(), format="array",
                      width=arr.shape[1], height=arr.shape[0], mode="L" if arr.ndim == 2 else "RGB",
                      frames=1, orientation=1, bytes=arr.nbytes)
    else:
        path = ds.file_path(i)
        try:
            digest, data, size = _read_folder(path) if path.is_dir() else _read(path)
        except OSError as exc:
            record.update(error="unreadable", reason=f"cannot read file ({exc.strerror})")
            return record, None
        try:
            frame = ds.frame(i)  # rows that are frames of one file are not copies of each other
            if frame is not None:
                digest.update(f"#{frame}".encode())
            record.update(sha1=digest.hexdigest(), bytes=size)
            arr, info = _decode(path, data, ds, frame)
        except ImageDecodeError as exc:
            record.update(error=exc.kind, reason=exc.reason)
            return record, None
        record.update(info)
    record.update(image_stats(arr))
    return record, thumbnail(arr)


def _read_folder(path: Path):
    """A folder of frames: the SHA-1 of its frames' bytes in order, no bytes kept, their size."""
    digest, size = hashlib.sha1(), 0
    for frame in frame_files(path):
        frame_digest, _, frame_size = _read(frame)
        digest.update(frame_digest.digest())
        size += frame_size
    return digest, None, size


def _read(path: Path):
    """The file's SHA-1, its bytes and its size; a file over BIG_FILE is hashed in chunks and
    left on disk."""
    size = path.stat().st_size
    if size <= BIG_FILE:
        data = path.read_bytes()
        return hashlib.sha1(data), data, size
    digest = hashlib.sha1()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest, None, size


def _decode(path: Path, data: bytes | None, ds: Dataset, frame: int | None) -> tuple[np.ndarray, dict]:
    """The image and its facts; a tiled TIFF over the pixel limit is judged on its thumbnail,
    read tile by tile (or from its pyramid), as training with data.tiles would read it. A video
    clip is judged on its middle frame (so near-duplicate clips show as near-duplicate frames)
    and reports its length, rate and duration."""
    if is_clip_path(path) and path.is_file():
        clip = VideoClip(path)
        facts = clip_facts(clip)  # counts the frames that really decode
        if not facts["frames"]:
            raise ImageDecodeError(str(path), "the video holds no frame that decodes", "unreadable")
        return clip.thumbnail(), {"format": "VIDEO", "mode": "RGB", "orientation": 1, **facts}
    if is_clip_path(path):  # a folder of frames: every frame must decode, the middle one is judged
        clip = decode_with_info(path, draft_size=CLIP, max_pixels=ds.max_image_pixels,
                                timeout=ds.decode_timeout)[0]
        middle, thumb = clip.frame_count // 2, None
        for i in range(clip.frame_count):
            frame = clip.read(np.array([i]))[0]
            if i == middle:
                thumb = frame
        return thumb, {"format": "FRAMES", "mode": "RGB", "orientation": 1, **clip_facts(clip)}
    try:
        return decode_with_info(path, data, ds.max_image_pixels, timeout=ds.decode_timeout, frame=frame)
    except ImageDecodeError as exc:
        source = TiffTiles.open(path, ds.max_image_pixels) if exc.kind == "too_many_pixels" else None
        if source is None:
            raise
    try:
        thumb, _ = source.thumbnail(THUMB_SIDE)
    finally:
        source.close()
    return thumb, {"format": "TIFF", "mode": "tiled", "width": source.shape[1], "height": source.shape[0],
                   "frames": 1, "orientation": 1}


def inspect_dataset(ds: Dataset, n_jobs: int = 1, cache_dir: Path | None = None,
                    progress: bool = True) -> tuple[list[dict], np.ndarray]:
    """Records for every row and a (N, 64, 64) thumbnail stack (zeros where undecodable)."""
    cache = _Cache(cache_dir, ds) if cache_dir and ds.arrays is None else None
    keys = [ds.fingerprint(i) for i in range(len(ds))]
    records: list[dict | None] = [None] * len(ds)
    thumbs = np.zeros((len(ds), THUMB, THUMB), dtype=np.uint8)
    todo = []
    for i, key in enumerate(keys):
        hit = cache.get(key) if cache else None
        if hit is None:
            todo.append(i)
        else:
            records[i], thumbs[i] = {**hit[0], "path": ds.paths[i]}, hit[1]
    with ThreadPoolExecutor(max(1, n_jobs)) as pool, progress_bar(
            len(todo), f"Inspecting {ds.name}", progress) as advance:
        for i, (record, thumb) in zip(todo, pool.map(lambda i: inspect_row(ds, i), todo), strict=True):
            records[i] = record
            if thumb is not None:
                thumbs[i] = thumb
            advance(1)
    if cache:
        cache.save(keys, records, thumbs)
    return records, thumbs


class _Cache:
    """One .npz per dataset root: records as JSON text and the thumbnail stack, written together."""

    def __init__(self, cache_dir: Path, ds: Dataset) -> None:
        root = str(ds.root.resolve()) if ds.root else ds.name
        name = hashlib.sha1(f"{INSPECT_VERSION}|{root}|{ds.max_image_pixels}".encode()).hexdigest()[:24]
        self.base = Path(cache_dir) / "checks" / name
        self.entries: dict[str, tuple[dict, np.ndarray]] = {}
        try:
            with np.load(self.base.with_suffix(".npz"), allow_pickle=False) as saved:
                meta, stack = json.loads(str(saved["meta"])), saved["thumbs"]
            self.entries = {k: (r, stack[n]) for n, (k, r) in enumerate(meta)}
        except (OSError, ValueError, KeyError, IndexError):
            self.entries = {}

    def get(self, key: str) -> tuple[dict, np.ndarray] | None:
        return self.entries.get(key)

    def save(self, keys: list[str], records: list[dict], thumbs: np.ndarray) -> None:
        meta = json.dumps(list(zip(keys, records, strict=True)))
        with atomic_open(self.base.with_suffix(".npz"), "wb") as fh:
            np.savez(fh, meta=np.array(meta), thumbs=thumbs)
