"""What a model family needs to know of a dataset before any image is decoded.

Example:
    >>> from imgcls.data import load_dataset
    >>> facts = describe(load_dataset("digits"), channels=True)
    >>> facts.short_side, facts.channels, facts.n_classes
    (8, 1, 10)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import ImageDecodeError
from .dataset import Dataset
from .decode import PILLOW_FORMATS, decode_with_info, is_clip_path, is_grey
from .video import CLIP

DEFAULT_SIDE = 150  # when no image header can be read


@dataclass(frozen=True)
class DataFacts:
    """Median short side (from headers), image and class counts, and the channels (1 when a
    sample is all grey; None when not sampled)."""

    short_side: int
    n_images: int
    n_classes: int
    channels: int | None = None
    videos: int = 0  # samples that are clips (video files, folders of frames) for a sequence model


def describe(ds: Dataset, channels: bool = False, sample: int = 200) -> DataFacts:
    """Facts from image headers; with ``channels``, also decode a small sample to see colour."""
    classes = ds.table["label"].nunique() if "label" in ds.table else 0
    videos = int(sum(is_clip_path(ds.file_path(i)) for i in range(len(ds)))) if ds.arrays is None else 0
    return DataFacts(median_short_side(ds, sample), len(ds), int(classes),
                     sample_channels(ds) if channels else None, videos)


def _picks(n: int, sample: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(sample, n)).astype(int)) if n else np.zeros(0, int)


def median_short_side(ds: Dataset, sample: int = 200) -> int:
    """Median of min(height, width) over up to ``sample`` evenly spaced images (headers only;
    a clip's frame size from its video header, or its first frame for a folder of frames)."""
    from PIL import Image

    sides = []
    for i in _picks(len(ds), sample):
        if ds.arrays is not None:
            sides.append(min(ds.arrays[i].shape[:2]))
            continue
        path = ds.file_path(i)
        if is_clip_path(path):
            try:
                _, header = decode_with_info(path, max_pixels=ds.max_image_pixels, draft_size=CLIP,
                                             timeout=ds.decode_timeout)
                if min(header["width"], header["height"]) > 0:
                    sides.append(min(header["width"], header["height"]))
            except ImageDecodeError:
                pass  # an unreadable clip is reported when decoded
            continue
        try:
            with Image.open(ds.file_path(i), formats=PILLOW_FORMATS) as img:
                sides.append(min(img.size))
        except Exception:  # noqa: BLE001, S112 - unreadable files are reported when decoded
            continue
    return int(np.median(sides)) if sides else DEFAULT_SIDE


def sample_channels(ds: Dataset, sample: int = 20) -> int:
    """1 when a sample of the images is grey, else 3 (a few small draft decodes)."""
    for i in _picks(len(ds), sample):
        try:
            if not is_grey(ds.read(int(i), draft_size=64)):
                return 3
        except ImageDecodeError:
            continue
    return 1
