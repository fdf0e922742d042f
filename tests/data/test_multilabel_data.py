"""Multi-label data: manifests with a labels column or 0/1 columns, and splits that keep every
label in each part."""

import numpy as np
import pandas as pd
import pytest

from imgcls.config import SplitConfig, TaskConfig
from imgcls.core.errors import DataError
from imgcls.data import assign_splits, load_dataset
from imgcls.data.tasks import from_indicator, indicator


def _manifest(tmp_path, table: pd.DataFrame):
    path = tmp_path / "labels.csv"
    table.to_csv(path, index=False)
    return path


def test_a_labels_column_with_a_separator(tmp_path):
    path = _manifest(tmp_path, pd.DataFrame({"path": ["a.png", "b.png", "c.png"],
                                             "labels": ["outdoor;cat", "", "dog"]}))
    ds = load_dataset(path, TaskConfig(kind="multilabel", separator=";"))
    assert ds.multilabel and ds.classes == ["cat", "dog", "outdoor"]
    assert ds.labels.tolist() == ["cat|outdoor", "", "dog"]  # sorted, joined by |; '' = no label
    assert ds.summary()["classes"] == {"cat": 1, "dog": 1, "outdoor": 1} and ds.summary()["no_label"] == 1


def test_one_zero_one_column_per_label(tmp_path):
    path = _manifest(tmp_path, pd.DataFrame({"path": ["a.png", "b.png"], "sunset": [1, 0],
                                             "landscape": ["true", "false"], "site": ["x", "y"]}))
    ds = load_dataset(path, TaskConfig(kind="multilabel", label_columns=["sunset", "landscape"]))
    assert ds.labels.tolist() == ["landscape|sunset", ""] and ds.metadata_columns == ["site"]
    bad = _manifest(tmp_path, pd.DataFrame({"path": ["a.png"], "sunset": ["maybe"], "x": [1]}))
    with pytest.raises(DataError, match="'sunset'.*0/1"):
        load_dataset(bad, TaskConfig(kind="multilabel", label_columns=["sunset", "x"]))
    with pytest.raises(DataError, match="no column"):
        load_dataset(path, TaskConfig(kind="multilabel", label_columns=["sunrise", "sunset"]))


def test_single_label_data_is_refused_for_what_it_cannot_be(tmp_path, shapes_folder):
    with pytest.raises(DataError, match="is a folder"):
        load_dataset(shapes_folder, TaskConfig(kind="multilabel"))
    one = _manifest(tmp_path, pd.DataFrame({"path": ["a.png", "b.png"], "labels": ["cat", ""]}))
    with pytest.raises(DataError, match="at least 2"):
        load_dataset(one, TaskConfig(kind="multilabel"))


def test_iterative_stratification_puts_every_label_in_each_split():
    ds = load_dataset("shapes_multi", TaskConfig())
    assert ds.multilabel  # the built-in declares it
    out = assign_splits(ds, SplitConfig(test=0.25, val=0.2, seed=0))
    matrix = indicator(out.labels, out.classes)
    share = matrix.mean(axis=0)
    for split in ("train", "val", "test"):
        rows = out.table["split"].to_numpy() == split
        assert (matrix[rows].sum(axis=0) > 0).all()
        assert np.abs(matrix[rows].mean(axis=0) - share).max() < 0.1  # label shares kept


def test_a_label_on_one_image_cannot_be_stratified(tmp_path):
    table = pd.DataFrame({"path": [f"{i}.png" for i in range(20)],
                          "labels": ["a|b"] * 10 + ["a"] * 9 + ["c"]})
    ds = load_dataset(_manifest(tmp_path, table), TaskConfig(kind="multilabel"))
    with pytest.raises(DataError, match="'c' \\(1\\)"):
        assign_splits(ds, SplitConfig(test=0.25))


def test_indicator_round_trip_and_unknown_labels():
    names = ["a", "b", "c"]
    matrix = indicator(["a|c", "", "b"], names)
    assert matrix.tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]
    assert from_indicator(matrix, names).tolist() == ["a|c", "", "b"]
    with pytest.raises(DataError, match="'d'"):
        indicator(["d"], names)
    assert indicator(["a|d"], names, strict=False).tolist() == [[1, 0, 0]]
