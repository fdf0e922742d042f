"""Writers for small synthetic image files, good and bad, shared by the test suites.

Import them as ``from helpers import ...`` (tests/conftest.py puts tests/ on sys.path).
Every writer returns the path it wrote and creates missing parent folders.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import time
import zlib
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _prepare(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def write_bomb_png(path: str | Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A valid 8-bit grey PNG of ``width`` x ``height`` black pixels, built without Pillow.

    The default 20000 x 20000 (4e8 pixels) is far above Pillow's bomb limit, yet the file
    is only a couple of MB because every row is zeros.
    """
    path = _prepare(path)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    compressor = zlib.compressobj(1)
    row = b"\x00" * (width + 1)  # filter byte 0 + one zero byte per pixel
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    with open(path, "wb") as fh:
        fh.write(PNG_SIGNATURE)
        fh.write(_png_chunk(b"IHDR", ihdr))
        fh.write(_png_chunk(b"IDAT", b"".join(parts)))
        fh.write(_png_chunk(b"IEND", b""))
    return path


def noise_image(height: int = 64, width: int = 64, seed: int = 0) -> np.ndarray:
    """Random RGB uint8 pixels (noise keeps JPEG files large enough to truncate)."""
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def write_truncated_jpeg(path: str | Path, size: int = 64) -> Path:
    """A JPEG whose second half of bytes is cut off."""
    from PIL import Image

    path = _prepare(path)
    Image.fromarray(noise_image(size, size)).save(path, format="JPEG", quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_text_as_png(path: str | Path) -> Path:
    """A plain text file with an image name (e.g. ``x.png``)."""
    path = _prepare(path)
    path.write_text("This is not an image.\nJust some notes someone saved as .png\n")
    return path


def write_empty(path: str | Path) -> Path:
    """A 0-byte file."""
    path = _prepare(path)
    path.write_bytes(b"")
    return path


def write_solid(
    path: str | Path,
    colour: int | tuple[int, ...],
    size: tuple[int, int] = (8, 8),
    mode: str = "RGB",
) -> Path:
    """A ``size`` = (width, height) image of one colour in PIL ``mode``; format from the suffix."""
    from PIL import Image

    path = _prepare(path)
    Image.new(mode, size, colour).save(path)
    return path


def file_hashes(root: str | Path) -> dict[str, str]:
    """sha256 of every file below ``root``, keyed by its relative path."""
    root = Path(root)
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# Learnable synthetic textures for the data-check tests: horizontal stripes vs dots.
SIZE = 64


def stripes(rng) -> np.ndarray:
    period = rng.uniform(5, 12)
    phase = rng.uniform(0, period)
    rows = np.arange(SIZE)[:, None]
    img = 128 + 90 * np.sin(2 * np.pi * (rows + phase) / period) * np.ones((1, SIZE))
    return np.clip(img + rng.normal(0, 12, (SIZE, SIZE)), 0, 255).astype(np.uint8)


def dots(rng) -> np.ndarray:
    img = np.full((SIZE, SIZE), 128.0)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for _ in range(int(rng.integers(6, 10))):
        cy, cx, r = rng.uniform(6, SIZE - 6), rng.uniform(6, SIZE - 6), rng.uniform(3, 6)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.choice([30, 220])
    return np.clip(img + rng.normal(0, 12, (SIZE, SIZE)), 0, 255).astype(np.uint8)


def colourise(grey: np.ndarray, rng) -> np.ndarray:
    tint = rng.uniform(0.8, 1.0, size=3)
    return np.clip(grey[..., None] * tint, 0, 255).astype(np.uint8)


def write_tiff_without_second_frame_size(path: str | Path) -> Path:
    """A two-frame TIFF whose second frame has no width or height: the first frame decodes,
    but counting the frames makes Pillow raise TypeError ("Missing dimensions")."""
    path = _prepare(path)

    def entry(tag: int, kind: int, value: int) -> bytes:  # kind 3 = SHORT, 4 = LONG
        return struct.pack("<HHII", tag, kind, 1, value)

    pixels = bytes(range(16))
    first = [entry(256, 3, 4), entry(257, 3, 4), entry(258, 3, 8), entry(259, 3, 1),
             entry(262, 3, 1), entry(273, 4, 0), entry(278, 3, 4), entry(279, 4, len(pixels))]
    second = [entry(259, 3, 1), entry(262, 3, 1)]
    first_at = 8
    second_at = first_at + 2 + 12 * len(first) + 4
    data_at = second_at + 2 + 12 * len(second) + 4
    first[5] = entry(273, 4, data_at)
    body = (struct.pack("<H", len(first)) + b"".join(first) + struct.pack("<I", second_at)
            + struct.pack("<H", len(second)) + b"".join(second) + struct.pack("<I", 0))
    path.write_bytes(b"II*\x00" + struct.pack("<I", first_at) + body + pixels)
    return path


def wait_ready(client, timeout: float = 20.0) -> None:
    """Until a TestClient's server has loaded its models (they load in the background)."""
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.02)


