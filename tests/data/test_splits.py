"""assign_splits: honour given splits, keep groups whole, stratify, reproduce with a seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imgcls.config import SplitConfig
from imgcls.core.errors import DataError
from imgcls.data.dataset import SPLITS, Dataset
from imgcls.data.sources import load_dataset
from imgcls.data.splits import assign_splits


def _dataset(labels, **columns) -> Dataset:
    """A file-less dataset: the split logic only looks at the table."""
    n = len(labels)
    table = pd.DataFrame(
        {"path": [f"img/{i:03d}.png" for i in range(n)], "label": labels, **columns}
    )
    return Dataset("toy", table)


def _unbalanced() -> Dataset:
    return _dataset(["a"] * 40 + ["b"] * 21 + ["c"] * 13 + ["d"] * 8)


def _test_rows(ds: Dataset) -> np.ndarray:
    return np.flatnonzero(ds.table["split"].to_numpy() == "test")


def test_every_row_gets_a_known_split_and_input_is_untouched():
    ds = _unbalanced()
    before = ds.table.copy()
    out = assign_splits(ds, SplitConfig(test=0.25, val=0.2, seed=0))
    assert len(out) == len(ds)
    assert set(out.table["split"]) == set(SPLITS)
    assert out.paths == ds.paths
    assert list(out.labels) == list(ds.labels)
    pd.testing.assert_frame_equal(ds.table, before)  # the input is not changed
    assert "split" not in ds.table


def test_split_sizes():
    ds = _dataset(["a", "b"] * 50)
    counts = assign_splits(ds, SplitConfig(test=0.25, val=0.2, seed=0)).summary()["splits"]
    assert counts["test"] == 25
    assert counts["val"] == 15  # 20% of the 75 that remain
    assert counts["train"] == 60


def test_same_seed_same_split_other_seed_other_split():
    ds = _unbalanced()
    cfg = SplitConfig(test=0.25, val=0.2, seed=7)
    first = assign_splits(ds, cfg).table["split"].tolist()
    second = assign_splits(ds, cfg).table["split"].tolist()
    other = assign_splits(ds, SplitConfig(test=0.25, val=0.2, seed=8)).table["split"].tolist()
    assert first == second
    assert first != other


def test_stratified_test_share_per_class():
    ds = _unbalanced()
    out = assign_splits(ds, SplitConfig(test=0.25, seed=3))
    for label in ds.classes:
        in_class = out.table["label"] == label
        n_test = int((out.table.loc[in_class, "split"] == "test").sum())
        assert abs(n_test - 0.25 * in_class.sum()) <= 1, label


def test_stratified_val_share_per_class():
    ds = _dataset(["a"] * 60 + ["b"] * 20)
    out = assign_splits(ds, SplitConfig(test=0.25, val=0.2, seed=1)).table
    for label, n in (("a", 60), ("b", 20)):
        rest = n - round(0.25 * n)
        n_val = int(((out["label"] == label) & (out["split"] == "val")).sum())
        assert abs(n_val - 0.2 * rest) <= 1, label


def test_zero_test_and_val_means_all_train():
    out = assign_splits(_unbalanced(), SplitConfig(test=0.0, val=0.0))
    assert set(out.table["split"]) == {"train"}


def test_existing_split_column_is_honoured():
    given = ["train", "test", "val", "train"] * 5
    ds = _dataset(["a", "b"] * 10, split=given)
    out = assign_splits(ds, SplitConfig(test=0.5, seed=123))
    assert out.table["split"].tolist() == given


def test_column_none_ignores_existing_split():
    ds = _dataset(["a", "b"] * 10, split=["train"] * 20)
    out = assign_splits(ds, SplitConfig(test=0.5, seed=0, column=None))
    assert (out.table["split"] == "test").sum() == 10


def test_other_split_column_name_is_used():
    fold = ["train", "test"] * 6
    ds = _dataset(["a", "b", "c"] * 4, fold=fold)
    out = assign_splits(ds, SplitConfig(column="fold"))
    assert out.table["split"].tolist() == fold
    assert out.table["fold"].tolist() == fold  # metadata kept


def test_partially_filled_split_column():
    labels = ["a", "b"] * 20
    given = ["test"] * 4 + ["val"] * 4 + [""] * 32
    ds = _dataset(labels, split=given)
    out = assign_splits(ds, SplitConfig(test=0.25, seed=0)).table["split"].tolist()
    assert out[:4] == ["test"] * 4
    assert out[4:8] == ["val"] * 4
    assigned = out[8:]
    assert "" not in assigned
    assert set(assigned) <= set(SPLITS)
    assert assigned.count("test") == 8  # 25% of the 32 empty rows
    assert assigned.count("train") == 24


def test_fully_empty_split_column_is_assigned():
    ds = _dataset(["a", "b"] * 10, split=[""] * 20)
    out = assign_splits(ds, SplitConfig(test=0.25, seed=0))
    assert (out.table["split"] == "test").sum() == 5
    assert "" not in set(out.table["split"])


def _groups_never_straddle(table: pd.DataFrame, column: str) -> None:
    per_group = table.groupby(column)["split"].nunique()
    assert (per_group == 1).all(), per_group[per_group > 1]


def _grouped() -> Dataset:
    rng = np.random.default_rng(0)
    groups = np.repeat([f"g{i:02d}" for i in range(24)], 5)
    labels = rng.choice(["a", "b", "c"], size=len(groups))
    return _dataset(list(labels), patient=list(groups))


@pytest.mark.parametrize("stratify", [True, False])
def test_group_by_keeps_groups_whole_test_only(stratify):
    ds = _grouped()
    out = assign_splits(ds, SplitConfig(test=0.25, group_by="patient", stratify=stratify)).table
    _groups_never_straddle(out, "patient")
    assert set(out["split"]) == {"train", "test"}


@pytest.mark.parametrize("stratify", [True, False])
def test_group_by_keeps_groups_whole_with_val(stratify):
    ds = _grouped()
    cfg = SplitConfig(test=0.25, val=0.25, group_by="patient", stratify=stratify, seed=5)
    out = assign_splits(ds, cfg).table
    _groups_never_straddle(out, "patient")
    assert set(out["split"]) == {"train", "val", "test"}
    again = assign_splits(ds, cfg).table
    assert out["split"].tolist() == again["split"].tolist()


def test_group_by_unknown_column():
    ds = _dataset(["a", "b"] * 5, patient=["p"] * 10)
    with pytest.raises(DataError) as info:
        assign_splits(ds, SplitConfig(group_by="subject"))
    assert "subject" in str(info.value)
    assert "patient" in str(info.value)  # lists what is there


def test_group_by_single_group():
    ds = _dataset(["a", "b"] * 5, patient=["p"] * 10)
    with pytest.raises(DataError, match="single group"):
        assign_splits(ds, SplitConfig(group_by="patient"))


def test_class_with_single_image_cannot_be_stratified():
    ds = _dataset(["a"] * 10 + ["b"] * 10 + ["lonely"])
    with pytest.raises(DataError) as info:
        assign_splits(ds, SplitConfig(test=0.25))
    assert "lonely" in str(info.value)
    assert "split.stratify=false" in str(info.value)

    out = assign_splits(ds, SplitConfig(test=0.25, stratify=False))
    assert (out.table["split"] == "test").sum() == 6  # ceil(0.25 * 21)


def test_too_few_held_out_images_for_the_classes():
    ds = _dataset(["a", "a", "b", "b", "c", "c", "d", "d", "e", "e"])
    with pytest.raises(DataError, match="held-out images"):
        assign_splits(ds, SplitConfig(test=0.2))


def test_digits_matches_sklearn_train_test_split():
    from sklearn.model_selection import train_test_split

    ds = load_dataset("digits")
    out = assign_splits(ds, SplitConfig(test=0.25, seed=0))
    labels = ds.labels
    _, expected = train_test_split(
        np.arange(len(ds)), test_size=0.25, random_state=0, stratify=labels
    )
    np.testing.assert_array_equal(_test_rows(out), np.sort(expected))
    assert out.summary()["splits"] == {"train": 1347, "val": 0, "test": 450}
    assert out.arrays is not None and len(out.arrays) == len(ds)


def test_group_by_respects_groups_of_given_rows():
    n = 40
    ds = _dataset(
        ["a", "b"] * (n // 2),
        patient=[f"p{i // 4}" for i in range(n)],
        split=["test" if i % 4 == 0 else "" for i in range(n)],
    )
    out = assign_splits(ds, SplitConfig(test=0.25, group_by="patient", stratify=False)).table
    _groups_never_straddle(out, "patient")


def test_split_val_carves_validation_out_of_given_train_and_test():
    given = ["train"] * 30 + ["test"] * 10
    ds = _dataset(["a", "b"] * 20, split=given)
    out = assign_splits(ds, SplitConfig(val=0.2, seed=1))
    splits = out.table["split"].to_numpy()
    assert (splits[30:] == "test").all()  # the given test rows stay
    assert (splits == "val").sum() == 6 and set(out.table.loc[splits == "val", "label"]) == {"a", "b"}
    assert (assign_splits(ds, SplitConfig(seed=1)).table["split"].to_numpy() == np.array(given)).all()
    with_val = _dataset(["a", "b"] * 20, split=["train"] * 28 + ["val"] * 2 + ["test"] * 10)
    assert (assign_splits(with_val, SplitConfig(val=0.2)).table["split"] == "val").sum() == 2  # kept as given
