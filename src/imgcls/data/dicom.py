"""DICOM files: pixels in the modality's units, windowed to 8 bits, and the header as columns.

Reading a file (:func:`decode_dicom`): the stored values go through the modality LUT or
rescale slope / intercept (Hounsfield units for CT), then a window maps them to 0-255 at full
precision (``model.window``: the file's own VOI LUT or window, ``minmax``, a CT preset,
``CENTRE:WIDTH``, or three of those as R, G, B); MONOCHROME1 (white is zero) is inverted so
dense is bright as in every other file; colour and palette files become RGB. A multi-frame
file gives its middle frame, or the frame a manifest's ``frame`` column names; only that
frame is decoded.

A dataset of DICOM files gains header columns (:func:`header_columns`): Modality,
BodyPartExamined, Manufacturer, ManufacturerModelName, PixelSpacing (mm, the mean of row and
column spacing), SliceThickness and the identifiers PatientID, StudyInstanceUID and
SeriesInstanceUID, pseudonymised unless ``data.identifiers=keep``: the same patient gets the
same pseudonym in every run, so ``split.group_by=PatientID`` keeps a patient's images together
while no report, manifest or log names them.

Example:
    >>> arr, info = decode_dicom("ct/slice-041.dcm", window="lung")   # doctest: +SKIP
    >>> info["format"], info["mode"], arr.dtype                       # doctest: +SKIP
    ('DICOM', 'MONOCHROME2 12-bit', dtype('uint8'))
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd

from ..config.sections import WINDOW_PRESETS
from ..core.errors import ImageDecodeError

DICOM_EXTENSIONS = frozenset({".dcm", ".dicom"})
IDENTIFIER_COLUMNS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID")
HEADER_COLUMNS = ("Modality", "BodyPartExamined", "Manufacturer", "ManufacturerModelName",
                  "PixelSpacing", "SliceThickness", *IDENTIFIER_COLUMNS)
_NO_PIXELS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def is_dicom(path: str | Path, head: bytes = b"") -> bool:
    """Named .dcm / .dicom, or carrying the 'DICM' marker after the 128-byte preamble."""
    return Path(path).suffix.lower() in DICOM_EXTENSIONS or head[128:132] == b"DICM"


def dicom_file(path: str | Path) -> bool:
    """Named .dcm / .dicom, or without an extension and carrying the DICM marker (as scanners
    and PACS exports often write them)."""
    path = Path(path)
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    if path.suffix:
        return False
    try:
        with path.open("rb") as fh:
            return is_dicom(path, fh.read(132))
    except OSError:
        return False


def parse_window(text: str) -> list[str | tuple[float, float]]:
    """``model.window`` as a list of 'file', 'minmax' or (centre, width) per output channel."""
    out: list[str | tuple[float, float]] = []
    for part in str(text).split("+"):
        if part in ("file", "minmax"):
            out.append(part)
        elif part in WINDOW_PRESETS:
            out.append(tuple(float(v) for v in WINDOW_PRESETS[part]))
        else:
            centre, width = part.rsplit(":", 1)
            out.append((float(centre), float(width)))
    return out


def apply_window(values: np.ndarray, centre: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Values in modality units -> [0, 1] by a DICOM VOI window (PS3.3 C.11.2.1.2)."""
    values = values.astype(np.float64, copy=False)
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - centre) / max(width, 1e-6)))
    if function == "LINEAR_EXACT":
        return np.clip((values - centre) / max(width, 1e-6) + 0.5, 0.0, 1.0)
    if width <= 1:
        return (values > centre - 0.5).astype(np.float64)
    return np.clip((values - (centre - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _pydicom():
    """pydicom, with its warnings about malformed files silenced: they become our reasons."""
    import warnings

    import pydicom

    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom\..*")
    return pydicom


def decode_dicom(path: str | Path, data: bytes | None = None, max_pixels: int | None = None,
                 window: str = "file", frame: int | None = None) -> tuple[np.ndarray, dict]:
    """One frame of a DICOM file as uint8 grey (H, W) or RGB (H, W, 3), and its header facts.

    Raises :class:`ImageDecodeError` for a file that is not DICOM, has no pixel data, is too
    large, names a frame it lacks or is compressed with a codec nothing here decodes.
    """
    pydicom = _pydicom()
    from pydicom.errors import InvalidDicomError

    source = (lambda: io.BytesIO(data)) if data is not None else (lambda: str(path))
    try:
        ds = pydicom.dcmread(source(), stop_before_pixels=False, defer_size=4096)
    except InvalidDicomError as exc:
        raise ImageDecodeError(str(path), f"not a readable DICOM file ({exc})", "unreadable") from None
    except Exception as exc:  # noqa: BLE001 - a truncated or garbled header is a reason, not a crash
        raise ImageDecodeError(str(path), f"cannot read DICOM header: {type(exc).__name__}: {exc}",
                               "unreadable") from None
    if not any(tag in ds for tag in _NO_PIXELS) and _is_image_class(ds):
        raise ImageDecodeError(str(path), "truncated DICOM: an image object whose file ends before its "
                               "pixel data", "truncated")
    if not any(tag in ds for tag in _NO_PIXELS):
        kind = str(getattr(ds, "Modality", "") or "no modality")
        raise ImageDecodeError(str(path), f"DICOM file without pixel data ({kind}: a report, "
                               "presentation state or other non-image object)", "no_pixel_data")
    rows, cols, frames = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0), _frames(ds)
    if max_pixels is not None and rows * cols > max_pixels:
        raise ImageDecodeError(str(path), f"decompression bomb guard: {cols}x{rows} = {rows * cols:,} "
                               f"pixels is over the limit of {max_pixels:,}. If you trust the file, "
                               "raise data.max_image_pixels", "too_many_pixels")
    index = frames // 2 if frame is None else int(frame)
    if not 0 <= index < frames:
        raise ImageDecodeError(str(path), f"frame {index} asked for, but the file has {frames} "
                               f"frame(s) (0 to {frames - 1}); fix the manifest's 'frame' column",
                               "unreadable")
    try:
        from pydicom.pixels import pixel_array

        raw = pixel_array(source(), index=index if frames > 1 else None)
    except Exception as exc:  # noqa: BLE001 - missing codec, truncated pixel data, bad descriptors
        hint = "; a compressed transfer syntax may need pylibjpeg or gdcm" if "decompress" in str(exc) else ""
        raise ImageDecodeError(str(path), f"cannot decode DICOM pixel data: {exc}{hint}",
                               "unreadable") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    image = _to_uint8(raw, ds, photometric, window)
    info = {"format": "DICOM", "mode": f"{photometric} {int(ds.get('BitsStored', 8) or 8)}-bit",
            "width": cols, "height": rows, "frames": frames, "orientation": 1,
            "modality": str(ds.get("Modality", "") or "")}
    return image, info


def _is_image_class(ds) -> bool:
    """An image SOP class (CT Image Storage...): without pixel data such a file was cut short."""
    uid = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    return "Image Storage" in str(getattr(uid, "name", "") or "")


def _frames(ds) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _to_uint8(raw: np.ndarray, ds, photometric: str, window: str) -> np.ndarray:
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        return _scale_to_uint8(apply_color_lut(raw, ds), None)
    if raw.ndim == 3 and raw.shape[-1] in (3, 4):  # RGB (YBR is converted by pydicom)
        return _scale_to_uint8(raw[..., :3], int(ds.get("BitsStored", 8) or 8))
    from pydicom.pixels import apply_modality_lut

    values = apply_modality_lut(raw, ds).astype(np.float64)
    channels = [_windowed(values, ds, part) for part in parse_window(window)]
    if photometric == "MONOCHROME1":
        channels = [1.0 - c for c in channels]
    stack = channels[0] if len(channels) == 1 else np.stack(
        channels + [channels[-1]] * (3 - len(channels)), axis=-1)
    return np.clip(stack * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _windowed(values: np.ndarray, ds, part) -> np.ndarray:
    if part == "file":
        if "VOILUTSequence" in ds and "WindowCenter" not in ds:
            from pydicom.pixels import apply_voi

            out = apply_voi(values, ds).astype(np.float64)
            bits = int(ds.VOILUTSequence[0].LUTDescriptor[2] or 16)
            return np.clip(out / (2 ** bits - 1), 0.0, 1.0)
        if "WindowCenter" in ds and "WindowWidth" in ds:
            centre, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
            function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
            return apply_window(values, centre, width, function)
        part = "minmax"
    if part == "minmax":
        low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
        return (values - low) / (high - low) if high > low else np.zeros_like(values)
    centre, width = part
    return apply_window(values, centre, width)


def _first(value) -> float:
    """WindowCenter / WindowWidth may hold several alternatives; the first is the default view."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def _scale_to_uint8(arr: np.ndarray, bits: int | None) -> np.ndarray:
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    top = float(2 ** bits - 1) if bits else float(max(arr.max(initial=0), 255))
    if not bits and top > 255:
        top = 65535.0 if top > 4095 else 4095.0
    return np.clip(arr.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


def pseudonym(value: str, salt: str = "") -> str:
    """The stable stand-in for an identifier: the same value and salt give the same pseudonym."""
    if not value:
        return ""
    return "anon-" + hashlib.sha256(f"{salt}|{value}".encode()).hexdigest()[:12]


def read_header(path: str | Path) -> dict:
    """HEADER_COLUMNS of one file ('' where absent or unreadable); pixel data is not read."""
    pydicom = _pydicom()

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - a broken file is reported by check / skipped by loading
        return {}
    out = {name: str(ds.get(name, "") or "").strip() for name in HEADER_COLUMNS
           if name not in ("PixelSpacing", "SliceThickness")}
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    try:
        out["PixelSpacing"] = round(float(np.mean([float(v) for v in spacing])), 4) if spacing else np.nan
    except (TypeError, ValueError):
        out["PixelSpacing"] = np.nan
    try:
        out["SliceThickness"] = float(ds.SliceThickness) if ds.get("SliceThickness") else np.nan
    except (TypeError, ValueError):
        out["SliceThickness"] = np.nan
    return out


def header_columns(files: list[Path], keep_identifiers: bool = False, salt: str = "") -> pd.DataFrame:
    """HEADER_COLUMNS of each of ``files`` (rows of non-DICOM files are blank), identifiers
    pseudonymised unless ``keep_identifiers``; columns no file fills are dropped."""
    rows = [read_header(f) if dicom_file(f) else {} for f in files]
    table = pd.DataFrame(rows, columns=list(HEADER_COLUMNS))
    for column in IDENTIFIER_COLUMNS:
        table[column] = table[column].fillna("").astype(str)
        if not keep_identifiers:
            table[column] = table[column].map(lambda v: pseudonym(v, salt))
    for column in ("Modality", "BodyPartExamined", "Manufacturer", "ManufacturerModelName"):
        table[column] = table[column].fillna("").astype(str)
    filled = [c for c in HEADER_COLUMNS if table[c].replace("", np.nan).notna().any()]
    return table[filled]
