"""Build a Dataset from a class-per-folder tree, a CSV/Parquet manifest or a built-in name.

Example:
    >>> ds = load_dataset("digits")
    >>> len(ds), ds.classes[:3]
    (1797, ['0', '1', '2'])
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from ..config import DataConfig, TaskConfig
from ..core.errors import DataError
from ..core.log import info
from ..core.registry import did_you_mean
from .builtins import DATASETS
from .dataset import MASK_COLUMN, SPLITS, Dataset, natural_key
from .decode import is_image_name
from .dicom import dicom_file, header_columns
from .tasks import as_multilabel, is_multilabel
from .video import is_video_name

MANIFEST_SUFFIXES = (".csv", ".parquet", ".pq")
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                  "validation": "val", "dev": "val", "test": "test", "testing": "test"}


def load_dataset(source: str | Path | DataConfig, task: TaskConfig | None = None,
                 **options) -> Dataset:
    """Open a folder, a manifest or a built-in dataset by name.

    Args:
        source: Folder path, ``.csv``/``.parquet`` manifest, built-in name, or a DataConfig.
        task: What the labels are; with ``task.kind=multilabel`` a manifest's ``labels`` (or
            ``label``) column is split at ``task.separator``, or ``task.label_columns`` are
            read as one 0/1 column per label (see :mod:`imgcls.data.tasks`).
        **options: DataConfig fields, e.g. ``allow_outside_root=False`` for an untrusted manifest.
    """
    cfg = source if isinstance(source, DataConfig) else DataConfig(source=str(source), **options)
    path = Path(local_path(cfg.source)).expanduser()
    multilabel = task is not None and task.kind == "multilabel"
    if path.is_dir():
        if multilabel:
            raise DataError(f"'{cfg.source}' is a folder; a multi-label task reads a CSV / Parquet "
                            "manifest with a 'labels' column (e.g. cat|outdoor) or task.label_columns.")
        ds = from_folder(path, frame_folders=cfg.frame_folders)
    elif path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        ds = from_manifest(path, allow_outside_root=cfg.allow_outside_root, multilabel=multilabel,
                           label_columns=bool(task and task.label_columns))
    elif path.exists():
        raise DataError(f"'{cfg.source}' is a file but not a manifest; use a .csv or .parquet file.")
    elif cfg.source in DATASETS:
        ds = DATASETS.get(cfg.source).load()
    else:
        hint = did_you_mean(cfg.source, DATASETS.names())
        raise DataError(
            f"'{cfg.source}' is neither an existing folder or manifest nor a built-in dataset.{hint}"
            f" Built-ins: {', '.join(DATASETS.names())}."
        )
    ds.max_image_pixels, ds.decode_timeout = cfg.max_image_pixels, cfg.decode_timeout
    if len(ds) == 0:
        raise DataError(f"'{cfg.source}' holds no images (ignored: {ds.ignored or 'none'}).")
    if ds.arrays is None:
        _add_dicom_header(ds, cfg)
    if task is not None and is_multilabel(task, ds):
        ds = as_multilabel(ds, task)
    return ds


def _add_dicom_header(ds: Dataset, cfg: DataConfig) -> None:
    """DICOM files' header fields as metadata columns (identifiers pseudonymised unless
    ``data.identifiers=keep``); a column the manifest already has is left as given."""
    files = [ds.file_path(i) for i in range(len(ds))]
    if not any(dicom_file(f) for f in files):
        return
    header = header_columns(files, cfg.identifiers == "keep", cfg.pseudonym_salt)
    for column in header.columns:
        if column not in ds.table.columns:
            ds.table[column] = header[column].to_numpy()


def from_folder(root: Path, frame_folders: bool = False) -> Dataset:
    """Each first-level folder is a label; images in nested folders belong to it. With
    ``frame_folders``, each folder below a class folder that holds images is one clip (its images
    the frames, in natural order); images directly in a class folder are then left out."""
    root = Path(root)
    rows: list[tuple[str, str]] = []
    ignored: Counter[str] = Counter()
    leaf_folders = loose_images = 0  # for the hint: a layout that looks like folders of frames
    for class_dir in sorted(root.iterdir(), key=lambda p: natural_key(p.name)):
        if class_dir.name.startswith("."):
            ignored["hidden"] += 1
            continue
        if not class_dir.is_dir():
            ignored["outside_class_folder"] += 1
            continue
        for dirpath, dirnames, filenames in os.walk(class_dir):
            ignored["hidden"] += sum(d.startswith(".") for d in dirnames)
            dirnames[:] = sorted((d for d in dirnames if not d.startswith(".")), key=natural_key)
            images = 0
            for name in sorted(filenames, key=natural_key):
                if name.startswith("."):
                    ignored["hidden"] += 1
                elif not (is_image_name(name) or is_video_name(name)):
                    ignored["not_image"] += 1
                elif frame_folders and is_image_name(name) and not is_video_name(name):
                    images += 1
                else:
                    rows.append(((Path(dirpath) / name).relative_to(root).as_posix(), class_dir.name))
            nested = Path(dirpath) != class_dir
            if frame_folders and images:
                if nested:
                    rows.append((Path(dirpath).relative_to(root).as_posix(), class_dir.name))
                else:
                    ignored["image_outside_frame_folder"] += images
            elif not frame_folders and (nested and len(filenames) >= 4 and not dirnames):
                leaf_folders += 1
            elif not frame_folders and not nested:
                loose_images += sum(is_image_name(n) for n in filenames)
    if leaf_folders and not loose_images:
        info(f"{root}: every image sits in a folder below its class folder; if each such folder is the "
             "frames of one clip, set data.frame_folders=true to read each as one sample.")
    table = pd.DataFrame(rows, columns=["path", "label"])
    return Dataset(root.name, table, root=root, ignored={k: v for k, v in ignored.items() if v})


def read_manifest(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype={"path": str, "label": str}, keep_default_na=False)
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any parser error becomes a clear message
        raise DataError(f"Cannot read manifest '{path}': {exc}") from None


def local_path(text: str) -> str:
    """A path as given, or the path of a ``file://`` URI (``file:///data/a%20b.png``)."""
    if not text.lower().startswith("file:"):
        return text
    parsed = urlparse(text)
    if parsed.netloc not in ("", "localhost"):
        raise DataError(f"'{text}' names a file on host '{parsed.netloc}'; give a local path or a "
                        "file:///absolute/path URI.")
    return unquote(parsed.path)


