"""Tiles of large images: a grid over the full-resolution picture, background skipped, the kept
tiles resized to the model's side and stacked into one bag per image (for multiple-instance
learning, :mod:`imgcls.models.mil`).

``data.tiles=SIZE`` sets the tile side in source pixels, ``data.tile_stride`` the step
(default SIZE: no overlap), ``data.max_tiles`` the bag's length and ``data.tile_foreground``
the share of a tile that must differ from the background (judged on a thumbnail: pixels
near the colour of the image's border, such as a slide's glass, or flat areas, are
background). An image with more foreground tiles than ``max_tiles`` keeps those with the
most foreground; a bag is padded with all-zero tiles, which models ignore.

Tiled TIFFs (whole-slide exports, orthomosaics) are read lazily (:class:`TiffTiles`): the
foreground is judged on the smallest pyramid level, or on a thumbnail built tile by tile,
and only the kept tiles are decoded at full resolution, so the decompression-bomb limit
applies to what is decoded, never to the slide's size. Other formats are decoded whole.

Example:
    >>> spec = ImageSpec(size=64, channels=3, tiles=256, max_tiles=16)     # doctest: +SKIP
    >>> bag = prepare_image(decode_image("field.tif", draft_size=TILED), spec)  # doctest: +SKIP
    >>> bag.shape                                                          # doctest: +SKIP
    (16, 64, 64, 3)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..core.errors import ImageDecodeError

TILED = -1  # the draft_size that asks decode for a lazy tile source where the format allows one
THUMB_SIDE = 512  # longest side of the thumbnails shown (heat maps)
PIXELS_PER_TILE = 8  # the foreground is judged on a thumbnail with this many pixels across a tile
MIN_THUMB = 128
STREAM_LIMIT = 16  # a TIFF without a pyramid may be streamed for its thumbnail up to this many
                   # times data.max_image_pixels
KEEP_BYTES = 256 << 20  # decoded tiles a streamed thumbnail keeps for the bag that follows
_BACKGROUND_TOLERANCE = 18  # grey levels from the border's colour that still count as background
_FLAT_STD = 4.0  # a thumbnail patch flatter than this is background whatever its colour

Box = tuple[int, int, int, int]  # top, left, bottom, right in source pixels


class ArrayTiles:
    """A decoded image seen as a tile source."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.shape = image.shape[:2]

    def thumbnail(self, side: int = THUMB_SIDE) -> tuple[np.ndarray, float]:
        return _shrink(self.image, side)

    def read(self, box: Box) -> np.ndarray:
        top, left, bottom, right = box
        return self.image[top:bottom, left:right]


