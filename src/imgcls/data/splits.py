"""Assign every row to train / val / test: honour a split column, keep groups whole, stratify.

Example:
    >>> from imgcls.data import load_dataset
    >>> ds = assign_splits(load_dataset("digits"), SplitConfig(test=0.25, seed=0))
    >>> ds.table["split"].value_counts().to_dict()
    {'train': 1347, 'test': 450}
"""

from __future__ import annotations

import numpy as np

from ..config import SplitConfig
from ..core.errors import DataError
from .dataset import Dataset
from .tasks import indicator, label_names


def assign_splits(ds: Dataset, cfg: SplitConfig) -> Dataset:
    """Return ``ds`` with a filled ``split`` column (a copy; the input is not changed). Rows with
    a given split keep it; when the given splits hold no validation rows and ``cfg.val`` > 0,
    that fraction of train becomes the validation split."""
    table = ds.table.copy()
    if cfg.group_by and cfg.group_by not in table.columns:
        raise DataError(
            f"split.group_by='{cfg.group_by}' is not a column of '{ds.name}'; "
            f"metadata columns: {ds.metadata_columns or 'none'}."
        )
    given = table[cfg.column].astype(str) if cfg.column and cfg.column in table else None
    todo = np.flatnonzero(given.isin(["", "nan"]).to_numpy()) if given is not None else None
    if given is None or len(todo) == len(table):
        todo = np.arange(len(table))
        table["split"] = ""
    elif cfg.column != "split":
        table["split"] = given
    if cfg.group_by and len(todo) < len(table):
        todo = _follow_given_groups(table, todo, cfg.group_by, ds.name)
    if len(todo):
        table.loc[todo, "split"] = _random_split(table.iloc[todo], cfg, ds.name, ds.multilabel)
    result = ds.subset(np.arange(len(ds)))
    result.table = table
    if cfg.val > 0 and not (table["split"] == "val").any() and (table["split"] == "train").any():
        result = carve_validation(result, cfg)  # given train/test splits: split.val of train, as asked
    return result


def carve_validation(ds: Dataset, cfg: SplitConfig) -> Dataset:
    """Move ``cfg.val`` of the train rows to a new ``val`` split (stratified, groups kept
    whole), for data whose given splits hold no validation rows; returns a copy."""
    table = ds.table.copy()
    train = np.flatnonzero(table["split"].to_numpy() == "train")
    groups = table[cfg.group_by].astype(str).to_numpy()[train] if cfg.group_by else None
    _, val = _cut(train, table["label"].to_numpy()[train], groups, cfg.val, cfg, ds.name, "val",
                  ds.multilabel)
    table.iloc[val, table.columns.get_loc("split")] = "val"
    result = ds.subset(np.arange(len(ds)))
    result.table = table
    return result


def merge_validation(ds: Dataset) -> Dataset:
    """The validation rows back in train (a copy): to refit a selected model on all the images
    that were not test."""
    table = ds.table.copy()
    table.loc[table["split"] == "val", "split"] = "train"
    result = ds.subset(np.arange(len(ds)))
    result.table = table
    return result


def _follow_given_groups(table, todo: np.ndarray, group_by: str, name: str) -> np.ndarray:
    """Rows of a group that already has a given split join it; returns the rows still to split."""
    groups = table[group_by].astype(str).to_numpy()
    given = np.ones(len(table), dtype=bool)
    given[todo] = False
    known: dict[str, str] = {}
    for group, split in zip(groups[given], table["split"].to_numpy()[given], strict=True):
        if known.setdefault(group, split) != split:
            raise DataError(f"'{name}': group '{group}' of split.group_by='{group_by}' is given "
                            f"in two splits ({known[group]} and {split}); fix the split column.")
    follow = np.array([groups[i] in known for i in todo], dtype=bool)
    for i in todo[follow]:
        table.iat[i, table.columns.get_loc("split")] = known[groups[i]]
    return todo[~follow]


def _random_split(table, cfg: SplitConfig, name: str, multilabel: bool = False) -> np.ndarray:
    labels = table["label"].to_numpy()
    groups = table[cfg.group_by].astype(str).to_numpy() if cfg.group_by else None
    split = np.full(len(table), "train", dtype=object)
    idx = np.arange(len(table))
    rest = idx
    if cfg.test > 0:
        rest, test = _cut(idx, labels, groups, cfg.test, cfg, name, "test", multilabel)
        split[test] = "test"
    if cfg.val > 0:
        sub_groups = groups[rest] if groups is not None else None
        keep, val = _cut(rest, labels[rest], sub_groups, cfg.val, cfg, name, "val", multilabel)
        split[keep] = "train"
        split[val] = "val"
    return split


def _cut(idx, labels, groups, fraction, cfg, name, which, multilabel: bool = False):
    """Split ``idx`` into (rest, held_out) with ``fraction`` of rows held out; multi-label rows
    by iterative stratification (Sechidis et al., 2011), so every label is in each part."""
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

    sub_labels = labels
    if multilabel and groups is None and cfg.stratify:
        return _cut_multilabel(idx, labels, fraction, cfg, name, which)
    if multilabel:  # groups: kept whole, not stratified (no multi-label group stratifier)
        sub_labels = np.zeros(len(labels), dtype=int)
    if groups is not None:
        n_groups = len(set(groups))
        if n_groups < 2:
            raise DataError(f"split.group_by: '{name}' has a single group; nothing to hold out.")
        if cfg.stratify:
            n_splits = max(2, min(round(1 / fraction), n_groups))
            folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=cfg.seed)
            rest, held = next(folds.split(idx, sub_labels, groups))
        else:
            gss = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=cfg.seed)
            rest, held = next(gss.split(idx, sub_labels, groups))
        return idx[rest], idx[held]
    stratify = sub_labels if cfg.stratify else None
    if cfg.stratify:
        _check_stratifiable(sub_labels, fraction, name, which)
    try:
        rest, held = train_test_split(idx, test_size=fraction, random_state=cfg.seed,
                                      stratify=stratify)
    except ValueError as exc:
        raise DataError(f"Cannot make the {which} split of '{name}': {exc}") from None
    return rest, held


def _cut_multilabel(idx, labels, fraction, cfg, name, which):
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    names = label_names(labels)
    matrix = indicator(labels, names)
    rare = [f"'{n}' ({int(c)})" for n, c in zip(names, matrix.sum(axis=0), strict=True) if c < 2]
    if rare:
        raise DataError(f"Cannot stratify the {which} split of '{name}': label {', '.join(rare)} is on "
                        "fewer than 2 images. Add images, drop the label, or give a 'split' column.")
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=cfg.seed)
    rest, held = next(splitter.split(np.zeros((len(idx), 1)), matrix))
    return idx[rest], idx[held]


def _check_stratifiable(labels, fraction, name, which) -> None:
    values, counts = np.unique(labels, return_counts=True)
    small = [f"'{v}' ({c})" for v, c in zip(values, counts, strict=True) if c < 2]
    if small:
        raise DataError(
            f"Cannot stratify the {which} split of '{name}': class {', '.join(small)} "
            "has fewer than 2 images. Add images, set split.stratify=false, "
            "or give a 'split' column in a manifest."
        )
    n_held = int(np.ceil(fraction * len(labels)))
    if n_held < len(values):
        raise DataError(
            f"Cannot stratify the {which} split of '{name}': {n_held} held-out images for "
            f"{len(values)} classes. Raise split.{which} or add images."
        )
