"""Video clips as samples: a video file (MP4, AVI, WebM, MOV, MKV, GIF) or a folder of frame
images (:class:`FrameFolder`) becomes a sequence of ``data.frames`` frames sampled uniformly over
the clip (or over ``start``..``end`` seconds of a video, from a manifest), each resized like any
image, stacked (T, size, size, 3) for the sequence models (:mod:`imgcls.models.sequence`).

Decoding is OpenCV's (``cv2.VideoCapture`` with its bundled FFmpeg): imgcls already needs
OpenCV, its wheels carry the codecs, and frames come out as arrays; PyAV would add a
dependency for exact timestamps and streams we do not use. Frames are read in order
(``grab`` to skip, ``retrieve`` to keep), never by seeking, so clips with sparse keyframes
give the frames asked for. A file OpenCV cannot open or that holds no frame is a bad file with
its reason; a clip shorter than ``frames`` repeats frames to fill the sequence (uniform
indices over fewer frames) and :func:`clip_facts` reports its length, so ``check`` can say so.

Example:
    >>> clip = VideoClip("walk.mp4")                                       # doctest: +SKIP
    >>> clip.frame_count, clip.fps, frames_of(clip, 8).shape               # doctest: +SKIP
    (90, 30.0, (8, 240, 320, 3))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import ImageDecodeError

VIDEO_EXTENSIONS = frozenset(".mp4 .m4v .avi .webm .mov .mkv .mpg .mpeg .gif".split())
CLIP = -2  # the draft_size that asks decode for a lazy clip reader
MAX_FRAMES_READ = 100_000  # a stream claiming more frames is read only this far
MAX_UPLOAD_FRAMES = 900  # frames an uploaded clip may hold (30 s at 30 fps)


def is_video_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


class VideoClip:
    """A video file opened lazily: its length, rate and size, and frames on demand."""

    def __init__(self, path: str | Path) -> None:
        import cv2

        self.path = Path(path)
        if not self.path.is_file():
            raise ImageDecodeError(str(path), "cannot read file (no such file)", "unreadable")
        capture = cv2.VideoCapture(str(self.path))
        try:
            if not capture.isOpened():
                raise ImageDecodeError(str(path), "cannot open as a video (corrupt, truncated or an "
                                       "unsupported codec)", "unreadable")
            self.fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            self.width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
            self.height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            claimed = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        finally:
            capture.release()
        self._claimed = claimed if 0 < claimed <= MAX_FRAMES_READ else 0
        self.window: tuple[float | None, float | None] = (None, None)  # seconds to sample from
        self._count: int | None = None
        self.shape = (self.height, self.width)

    @property
    def frame_count(self) -> int:
        """Frames that really decode (containers' own counts are often off by a few)."""
        if self._count is None:
            self._count = self._scan()
        return self._count

    def _scan(self) -> int:
        import cv2

        capture = cv2.VideoCapture(str(self.path))
        n = 0
        try:
            while n < MAX_FRAMES_READ and capture.grab():
                n += 1
        finally:
            capture.release()
        return n

    def read(self, indices: np.ndarray, transform=None) -> list[np.ndarray]:
        """RGB frames at ``indices`` (sorted, repeats allowed), read in one pass; ``transform``
        is applied to each frame as it is read (a resize keeps a long video's frames small)."""
        import cv2

        wanted = np.asarray(indices, dtype=np.int64)
        out: dict[int, np.ndarray] = {}
        capture = cv2.VideoCapture(str(self.path))
        try:
            last = int(wanted.max()) if len(wanted) else -1
            keep = set(wanted.tolist())
            for i in range(last + 1):
                if not capture.grab():
                    break
                if i in keep:
                    ok, frame = capture.retrieve()
                    if ok and frame is not None:
                        rgb = _rgb(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 else frame)
                        out[i] = transform(rgb) if transform is not None else rgb
        finally:
            capture.release()
        missing = [int(i) for i in wanted if int(i) not in out]
        if missing:
            raise ImageDecodeError(str(self.path), f"frame {missing[0]} does not decode (the clip is "
                                   "truncated or corrupt)", "truncated")
        return [out[int(i)] for i in wanted]

    def thumbnail(self) -> np.ndarray:
        """The middle frame."""
        return self.read(np.array([max(0, self.frame_count // 2)]))[0]


class ArrayClip:
    """A clip already decoded (an upload): the same reading interface as :class:`VideoClip`."""

    def __init__(self, frames: list[np.ndarray], fps: float, name: str = "clip") -> None:
        self.frames, self.fps, self.path = frames, fps, Path(name)
        self.window: tuple[float | None, float | None] = (None, None)
        self.height, self.width = frames[0].shape[:2] if frames else (0, 0)
        self.shape = (self.height, self.width)

    @property
    def frame_count(self) -> int:
        return len(self.frames)

    def read(self, indices: np.ndarray, transform=None) -> list[np.ndarray]:
        return [transform(self.frames[int(i)]) if transform is not None else self.frames[int(i)]
                for i in indices]

    def thumbnail(self) -> np.ndarray:
        return self.frames[len(self.frames) // 2]


class FrameFolder:
    """A folder of frame images as one clip (a time-lapse, an inspection line's shots of one part,
    the slices of a scan): ``files`` in the order given (natural order of their names), each
    decoded by ``read_frame(path)`` when a frame is asked for. A folder has no frame rate
    (``fps`` 0), so a manifest's ``start`` / ``end`` seconds are refused for it."""

    def __init__(self, path: str | Path, files: list[Path], read_frame) -> None:
        self.path, self.files, self._read_frame = Path(path), list(files), read_frame
        if not self.files:
            raise ImageDecodeError(str(path), "the folder holds no image files (a folder of frames keeps "
                                   "its frames directly inside it)", "unreadable")
        self.fps = 0.0
        self.window: tuple[float | None, float | None] = (None, None)
        self._shape: tuple[int, int] | None = None
        self._first: np.ndarray | None = None

    @property
    def frame_count(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> tuple[int, int]:  # the first frame's (height, width)
        if self._shape is None:
            self._first = self.read(np.array([0]))[0]  # kept: sampling usually asks for it again
        return self._shape

    @property
    def height(self) -> int:
        return int(self.shape[0])

    @property
    def width(self) -> int:
        return int(self.shape[1])

    def read(self, indices: np.ndarray, transform=None) -> list[np.ndarray]:
        """The frames at ``indices`` (repeats decoded once); a frame that does not decode makes the
        clip a bad file, naming the frame."""
        out: dict[int, np.ndarray] = {}
        for i in (int(i) for i in indices):
            if i in out:
                continue
            if i == 0 and self._first is not None:
                frame, self._first = self._first, None
                out[i] = transform(frame) if transform is not None else frame
                continue
            try:
                frame = _rgb(np.asarray(self._read_frame(self.files[i])))
            except ImageDecodeError as exc:
                raise ImageDecodeError(str(self.path), f"frame {self.files[i].name}: {exc.reason}",
                                       exc.kind) from None
            if self._shape is None:
                self._shape = frame.shape[:2]
            out[i] = transform(frame) if transform is not None else frame
        return [out[int(i)] for i in indices]

    def thumbnail(self) -> np.ndarray:
        return self.read(np.array([self.frame_count // 2]))[0]


def clip_from_bytes(data: bytes, name: str, max_frames: int = MAX_UPLOAD_FRAMES) -> ArrayClip:
    """An uploaded video's frames (up to ``max_frames``), decoded through a temporary file
    (OpenCV reads files, not buffers), which is removed at once."""
    import os
    import tempfile

    suffix = Path(name).suffix.lower() if is_video_name(name) else ".mp4"
    handle, tmp = tempfile.mkstemp(prefix="imgcls-clip-", suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        clip = VideoClip(tmp)
        total = min(clip.frame_count, max_frames)
        if total == 0:
            raise ImageDecodeError(name, "the video holds no frame that decodes", "unreadable")
        frames = clip.read(np.arange(total))
    except ImageDecodeError as exc:
        raise ImageDecodeError(name, exc.reason, exc.kind) from None
    finally:
        os.unlink(tmp)
    return ArrayClip([_rgb(f) for f in frames], clip.fps, name)


def looks_like_video(head: bytes) -> bool:
    """MP4 / MOV (``ftyp``), AVI (``RIFF....AVI``), WebM / MKV (EBML), MPEG-PS, by content."""
    return (head[4:8] == b"ftyp" or (head[:4] == b"RIFF" and head[8:11] == b"AVI")
            or head[:4] == b"\x1a\x45\xdf\xa3" or head[:4] == b"\x00\x00\x01\xba")


def clip_span(frames: int, stride: int = 0) -> int:
    """The source frames one clip is read from: ``frames``, or ``frames`` at ``stride`` apart."""
    return (frames - 1) * stride + 1 if stride else frames


def sample_indices(total: int, frames: int, start: int = 0, end: int | None = None,
                   stride: int = 0) -> np.ndarray:
    """``frames`` indices spread evenly over [start, end) (the whole clip by default); fewer
    frames than asked repeat some (each index is the centre of its share of the clip). With
    ``stride``, ``frames`` consecutive indices ``stride`` apart from the middle of the span (a
    span too short for them repeats its last frame)."""
    end = total if end is None else min(end, total)
    span = max(0, end - start)
    if span == 0:
        return np.zeros(0, np.int64)
    if stride:
        first = start + max(0, (span - clip_span(frames, stride)) // 2)
        return np.minimum(first + stride * np.arange(frames), end - 1).astype(np.int64)
    centres = start + (np.arange(frames) + 0.5) * span / frames
    return np.clip(np.floor(centres).astype(np.int64), start, end - 1)


def frames_of(clip: VideoClip | ArrayClip | FrameFolder, frames: int, start_s: float | None = None,
              end_s: float | None = None, stride: int = 0) -> np.ndarray:
    """(frames, H, W, 3) uint8 sampled uniformly over the clip or over [start_s, end_s)
    (default: the clip's own ``window``, a manifest's ``start`` / ``end``); with ``stride``,
    consecutive frames that far apart (:func:`sample_indices`)."""
    if start_s is None and end_s is None:
        start_s, end_s = clip.window
    total = clip.frame_count
    if total == 0:
        raise ImageDecodeError(str(clip.path), "the video holds no frame that decodes", "unreadable")
    if not clip.fps and (start_s or end_s):
        raise ImageDecodeError(str(clip.path), "start / end seconds need a video file; a folder of frames "
                               "has no frame rate (list the frames wanted in their own folder)", "unreadable")
    rate = clip.fps or 25.0
    start = int(round(start_s * rate)) if start_s else 0
    end = int(round(end_s * rate)) if end_s else None
    indices = sample_indices(total, frames, start, end, stride)
    if not len(indices):
        raise ImageDecodeError(str(clip.path), f"nothing between {start_s} s and {end_s} s (the clip "
                               f"lasts {total / rate:.2f} s)", "unreadable")
    return np.stack([_rgb(f) for f in clip.read(indices)])


def clip_facts(clip: VideoClip | ArrayClip | FrameFolder) -> dict:
    """What ``check`` reports of a clip: frames, rate, duration, size."""
    total = clip.frame_count
    return {"frames": total, "fps": round(clip.fps, 3), "duration_s": round(total / clip.fps, 3) if clip.fps
            else None, "width": clip.width, "height": clip.height}


def _rgb(frame: np.ndarray) -> np.ndarray:
    return np.repeat(frame[..., None], 3, axis=2) if frame.ndim == 2 else frame[..., :3]
