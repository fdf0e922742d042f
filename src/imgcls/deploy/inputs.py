"""What prediction reads: files, folders, globs, one manifest or one built-in dataset name.

Example:
    >>> ds = as_dataset(["photos/"])            # doctest: +SKIP
    >>> ds.paths[:2]                            # doctest: +SKIP
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..core.errors import DataError
from ..data import Dataset
from ..data.builtins import DATASETS
from ..data.dataset import END_COLUMN, FRAME_COLUMN, MASK_COLUMN, START_COLUMN
from ..data.decode import is_image_name
from ..data.sources import MANIFEST_SUFFIXES, local_path, path_column, read_manifest
from ..data.video import is_video_name

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(item: str | Path) -> bool:
    """A scheme://location (``file://`` included), which the Ray engine reads with pyarrow."""
    return bool(_URI.match(str(item)))


def is_remote(item: str | Path) -> bool:
    """An object-store location (``s3://``, ``gs://``...): not a file of this machine."""
    return is_uri(item) and not str(item).lower().startswith("file:")


def expand_inputs(inputs: Sequence[str | Path], frame_folders: bool = False) -> list[str]:
    """Files as given, folders walked for image files (hidden ones skipped), globs expanded;
    ``file://`` URIs are local paths. With ``frame_folders`` (a sequence model's input) each
    folder that directly holds images is one clip, its images the frames."""
    paths: list[str] = []
    for item in (os.path.expanduser(local_path(str(i))) for i in inputs):
        if os.path.isdir(item):
            for dirpath, dirnames, filenames in os.walk(item):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                files = [f for f in sorted(filenames) if not f.startswith(".")]
                if frame_folders and any(is_image_name(f) and not is_video_name(f) for f in files):
                    paths.append(dirpath)
                    files = [f for f in files if is_video_name(f)]
                paths += [os.path.join(dirpath, f) for f in files if is_image_name(f) or is_video_name(f)]
        elif os.path.exists(item):
            paths.append(item)
        elif glob.has_magic(item):
            paths += sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
        else:
            raise DataError(f"'{item}' does not exist (give files, folders, globs or a built-in "
                            "dataset name).")
    return paths


def as_dataset(inputs: Sequence[str | Path], frame_folders: bool = False) -> Dataset:
    """One built-in dataset name, one CSV/Parquet manifest, or files, folders and globs (with
    ``frame_folders``, folders of images are clips: :func:`expand_inputs`)."""
    names = [os.path.expanduser(local_path(str(i))) for i in inputs]
    if len(names) == 1 and not os.path.exists(names[0]) and names[0] in DATASETS:
        return DATASETS.get(names[0]).load()
    if len(names) == 1 and os.path.isfile(names[0]) and names[0].lower().endswith(MANIFEST_SUFFIXES):
        return _manifest(Path(names[0]))
    paths = expand_inputs(names, frame_folders)
    if not paths:
        raise DataError(f"No image files found in {names}.")
    return Dataset("inputs", pd.DataFrame({"path": paths, "label": ""}))


def _manifest(path: Path) -> Dataset:
    """A CSV/Parquet manifest's ``path`` column (relative to its folder) and its ``mask`` column
    when it has one (for ``model.roi=mask``), and its ``frame`` column (of multi-frame DICOM
    files); labels are not needed."""
    table = read_manifest(path)
    if "path" not in table.columns:
        raise DataError(f"Manifest '{path}' lacks a 'path' column; found {list(table.columns)}.")
    out = pd.DataFrame({"path": path_column(table["path"]), "label": ""})
    if MASK_COLUMN in table.columns:
        out[MASK_COLUMN] = path_column(table[MASK_COLUMN])
    for column in (FRAME_COLUMN, START_COLUMN, END_COLUMN):  # a DICOM file's frame, a video's seconds
        if column in table.columns:
            out[column] = table[column].to_numpy()
    return Dataset(path.stem, out, root=path.parent.resolve())
