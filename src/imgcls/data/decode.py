"""Decode one image file into a uint8 array that survives what real folders hold.

EXIF orientation is applied; CMYK, palette, 16-bit, RGBA/LA and other modes become
8-bit grey (H, W) or RGB (H, W, 3); animations give their first frame. DICOM files are
rescaled and windowed (:mod:`imgcls.data.dicom`). Anything that
cannot be decoded raises :class:`ImageDecodeError` with a reason a person can act on.

Example:
    >>> arr = decode_image("cat.jpg")        # doctest: +SKIP
    >>> arr.dtype, arr.ndim
    (dtype('uint8'), 3)
"""

from __future__ import annotations

import io
import os
import re
import struct
import threading
from pathlib import Path

import numpy as np

from ..config import DECODE_TIMEOUT, PIL_DEFAULT_MAX_PIXELS
from ..core.errors import ImageDecodeError
from .dicom import DICOM_EXTENSIONS, decode_dicom, is_dicom
from .tiles import TILED, TiffTiles
from .video import CLIP, FrameFolder, VideoClip, clip_from_bytes, is_video_name, looks_like_video

IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .bmp .dib .gif .tif .tiff .webp .ppm .pgm .pbm .pnm .tga .ico .dcm .dicom"
    .split()
)

# Pillow readers imgcls lets a file reach: the raster formats of IMAGE_EXTENSIONS. Pillow
# would otherwise offer every file to all its readers, EPS among them, which runs Ghostscript.
PILLOW_FORMATS = ("JPEG", "PNG", "BMP", "DIB", "GIF", "TIFF", "WEBP", "PPM", "TGA", "ICO")

