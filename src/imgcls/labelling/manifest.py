"""The manifest a labelling session writes, and the partial one it may continue.

Written after every answer, atomically: ``path`` (relative to the manifest's folder),
``label`` (a class, or for label sets the labels joined by '|', '' for none), ``votes``,
``agreed``, and one ``vote_NAME`` column per labeller (see :mod:`.agreement`). A manifest
found at ``--out`` when the store is new is continued: its labels become the votes of
the labeller :data:`IMPORTED`, one answer per image (so an undo takes back one image).

Example:
    >>> check_name("ann")
    'ann'
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..core.errors import ConfigError, DataError
from ..core.io import atomic_write_text
from ..data.dataset import VOTE_SUMMARY

IMPORTED = "imported"  # the labeller of a partial manifest's labels


def check_name(name: str) -> str:
    """A labeller's name: 1-64 letters, digits, '-', '_' or '.'; not the reserved ``imported``."""
    name = str(name).strip()
    if not name or len(name) > 64 or not all(ch.isalnum() or ch in "-_." for ch in name):
        raise ConfigError(f"A labeller's name must be 1-64 letters, digits, '-', '_' or '.'. Got {name!r}.")
    if name == IMPORTED:
        raise ConfigError(f"'{IMPORTED}' is reserved for the labels of a manifest being continued; "
                          "choose another name.")
    return name


def refuse_data_as_out(out: Path, data: str | Path) -> None:
    """Writing the manifest over DATA's own manifest would change the user's file."""
    source = Path(data)
    if source.is_file() and source.resolve() == out.resolve():
        raise ConfigError(f"--out {out} is the manifest of the images (DATA); it is never written. "
                          "Give another --out.")


def write_manifest(table: pd.DataFrame, out: Path, file_of: Callable[[str], Path]) -> pd.DataFrame:
    """Write the resolved ``table`` to ``out`` with paths relative to its folder."""
    folder = out.resolve().parent
    paths = [Path(os.path.relpath(file_of(p).resolve(), folder)).as_posix() for p in table["path"]]
    table = table.assign(path=paths)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, table.to_csv(index=False))
    return table


def imported_answers(out: Path, key_of: Callable[[str], str | None], check: Callable[[str], str],
                     multilabel: bool) -> list[tuple[str, str, str, str]]:
    """The labels of a partial manifest at ``out`` as votes of :data:`IMPORTED`: rows whose
    image is in the session (``key_of`` gives its key, None when not) and whose label
    ``check`` accepts. An empty label is a label set of none only in a manifest this tool
    wrote (with a ``votes`` count); elsewhere it is an image not labelled yet."""
    old = pd.read_csv(out, keep_default_na=False, dtype=str)
    if not {"path", "label"} <= set(old.columns):
        raise DataError(f"'{out}' exists but has no path and label columns; give another --out.")
    counted = VOTE_SUMMARY[0] in old.columns
    rows = []
    for k, (path, label) in enumerate(zip(old["path"], old["label"], strict=True)):
        if not label and not (multilabel and counted and old[VOTE_SUMMARY[0]].iloc[k] not in ("", "0")):
            continue
        key = key_of(str(out.parent / path))
        try:
            answer = check(label)
        except ConfigError:
            continue  # a class this session does not have
        if key is not None:
            rows.append((key, IMPORTED, answer, "label"))
    return rows