def write_dicom(path, stored, *, photometric="MONOCHROME2", bits=12, slope=1.0, intercept=0.0,
                window=None, patient="PAT-001", modality="CT", manufacturer="Acme", spacing=0.7,
                body_part="HEAD", pixels=True):
    """A DICOM file of ``stored`` values ((H, W) or (frames, H, W), unsigned ``bits``-bit); with
    ``pixels=False`` a structured report (no pixel data)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import BasicTextSRStorage, CTImageStorage, ExplicitVRLittleEndian, generate_uid

    sop_class = CTImageStorage if pixels else BasicTextSRStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName = patient, "Doe^Jane"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[patient, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[patient, "series"])
    ds.Modality, ds.Manufacturer, ds.BodyPartExamined = modality, manufacturer, body_part
    ds.PixelSpacing = [spacing, spacing]
    stored = np.asarray(stored, dtype=np.uint16)
    frames = stored.shape[0] if stored.ndim == 3 else 1
    ds.Rows, ds.Columns = stored.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if frames > 1:
        ds.NumberOfFrames = frames
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if pixels:
        ds.PixelData = stored.tobytes()
    ds.save_as(_prepare(path), enforce_file_format=True)
    return Path(path)


def square_frames(step: int = 2, frames: int = 12, side: int = 48, start: int = 14,
                  centre: tuple[int, int] = (24, 24)) -> list[np.ndarray]:
    """RGB frames of a bright square whose side grows by ``step`` pixels per frame (shrinks when
    negative), over a dark background: which way it goes is visible only across frames, every
    single frame being a square of some size."""
    out, (cy, cx) = [], centre
    for t in range(frames):
        frame = np.full((side, side, 3), 30, np.uint8)
        half = max(1, int(start + step * (t - frames // 2)) // 2)
        frame[max(0, cy - half):cy + half, max(0, cx - half):cx + half] = (200, 220, 90)
        out.append(frame)
    return out


def write_clip(path: str | Path, step: int = 2, frames: int = 12, side: int = 48, start: int = 14,
               fps: float = 10.0, centre: tuple[int, int] = (24, 24)) -> Path:
    """A small MJPEG AVI of :func:`square_frames`."""
    import cv2

    path = _prepare(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (side, side))
    for frame in square_frames(step, frames, side, start, centre):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_frame_folder(path: str | Path, step: int = 2, frames: int = 12, **options) -> Path:
    """A folder of PNG frames (``f1.png`` .. ``f12.png``: natural order) of :func:`square_frames`."""
    from PIL import Image

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(square_frames(step, frames, **options), 1):
        Image.fromarray(frame).save(path / f"f{t}.png")
    return path


def write_direction_clips(root: str | Path, per_class: int = 10, seed: int = 0) -> Path:
    """Class folders ``grow`` and ``shrink`` of square clips with random centres, sizes and lengths."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for label, step in (("grow", 2), ("shrink", -2)):
        for i in range(per_class):
            write_clip(root / label / f"{label}{i:02d}.avi", step=step, start=int(rng.integers(18, 30)),
                       frames=int(rng.integers(10, 16)),
                       centre=(int(rng.integers(16, 32)), int(rng.integers(16, 32))))
    return root


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]  # a fake camera


@contextlib.contextmanager
def chromium_page(width: int = 1100, height: int = 760):
    """(page, errors): a page in headless Chromium driven by Playwright, and the list its
    uncaught page errors go to."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page, errors
        finally:
            browser.close()


def web_runtime_vendored() -> bool:
    """Whether onnxruntime-web is where the web export looks (`make test` vendors it)."""
    from imgcls.core.errors import ConfigError
    from imgcls.deploy.exporting.web_format import runtime_dir

    try:
        runtime_dir()
    except ConfigError:
        return False
    return True


def train_clip_run(tmp_path_factory, frames: int, per_class: int, *overrides: str) -> Path:
    """A sequence run (32 px) on fresh grow / shrink clips: the fixture the video tests share."""
    import imgcls

    root = write_direction_clips(tmp_path_factory.mktemp("clips") / "clips", per_class=per_class)
    return imgcls.train(str(root), out=tmp_path_factory.mktemp("run") / "run", progress=False,
                        overrides=["model.image_size=32", "cache=false", f"data.frames={frames}",
                                   *overrides]).path
