"""The Dataset record every stage passes around: a table of rows plus a way to read each image."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import DECODE_TIMEOUT, PIL_DEFAULT_MAX_PIXELS
from ..core.errors import ImageDecodeError
from .decode import decode_image, frame_files, natural_key

SPLITS = ("train", "val", "test")
MASK_COLUMN = "mask"  # a manifest's per-sample region of interest: a binary or label image, 0 outside
FRAME_COLUMN = "frame"  # a manifest's frame of a multi-frame DICOM file (0-based); blank: the middle one
START_COLUMN, END_COLUMN = "start", "end"  # a manifest's seconds of a video clip; blank: its whole length
RESERVED_COLUMNS = ("path", "label", "split", MASK_COLUMN, FRAME_COLUMN, START_COLUMN, END_COLUMN)
VOTE_PREFIX = "vote_"  # a labelled manifest's per-labeller answers (imgcls label), one column each
VOTE_SUMMARY = ("votes", "agreed")  # ... and how many gave a class, and whether they all agreed
SEPARATOR = "|"  # how a multi-label dataset joins an image's labels in its ``label`` column


def split_labels(value: str) -> tuple[str, ...]:
    """The labels of one multi-label ``label`` value ('' is an image with none)."""
    return tuple(v for v in str(value).split(SEPARATOR) if v)


def join_labels(names) -> str:
    """The canonical ``label`` value of a set of labels: sorted, joined by '|'."""
    return SEPARATOR.join(sorted({str(n) for n in names}, key=natural_key))


def _file_key(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path}|missing"
    if path.is_dir():  # a folder of frames: every frame's size and time (an edit in place counts)
        return f"{path.resolve()}|" + ";".join(_file_key(f).split("|", 1)[1] for f in frame_files(path))
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


@dataclass
class Dataset:
    """Labelled images: ``table`` has ``path``, ``label``, maybe ``split``, then metadata columns.

    Images live either in files (``path`` relative to ``root`` or absolute) or in
    memory (``arrays``, aligned with the table's rows) for built-in datasets.

    Example:
        >>> ds = Dataset("toy", pd.DataFrame({"path": ["a/1.png"], "label": ["a"]}), root=Path("."))
        >>> ds.classes
        ['a']
    """

    name: str
    table: pd.DataFrame
    root: Path | None = None
    arrays: list[np.ndarray] | None = None
    ignored: dict[str, int] = field(default_factory=dict)
    description: str = ""
    max_image_pixels: int | None = PIL_DEFAULT_MAX_PIXELS
    decode_timeout: float | None = DECODE_TIMEOUT
    order: tuple[str, ...] | None = None  # labels that are ordered grades, lowest first
    multilabel: bool = False  # each ``label`` is a set of labels joined by "|" (data/tasks.py)

    def __post_init__(self) -> None:
        self.table = self.table.reset_index(drop=True)
        self.table["label"] = self.table["label"].astype(str)
        self.table["path"] = self.table["path"].astype(str)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def labels(self) -> np.ndarray:
        return self.table["label"].to_numpy(dtype=object)

    @property
    def paths(self) -> list[str]:
        return self.table["path"].tolist()

    @property
    def classes(self) -> list[str]:
        """The classes; for a multi-label dataset, every label that occurs."""
        if self.multilabel:
            return sorted({n for value in self.table["label"] for n in split_labels(value)}, key=natural_key)
        return sorted(self.table["label"].unique(), key=natural_key)

    @property
    def metadata_columns(self) -> list[str]:
        return [c for c in self.table.columns if c not in RESERVED_COLUMNS]

    def file_path(self, i: int) -> Path:
        path = Path(self.table.at[i, "path"])
        return path if path.is_absolute() or self.root is None else self.root / path

    def read(self, i: int, draft_size: int | None = None, window: str = "file") -> np.ndarray:
        """Decode image ``i`` (a DICOM file through ``window``, see :mod:`imgcls.data.dicom`);
        raises ImageDecodeError for files that cannot be read."""
        if self.arrays is not None:
            return self.arrays[i]
        image = decode_image(self.file_path(i), self.max_image_pixels, draft_size, self.decode_timeout,
                             window, self.frame(i))
        if hasattr(image, "window"):  # a video clip: the manifest's start / end seconds, if any
            image.window = (self._seconds(i, START_COLUMN), self._seconds(i, END_COLUMN))
        return image

    def _seconds(self, i: int, column: str) -> float | None:
        if column not in self.table.columns:
            return None
        value = str(self.table.at[i, column]).strip()
        if value in ("", "nan", "None"):
            return None
        try:
            return float(value)
        except ValueError:
            raise ImageDecodeError(str(self.file_path(i)), f"{column} {value!r} is not a number of seconds",
                                   "unreadable") from None

    def frame(self, i: int) -> int | None:
        """The frame of a multi-frame file row ``i`` names (its ``frame`` column), or None."""
        if FRAME_COLUMN not in self.table.columns:
            return None
        value = str(self.table.at[i, FRAME_COLUMN]).strip()
        if value in ("", "nan", "None"):
            return None
        try:
            return int(float(value))
        except ValueError:
            raise ImageDecodeError(str(self.file_path(i)), f"frame {value!r} is not a frame number; "
                                   "the manifest's 'frame' column takes 0, 1, 2 ...", "unreadable") from None

    @property
    def has_masks(self) -> bool:
        return MASK_COLUMN in self.table.columns

    def mask_path(self, i: int) -> Path | None:
        """The file of image ``i``'s mask (relative to ``root`` like ``path``), or None."""
        if not self.has_masks:
            return None
        value = str(self.table.at[i, MASK_COLUMN]).strip()
        if value in ("", "nan", "None"):
            return None
        path = Path(value)
        return path if path.is_absolute() or self.root is None else self.root / path

    def read_sample(self, i: int, draft_size: int | None = None, window: str = "file"
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Image ``i`` and its mask (None without one); a mask that cannot be read is an
        ImageDecodeError naming the mask's file."""
        mask_file = self.mask_path(i)
        image = self.read(i, None if mask_file is not None else draft_size, window)
        if mask_file is None:
            return image, None
        try:
            return image, decode_image(mask_file, self.max_image_pixels, None, self.decode_timeout)
        except ImageDecodeError as exc:
            raise ImageDecodeError(str(mask_file), f"its mask {exc.reason}", "bad_mask") from None

    def fingerprint(self, i: int) -> str:
        """Changes when the image's content may have changed (size and mtime for files)."""
        if self.arrays is not None:
            arr = np.ascontiguousarray(self.arrays[i])
            return hashlib.sha1(arr.tobytes() + str(arr.shape).encode()).hexdigest()
        keys = [_file_key(p) for p in (self.file_path(i), self.mask_path(i)) if p is not None]
        parts = [f"{c}={self.table.at[i, c]}" for c in (FRAME_COLUMN, START_COLUMN, END_COLUMN)
                 if c in self.table]
        return "|".join(keys + parts)

    def content_key(self) -> str:
        digest = hashlib.sha256()
        for i in range(len(self)):
            digest.update(self.fingerprint(i).encode())
        return digest.hexdigest()

    def subset(self, rows: np.ndarray | list[int]) -> Dataset:
        rows = np.asarray(rows, dtype=int)
        arrays = [self.arrays[i] for i in rows] if self.arrays is not None else None
        return Dataset(
            self.name,
            self.table.iloc[rows].copy(),
            self.root,
            arrays,
            dict(self.ignored),
            self.description,
            self.max_image_pixels,
            self.decode_timeout,
            self.order,
            self.multilabel,
        )

    def summary(self) -> dict:
        if self.multilabel:  # images carrying each label
            counts = pd.Series([n for v in self.table["label"] for n in split_labels(v)]).value_counts()
        else:
            counts = self.table["label"].value_counts()
        out = {
            "name": self.name,
            "images": len(self),
            "classes": {c: int(counts.get(c, 0)) for c in self.classes},
            "metadata_columns": self.metadata_columns,
            **({"order": list(self.order)} if self.order else {}),
            **({"multilabel": True, "no_label": int((self.table["label"] == "").sum())}
               if self.multilabel else {}),
            "ignored": dict(self.ignored),
        }
        if "split" in self.table:
            out["splits"] = {s: int((self.table["split"] == s).sum()) for s in SPLITS}
        return out
