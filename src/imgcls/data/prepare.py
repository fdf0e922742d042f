"""The one prepare step: a decoded image -> the model's input, from the model's image spec.

Training, prediction, the server, export parity and explanations all call
:func:`prepare_image` (one image) or :func:`prepare_images` (a stack); models consume what
it returns and never resize or crop again, so a region-of-interest crop happens exactly once.

Example:
    >>> import numpy as np
    >>> spec = ImageSpec(size=32, channels=3)
    >>> prepare_image(np.zeros((60, 80), np.uint8), spec).shape
    (32, 32, 3)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..core.errors import ImageDecodeError
from .decode import is_grey
from .roi import crop_to_region
from .tiles import TILED, tile_bag
from .video import CLIP, ArrayClip, FrameFolder, VideoClip, frames_of


@dataclass(frozen=True)
class ImageSpec:
    """What a model expects: a square ``size``, ``channels`` (1 grey, 3 RGB), a resize rule, an
    optional region of interest applied before resizing (``roi``: METHOD or METHOD:MODE, see
    :mod:`imgcls.data.roi`) and the window that turns DICOM values into 8 bits (``window``,
    see :mod:`imgcls.data.dicom`; other files ignore it). With ``tiles`` the input is a bag:
    ``max_tiles`` tiles of ``size`` (see :mod:`imgcls.data.tiles`).

    ``channels=None`` keeps each image as it is (grey or RGB); a stack of such images is grey
    when every image is grey, RGB otherwise.
    """

    size: int
    channels: int | None = None
    resize: str = "squash"
    roi: str = "none"
    window: str = "file"
    tiles: int = 0  # tile side in source pixels; 0: the image is one input, not a bag of tiles
    tile_stride: int = 0  # 0: the tile side (no overlap)
    max_tiles: int = 64
    tile_foreground: float = 0.1
    frames: int = 0  # frames per clip (video samples, :mod:`imgcls.data.video`); 0: a still image
    frame_stride: int = 0  # 0: frames spread evenly over the clip; N: consecutive frames N apart

    def to_dict(self) -> dict:
        return asdict(self)

    def with_channels(self, channels: int | None) -> ImageSpec:
        return replace(self, channels=channels)


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


def prepare_image(img: np.ndarray, spec: ImageSpec, mask: np.ndarray | None = None) -> np.ndarray:
    """One decoded uint8 image (H, W) or (H, W, 3) -> the model's input: region of interest,
    resize, channels. ``mask`` is the sample's own mask, which ``roi=mask`` needs. A tiled
    spec gives the image's bag of tiles (``img`` may then be a lazy tile source)."""
    if spec.tiles:
        return tile_bag(img, spec)[0]
    if spec.frames:
        return prepare_clip(img, spec)
    img = np.asarray(img)
    if spec.roi != "none":
        img = crop_to_region(img, spec.roi, mask)
    img = resize_image(img, spec.size, spec.resize)
    return to_channels(img, spec.channels) if spec.channels else img


def prepare_clip(clip, spec: ImageSpec) -> np.ndarray:
    """A video (a :class:`VideoClip`, a :class:`FrameFolder`) or a still image -> (frames, size,
    size, 3): frames sampled evenly (or at the spec's ``frame_stride``), each resized by the
    spec's rule; a still image repeats (a clip that does not move)."""
    if isinstance(clip, VideoClip | ArrayClip | FrameFolder):
        frames = frames_of(clip, spec.frames, stride=spec.frame_stride)
    else:
        frames = np.repeat(to_channels(np.asarray(clip), 3)[None], spec.frames, axis=0)
    return np.stack([to_channels(resize_image(f, spec.size, spec.resize), 3) for f in frames])


def stack_prepared(arrays: Sequence[np.ndarray], spec: ImageSpec) -> np.ndarray:
    """Prepared images -> one uint8 stack; ``channels=None`` resolves to the data's own."""
    channels = spec.channels
    if spec.tiles:  # bags: (N, max_tiles, size, size, 3)
        return np.stack(arrays) if len(arrays) else np.zeros((0, spec.max_tiles, spec.size, spec.size, 3),
                                                                 np.uint8)
    if spec.frames:  # clips: (N, frames, size, size, 3)
        return np.stack(arrays) if len(arrays) else np.zeros((0, spec.frames, spec.size, spec.size, 3),
                                                                 np.uint8)
    if not len(arrays):
        return np.zeros((0, spec.size, spec.size, *([3] if channels == 3 else [])), np.uint8)
    if channels is None:
        channels = 1 if all(is_grey(a) for a in arrays) else 3
    return np.stack([to_channels(a, channels) for a in arrays])


def prepare_images(images: np.ndarray | Sequence[np.ndarray], spec: ImageSpec) -> np.ndarray:
    """Decoded images of any sizes and modes -> a stack ready for a model of ``spec``.

    Example:
        >>> stack = prepare_images([np.zeros((40, 50, 3), np.uint8)], ImageSpec(size=8, channels=1))
        >>> stack.shape, stack.dtype
        ((1, 8, 8), dtype('uint8'))
    """
    return stack_prepared([prepare_image(img, spec) for img in images], spec)


def read_prepared(read: Callable[[int | None, str], np.ndarray | tuple], spec: ImageSpec) -> np.ndarray | str:
    """Decode one image with ``read(draft_size, window)`` and prepare it; a failure becomes its
    reason.

    ``read`` returns the image, or ``(image, mask or None)`` where samples may carry masks
    (``Dataset.read_sample``). A ROI crop keeps part of the image, so it is decoded at full
    size, not a draft near ``size``.
    """
    try:
        draft = TILED if spec.tiles else CLIP if spec.frames else spec.size if spec.roi == "none" else None
        got = read(draft, spec.window)
        img, mask = got if isinstance(got, tuple) else (got, None)
        return prepare_image(img, spec, mask)
    except ImageDecodeError as exc:
        return exc.reason
    except Exception as exc:  # noqa: BLE001 - one bad file never ends a run
        return f"cannot decode: {type(exc).__name__}: {exc}"