def path_column(column: pd.Series) -> pd.Series:
    """A manifest's file column as local paths (``~`` and ``file://`` resolved); blank stays ''."""
    blank = ("", "nan", "None")
    return column.fillna("").astype(str).str.strip().map(
        lambda p: "" if p in blank else os.path.expanduser(local_path(p)))


def from_manifest(path: Path, allow_outside_root: bool = True, multilabel: bool = False,
                  label_columns: bool = False) -> Dataset:
    """Rows of ``path``, ``label``, optional ``split`` and ``mask`` (the file of the image's region
    of interest, for ``model.roi=mask``); other columns are kept as metadata.

    Paths are relative to the manifest's folder, absolute, or ``file://`` URIs; with
    ``allow_outside_root=False`` (a manifest from an untrusted source) a path outside the
    manifest's folder is refused. A multi-label manifest may name its column ``labels`` and
    leave it empty for an image with no label; with ``label_columns`` it needs none.
    """
    path = Path(path)
    table = read_manifest(path)
    if multilabel and "label" not in table.columns:
        if "labels" in table.columns:
            table = table.rename(columns={"labels": "label"})
        elif label_columns:
            table["label"] = ""
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise DataError(
            f"Manifest '{path}' lacks column(s) {missing}; found {list(table.columns)}. "
            "It needs 'path' and 'label' (and optionally 'split')"
            + ("; a multi-label one 'labels' (e.g. cat|outdoor) or task.label_columns." if multilabel
               else ".")
        )
    table["path"] = path_column(table["path"])
    table["label"] = table["label"].fillna("").astype(str).str.strip()
    if MASK_COLUMN in table.columns:  # blank: no mask for that row
        table[MASK_COLUMN] = path_column(table[MASK_COLUMN])
    for column in ("path",) if multilabel else ("path", "label"):
        empty = table.index[table[column].isin(["", "nan", "None"])]
        if len(empty):
            raise DataError(f"Manifest '{path}' row {empty[0] + 2}: empty '{column}'.")
    root = path.parent.resolve()
    if not allow_outside_root:
        _refuse_escaping_paths(path, table["path"], root)
        if MASK_COLUMN in table.columns:
            _refuse_escaping_paths(path, table.loc[table[MASK_COLUMN] != "", MASK_COLUMN], root)
    if "split" in table.columns:
        table["split"] = _normalise_splits(path, table["split"])
    return Dataset(path.stem, table, root=root)


def _refuse_escaping_paths(manifest: Path, paths: pd.Series, root: Path) -> None:
    for row, value in paths.items():
        candidate = Path(value)
        full = (candidate if candidate.is_absolute() else root / candidate).resolve()
        if not full.is_relative_to(root):
            raise DataError(
                f"Manifest '{manifest}' row {row + 2}: path '{value}' is outside the manifest's "
                f"folder {root}, and this manifest is read with data.allow_outside_root=false (as "
                "for an untrusted source). Move the manifest up, or allow it (data.allow_outside_root=true)."
            )


def _normalise_splits(manifest: Path, column: pd.Series) -> pd.Series:
    values = column.fillna("").astype(str).str.strip().str.lower()
    unknown = sorted(set(values) - set(_SPLIT_ALIASES) - {""})
    if unknown:
        raise DataError(
            f"Manifest '{manifest}': column 'split' has value(s) {unknown}; "
            f"use {', '.join(SPLITS)} (or leave empty to let imgcls assign)."
        )
    return values.map(lambda v: _SPLIT_ALIASES.get(v, ""))