_GREY_MODES = {"1", "L", "I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def is_image_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def natural_key(text: str) -> list:
    """Sort '2' before '10' and 'img2' before 'img10'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(text))]


def frame_files(folder: str | Path) -> list[Path]:
    """The image files directly inside ``folder`` (hidden ones skipped), in natural order: the
    frames of a folder-of-frames clip."""
    folder = Path(folder)
    try:
        names = [e.name for e in os.scandir(folder) if e.is_file() and not e.name.startswith(".")]
    except OSError:
        return []
    return [folder / n for n in sorted(names, key=natural_key) if is_image_name(n)]


def is_clip_path(path: str | Path) -> bool:
    """A video file (not a GIF, which an image model reads as one image) or a folder (of frames)."""
    name = str(path).lower()
    if is_video_name(name):
        return not name.endswith(".gif")
    return not is_image_name(name) and os.path.isdir(path)  # an image file costs no stat


def decode_image(
    path: str | Path,
    max_pixels: int | None = PIL_DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
    timeout: float | None = DECODE_TIMEOUT,
    window: str = "file",
    frame: int | None = None,
) -> np.ndarray:
    """Read ``path`` into a uint8 array (H, W) for grey images or (H, W, 3) for colour.

    Args:
        path: Image file.
        max_pixels: Decompression-bomb limit (width x height); None disables it.
        draft_size: Let JPEG decode at a reduced scale that still covers this side;
            ``TILED``: a tiled TIFF comes back as a lazy tile source (:mod:`imgcls.data.tiles`).
        timeout: Seconds one file may take to decode; None: no limit.
        window: DICOM files: how values become 8 bits (``model.window``); others ignore it.
        frame: DICOM files: which frame (default the middle one).
    """
    return decode_with_info(path, max_pixels=max_pixels, draft_size=draft_size, timeout=timeout,
                            window=window, frame=frame)[0]


def decode_with_info(
    path: str | Path,
    data: bytes | None = None,
    max_pixels: int | None = PIL_DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
    timeout: float | None = DECODE_TIMEOUT,
    window: str = "file",
    frame: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Like :func:`decode_image`, also returning what the file header says.

    Nothing but :class:`ImageDecodeError` leaves this function, whatever the bytes: every
    exception a decoder raises becomes a reason, and a decode that outlasts ``timeout`` is
    abandoned (it finishes in a daemon thread that never blocks the process).

    Args:
        path: Image file (named in errors; read unless ``data`` is given).
        data: The file's bytes, when the caller has read them already.

    Returns:
        The array and ``{"format", "mode", "width", "height", "frames", "orientation"}``
        (size before EXIF rotation).
    """
    path = Path(path)
    if data is None and path.is_dir():  # a folder of frames is one clip
        if draft_size != CLIP:
            raise ImageDecodeError(str(path), "is a folder (of frames?): a folder of frames is one clip, "
                                   "which a sequence model reads (model.name=sequence)", "unreadable")
        clip = FrameFolder(path, frame_files(path), lambda f: decode_image(f, max_pixels, None, timeout,
                                                                             window))
        return clip, {"format": "FRAMES", "mode": "RGB", "width": clip.width, "height": clip.height,
                      "frames": clip.frame_count, "orientation": 1, "fps": 0.0}
    if data is None:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ImageDecodeError(str(path), f"cannot read file ({exc.strerror})", "unreadable") from None
    else:
        size = len(data)
    if size == 0:
        raise ImageDecodeError(str(path), "empty file (0 bytes)", "empty")
    if draft_size == CLIP:  # a video is read lazily, frame by frame (an upload at once); a still
        if data is None and is_video_name(path):  # image decodes whole
            clip = VideoClip(path)
        elif data is not None and (looks_like_video(data[:16]) or is_video_name(path)
                                   and path.suffix.lower() != ".gif"):
            clip = clip_from_bytes(data, str(path))
        else:
            clip = None
        if clip is not None:
            return clip, {"format": "VIDEO", "mode": "RGB", "width": clip.width, "height": clip.height,
                          "frames": clip.frame_count, "orientation": 1, "fps": clip.fps}
        draft_size = None
    if draft_size == TILED:  # a tiled TIFF is opened for reading tile by tile; others decode whole
        source = TiffTiles.open(path, max_pixels) if data is None and path.suffix.lower() in (
            ".tif", ".tiff") else None
        if source is not None:
            return source, {"format": "TIFF", "mode": "tiled", "width": source.shape[1],
                            "height": source.shape[0], "frames": 1, "orientation": 1}
        draft_size = None

    def decode():
        if _dicom_named_or_marked(path, data):
            try:
                return decode_dicom(path, data, max_pixels, window, frame)
            except ImageDecodeError:
                raise
            except Exception as exc:  # noqa: BLE001 - odd headers raise anything; all are reasons
                raise ImageDecodeError(str(path), f"cannot decode DICOM: {type(exc).__name__}: {exc}",
                                       "unreadable") from None
        return _decode(path, data, max_pixels, draft_size)

    if timeout is None:
        return decode()
    return _with_time_limit(decode, timeout, path)


def _dicom_named_or_marked(path: Path, data: bytes | None) -> bool:
    """DICOM by name, or (for a name that is no image format's) by its 'DICM' marker."""
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return False
    return is_dicom(path, data[:132] if data is not None else _head(path))


def _with_time_limit(decode, timeout: float, path: Path):
    """Run ``decode`` in a daemon thread; past ``timeout`` seconds give up on it."""
    outcome: list = []

    def target() -> None:
        try:
            outcome.append((True, decode()))
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            outcome.append((False, exc))

    worker = threading.Thread(target=target, name=f"imgcls-decode-{path.name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise ImageDecodeError(str(path), f"decoding took longer than {timeout:g} s (data.decode_timeout); "
                               "skipped", "unreadable")
    done, value = outcome[0]
    if done:
        return value
    raise value


def _decode(path: Path, data: bytes | None, max_pixels: int | None, draft_size: int | None):
    from PIL import Image, ImageOps, UnidentifiedImageError

    source = io.BytesIO(data) if data is not None else path
    try:
        with _open_unchecked(source) as img:
            info = {"format": img.format, "mode": img.mode, "width": img.width,
                    "height": img.height, "frames": getattr(img, "n_frames", 1),
                    "orientation": int(img.getexif().get(0x0112, 1) or 1)}
            _check_pixels(img, max_pixels)
            if draft_size and img.format == "JPEG":
                img.draft(img.mode, (draft_size, draft_size))
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return to_uint8_array(img), info
    except (_TooManyPixels, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(
            str(path),
            f"decompression bomb guard: {exc}. If you trust the file, raise data.max_image_pixels; "
            "for a large image whose label lives in a few regions, use data.tiles=SIZE (a tiled TIFF "
            "is then read tile by tile)",
            "too_many_pixels",
        ) from None
    except UnidentifiedImageError:
        head = data[:512] if data is not None else _head(path)
        claimed = sniff_format(head)
        if claimed == "DICOM":
            raise ImageDecodeError(str(path), f"a DICOM file named {path.suffix}: rename it .dcm so it "
                                   "is read as DICOM (rescaled and windowed)", "unreadable") from None
        if claimed:
            raise ImageDecodeError(str(path), f"corrupt {claimed}: the header says {claimed} but "
                                   "Pillow cannot read it", "unreadable") from None
        raise ImageDecodeError(str(path), _not_an_image_reason(head), "not_image") from None
    except ImageDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises OSError, ValueError, TypeError, SyntaxError,
        # NotImplementedError, struct.error, EOFError, MemoryError... on bad bytes: all are reasons
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason:
            raise ImageDecodeError(str(path), f"cannot decode: truncated image ({reason})",
                                   "truncated") from None
        if not isinstance(exc, OSError | SyntaxError | ValueError | EOFError | struct.error):
            reason = f"{type(exc).__name__}: {reason}"
        raise ImageDecodeError(str(path), f"cannot decode: {reason}", "unreadable") from None


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(512)
    except OSError:
        return b""


class _TooManyPixels(Exception):
    pass


_OPEN_LOCK = threading.Lock()


def _open_unchecked(path: Path | io.BytesIO):
    """Open (header only) with Pillow's global bomb check off; imgcls checks the size itself.
    Only the readers in PILLOW_FORMATS are tried, so content decides, not the name.

    Pillow's limit is process-wide state; a lock keeps threads from seeing each other's
    setting, and only the cheap header parse runs under it.
    """
    from PIL import Image

    with _OPEN_LOCK:
        old_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(path, formats=PILLOW_FORMATS)
        finally:
            Image.MAX_IMAGE_PIXELS = old_limit


def _check_pixels(img, max_pixels: int | None) -> None:
    width, height = img.size
    if max_pixels is not None and width * height > max_pixels:
        raise _TooManyPixels(f"{width}x{height} = {width * height:,} pixels is over the limit "
                             f"of {max_pixels:,}")


_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"),
          (b"GIF89a", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def sniff_format(head: bytes) -> str | None:
    """The image format the first bytes claim, whatever the file is named."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[128:132] == b"DICM":
        return "DICOM"
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def _not_an_image_reason(head: bytes) -> str:
    if head and all(b in b"\t\n\r" or 32 <= b < 127 for b in head):
        return "not an image: the content is text"
    return "not an image: unknown or unsupported format"


def to_uint8_array(img) -> np.ndarray:
    """Convert a loaded PIL image of any mode to a uint8 (H, W) or (H, W, 3) array."""
    mode = img.mode
    if mode in _GREY_MODES:
        return _grey_to_uint8(img)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("LA", "La", "PA"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa"):
        return _flatten_alpha(np.asarray(img.convert("RGBA")))
    return np.asarray(img.convert("RGB"))


def _grey_to_uint8(img) -> np.ndarray:
    if img.mode == "1":
        return np.asarray(img.convert("L"))
    if img.mode == "L":
        return np.asarray(img)
    arr = np.asarray(img)
    if img.mode == "F":
        scale = 1.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 1 / 255.0
        return np.clip(np.nan_to_num(arr) * scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
    # 16-bit (and 32-bit integer) grey: map the 16-bit range onto 8 bits.
    arr = arr.astype(np.float64)
    return np.clip(arr / 257.0 + 0.5, 0, 255).astype(np.uint8)


def _flatten_alpha(rgba: np.ndarray) -> np.ndarray:
    """Composite over white, so transparent areas look as they do in a viewer."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return (rgb + 0.5).astype(np.uint8)


def is_grey(arr: np.ndarray) -> bool:
    """True for a 2-D array or a colour array whose three channels are equal."""
    if arr.ndim == 2:
        return True
    return bool(np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]))