class TiffTiles:
    """A tiled TIFF read tile by tile (tifffile); nothing but the tiles asked for is decoded."""

    def __init__(self, tif, path: str | Path, max_pixels: int | None) -> None:
        self.path = str(path)
        self._tif = tif
        series = tif.series[0]
        self.page = series.levels[0].pages[0] if series.levels else tif.pages[0]
        self.levels = list(series.levels[1:])
        self.shape = tuple(int(v) for v in self.page.shape[:2])
        self.max_pixels = max_pixels
        self._per_row = math.ceil(self.page.imagewidth / self.page.tilewidth)
        self._kept: dict[int, np.ndarray] = {}  # tiles decoded for the thumbnail, read again for the bag
        self._kept_bytes = 0
        self.decoded: list[int] = []  # the tiles decoded at full resolution, in order

    @classmethod
    def open(cls, path: str | Path, max_pixels: int | None) -> TiffTiles | None:
        """The file as a tile source when it is a TIFF whose first page is tiled, interleaved and
        8-bit (what this reader handles), else None: it is decoded the ordinary way. The file
        is opened once."""
        import tifffile

        try:
            tif = tifffile.TiffFile(str(path))
        except Exception:  # noqa: BLE001 - not a TIFF tifffile reads
            return None
        page = tif.pages[0]
        if page.is_tiled and page.planarconfig != 2 and page.bitspersample == 8 and page.imagedepth == 1:
            return cls(tif, path, max_pixels)
        tif.close()
        return None

    def close(self) -> None:
        self._tif.close()

    def _tile(self, index: int) -> np.ndarray:
        if index in self._kept:
            return self._kept[index]
        self.decoded.append(index)
        fh = self._tif.filehandle
        fh.seek(self.page.dataoffsets[index])
        data = fh.read(self.page.databytecounts[index])
        segment, _, _ = self.page.decode(data, index, jpegtables=self.page.jpegtables)
        return _as_uint8(np.asarray(segment)[0, 0] if segment.ndim == 5 else np.asarray(segment)[0])

    def read(self, box: Box) -> np.ndarray:
        top, left, bottom, right = box
        th, tw = self.page.tilelength, self.page.tilewidth
        rows, cols = range(top // th, (bottom - 1) // th + 1), range(left // tw, (right - 1) // tw + 1)
        canvas = None
        for r in rows:
            for c in cols:
                tile = self._tile(r * self._per_row + c)
                if canvas is None:
                    canvas = np.zeros((len(rows) * th, len(cols) * tw, *tile.shape[2:]), np.uint8)
                y, x = (r - rows.start) * th, (c - cols.start) * tw
                canvas[y:y + th, x:x + tw] = tile[:th, :tw]
        y0, x0 = top - rows.start * th, left - cols.start * tw
        return canvas[y0:y0 + bottom - top, x0:x0 + right - left]

    def thumbnail(self, side: int = THUMB_SIDE) -> tuple[np.ndarray, float]:
        """The smallest pyramid level with ``side`` pixels on its longest side, else one built
        by streaming every tile (bounded: STREAM_LIMIT x data.max_image_pixels)."""
        for level in sorted(self.levels, key=lambda lv: lv.shape[0]):
            if max(level.shape[:2]) >= min(side, max(self.shape)):
                small = _as_uint8(level.asarray())
                thumb, scale = _shrink(small, side)
                return thumb, scale * small.shape[0] / self.shape[0]
        pixels = self.shape[0] * self.shape[1]
        if self.max_pixels is not None and pixels > STREAM_LIMIT * self.max_pixels:
            raise ImageDecodeError(self.path, f"{self.shape[1]}x{self.shape[0]} tiled TIFF without a "
                                   "pyramid is too large to scan tile by tile; save it as a pyramidal TIFF "
                                   "(e.g. vips tiffsave --tile --pyramid) or raise data.max_image_pixels",
                                   "too_many_pixels")
        scale = min(1.0, side / max(self.shape))
        import cv2

        out = np.zeros((max(1, round(self.shape[0] * scale)), max(1, round(self.shape[1] * scale))), np.uint8)
        th, tw = self.page.tilelength, self.page.tilewidth
        for index in range(len(self.page.dataoffsets)):
            r, c = divmod(index, self._per_row)
            full = self._tile(index)
            if self._kept_bytes + full.nbytes <= KEEP_BYTES:
                self._kept[index] = full
                self._kept_bytes += full.nbytes
            tile = _grey(full)
            y0, x0 = round(r * th * scale), round(c * tw * scale)
            y1 = min(out.shape[0], round((r + 1) * th * scale))
            x1 = min(out.shape[1], round((c + 1) * tw * scale))
            if y1 > y0 and x1 > x0:
                out[y0:y1, x0:x1] = cv2.resize(tile, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        return out, scale


def tile_boxes(height: int, width: int, size: int, stride: int | None = None) -> list[Box]:
    """A grid of ``size`` squares every ``stride`` pixels covering the image; the last row and
    column are moved in to end at the edge; an image smaller than a tile is one box."""
    stride = stride or size

    def starts(length: int) -> list[int]:
        if length <= size:
            return [0]
        out = list(range(0, length - size + 1, stride))
        return out + ([length - size] if out[-1] != length - size else [])

    return [(top, left, min(height, top + size), min(width, left + size))
            for top in starts(height) for left in starts(width)]


def foreground_shares(thumb: np.ndarray, scale: float, boxes: list[Box]) -> np.ndarray:
    """Per box, the share of its thumbnail pixels that are not background."""
    grey = _grey(thumb).astype(np.float32)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    foreground = np.abs(grey - float(np.median(border))) > _BACKGROUND_TOLERANCE
    shares = []
    for top, left, bottom, right in boxes:
        y0, x0 = int(top * scale), int(left * scale)
        y1, x1 = max(y0 + 1, math.ceil(bottom * scale)), max(x0 + 1, math.ceil(right * scale))
        patch, mask = grey[y0:y1, x0:x1], foreground[y0:y1, x0:x1]
        share = float(mask.mean()) if mask.size else 0.0
        if share == 0.0 and patch.size > 1 and float(patch.std()) > _FLAT_STD:
            share = 0.5  # texture in the background's colour: kept rather than lost
        shares.append(share)
    return np.asarray(shares)


def tile_layout(source, spec) -> list[Box]:
    """The boxes a bag holds, in reading order: foreground tiles, at most ``spec.max_tiles``
    (those with the most foreground), never none."""
    boxes = tile_boxes(*source.shape, spec.tiles, spec.tile_stride or spec.tiles)
    across = math.ceil(max(source.shape) / spec.tiles)
    thumb, scale = source.thumbnail(min(max(source.shape), max(MIN_THUMB, PIXELS_PER_TILE * across)))
    shares = foreground_shares(thumb, scale, boxes)
    keep = np.flatnonzero(shares >= spec.tile_foreground)
    if not len(keep):
        keep = np.array([int(np.argmax(shares))])
    if len(keep) > spec.max_tiles:
        order = np.argsort(-shares[keep], kind="stable")[:spec.max_tiles]
        keep = np.sort(keep[order])
    return [boxes[i] for i in keep]


def tile_bag(image, spec) -> tuple[np.ndarray, list[Box]]:
    """(bag (max_tiles, size, size, 3) uint8 padded with zero tiles, the boxes it holds)."""
    import cv2

    source = image if hasattr(image, "thumbnail") else ArrayTiles(image)
    try:
        boxes = tile_layout(source, spec)
        bag = np.zeros((spec.max_tiles, spec.size, spec.size, 3), np.uint8)
        for n, box in enumerate(boxes):
            tile = source.read(box)
            rgb = np.repeat(tile[..., None], 3, axis=2) if tile.ndim == 2 else tile[..., :3]
            bag[n] = cv2.resize(np.ascontiguousarray(rgb), (spec.size, spec.size),
                                interpolation=cv2.INTER_AREA)
        return bag, boxes
    finally:
        if hasattr(source, "close"):
            source.close()


def bag_mask(bags: np.ndarray) -> np.ndarray:
    """(N, T) True where a bag holds a tile, False for its zero padding."""
    flat = bags.reshape(*bags.shape[:2], -1)
    return flat.max(axis=2) > 0


def heatmap(shape: tuple[int, int], boxes: list[Box], scores: np.ndarray,
            side: int = THUMB_SIDE) -> np.ndarray:
    """Tile scores painted on a (≤ ``side`` px) copy of the image: each pixel the mean score of
    the tiles covering it, NaN where no kept tile does."""
    scale = min(1.0, side / max(shape))
    h, w = max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))
    total, count = np.zeros((h, w)), np.zeros((h, w))
    for (top, left, bottom, right), score in zip(boxes, scores, strict=False):
        sl = (slice(int(top * scale), max(int(top * scale) + 1, round(bottom * scale))),
              slice(int(left * scale), max(int(left * scale) + 1, round(right * scale))))
        total[sl] += float(score)
        count[sl] += 1
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _shrink(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    import cv2

    scale = min(1.0, side / max(image.shape[:2]))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA), scale


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)


def _as_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    return arr if arr.dtype == np.uint8 else np.clip(arr, 0, 255).astype(np.uint8)
