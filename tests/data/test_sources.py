"""Datasets from class folders, CSV/Parquet manifests and built-in names."""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import pytest

from helpers import write_solid
from imgcls.config import DataConfig
from imgcls.core.errors import DataError
from imgcls.data.builtins import SHAPE_CLASSES, make_shapes, write_image_folder
from imgcls.data.dataset import Dataset
from imgcls.data.sources import from_folder, load_dataset

# ---------------------------------------------------------------- folders


@pytest.fixture
def tree(tmp_path):
    """A messy class-per-folder tree; returns its root."""
    root = tmp_path / "pets"
    write_solid(root / "cat" / "c1.png", (255, 0, 0))
    write_solid(root / "cat" / "sub" / "deeper" / "c2.jpg", (250, 5, 5))
    write_solid(root / "cat" / ".hidden.png", (0, 0, 0))  # hidden file
    write_solid(root / "cat" / ".thumbs" / "t.png", (0, 0, 0))  # inside a hidden dir
    (root / "cat" / "notes.txt").write_text("not an image")
    write_solid(root / "dog" / "d1.png", (0, 0, 255))
    write_solid(root / "dog" / "d2.PNG", (0, 0, 250))
    (root / "dog" / "labels.csv").write_text("a,b\n")
    write_solid(root / ".git" / "x.png", (0, 0, 0))  # hidden first-level dir
    write_solid(root / "stray.png", (0, 0, 0))  # outside any class folder
    (root / "README.md").write_text("hello")
    return root


def test_folder_labels_are_first_level_dirs(tree):
    ds = load_dataset(tree)
    assert ds.name == "pets"
    assert ds.classes == ["cat", "dog"]
    rows = dict(zip(ds.paths, ds.labels, strict=True))
    assert rows == {
        "cat/c1.png": "cat",
        "cat/sub/deeper/c2.jpg": "cat",
        "dog/d1.png": "dog",
        "dog/d2.PNG": "dog",
    }
    for i in range(len(ds)):
        assert ds.file_path(i).is_file()
    assert ds.metadata_columns == []
    assert "split" not in ds.table


def test_folder_counts_ignored_files(tree):
    ds = from_folder(tree)
    # .git dir, cat/.hidden.png, cat/.thumbs dir (its content is not walked)
    assert ds.ignored["hidden"] == 3
    assert ds.ignored["not_image"] == 2  # notes.txt, labels.csv
    assert ds.ignored["outside_class_folder"] == 2  # stray.png, README.md
    assert set(ds.ignored) == {"hidden", "not_image", "outside_class_folder"}
    assert ds.summary()["ignored"] == ds.ignored


def test_clean_folder_has_no_ignored_entries(tmp_path):
    write_solid(tmp_path / "a" / "1.png", 0, mode="L")
    write_solid(tmp_path / "b" / "1.png", 0, mode="L")
    assert from_folder(tmp_path).ignored == {}


def test_folder_classes_and_files_sort_naturally(tmp_path):
    for label in ("10", "2", "1"):
        for name in ("img10.png", "img2.png"):
            write_solid(tmp_path / label / name, 0, mode="L")
    ds = load_dataset(tmp_path)
    assert ds.classes == ["1", "2", "10"]
    assert ds.paths[:2] == ["1/img2.png", "1/img10.png"]
    assert list(dict.fromkeys(ds.labels)) == ["1", "2", "10"]


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="holds no images"):
        load_dataset(tmp_path)


def test_non_manifest_file_is_an_error(tmp_path):
    path = write_solid(tmp_path / "one.png", 0, mode="L")
    with pytest.raises(DataError, match="not a manifest"):
        load_dataset(path)


def test_load_dataset_passes_max_image_pixels(tree):
    assert load_dataset(tree).max_image_pixels == DataConfig().max_image_pixels
    assert load_dataset(tree, max_image_pixels=123).max_image_pixels == 123
    assert (
        load_dataset(DataConfig(source=str(tree), max_image_pixels=None)).max_image_pixels is None
    )


def test_write_image_folder_round_trips(tmp_path):
    shapes = make_shapes(n_per_class=2, size=16, seed=3)
    root = write_image_folder(shapes, tmp_path / "shapes")
    ds = load_dataset(root)
    assert len(ds) == 6
    assert ds.classes == sorted(SHAPE_CLASSES)
    by_name = {os.path.basename(p): lab for p, lab in zip(ds.paths, ds.labels, strict=True)}
    for i, (label, name) in enumerate(zip(shapes.labels, shapes.paths, strict=True)):
        assert by_name[f"{os.path.basename(name)}.png"] == label
        j = ds.paths.index(f"{label}/{os.path.basename(name)}.png")
        np.testing.assert_array_equal(ds.read(j), shapes.read(i))


# ---------------------------------------------------------------- manifests


@pytest.fixture
def manifest_dir(tmp_path):
    root = tmp_path / "project"
    for name in ("a1", "a2", "b1", "b2"):
        write_solid(root / "img" / f"{name}.png", (len(name), 0, 0))
    return root


def _manifest_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "path": ["img/a1.png", "img/a2.png", "img/b1.png", "img/b2.png"],
            "label": ["a", "a", "b", "b"],
            "split": ["train", "test", "train", "val"],
            "patient": ["p1", "p2", "p1", "p3"],
            "age": [30, 41, 30, 52],
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_manifest_keeps_columns_and_resolves_paths(manifest_dir, suffix):
    path = manifest_dir / f"labels{suffix}"
    table = _manifest_table()
    table.to_csv(path, index=False) if suffix == ".csv" else table.to_parquet(path)
    ds = load_dataset(path)
    assert ds.name == "labels"
    assert ds.paths == table["path"].tolist()
    assert list(ds.labels) == ["a", "a", "b", "b"]
    assert ds.table["split"].tolist() == ["train", "test", "train", "val"]
    assert ds.metadata_columns == ["patient", "age"]
    assert ds.table["patient"].tolist() == ["p1", "p2", "p1", "p3"]
    assert ds.table["age"].astype(int).tolist() == [30, 41, 30, 52]
    assert ds.root == manifest_dir.resolve()
    for i in range(len(ds)):
        assert ds.file_path(i).is_file()
    assert ds.read(0).shape == (8, 8, 3)
    assert ds.summary()["splits"] == {"train": 2, "val": 1, "test": 1}


def test_manifest_paths_resolve_against_manifest_folder_not_cwd(
    manifest_dir, tmp_path, monkeypatch
):
    path = manifest_dir / "labels.csv"
    _manifest_table().to_csv(path, index=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    ds = load_dataset(path)
    assert all(ds.file_path(i).is_file() for i in range(len(ds)))


def test_manifest_absolute_path_inside_root_is_accepted(manifest_dir):
    path = manifest_dir / "labels.csv"
    absolute = str((manifest_dir / "img" / "a1.png").resolve())
    pd.DataFrame({"path": [absolute], "label": ["a"]}).to_csv(path, index=False)
    ds = load_dataset(path)
    assert ds.file_path(0).is_file()


def test_manifest_paths_outside_its_folder_are_read_unless_refused(manifest_dir, tmp_path):
    """A user's manifest may point anywhere (absolute paths, ..); a manifest from an untrusted
    source is read with allow_outside_root=False, which refuses the first escaping row."""
    write_solid(tmp_path / "outside.png", (9, 9, 9))
    sub = manifest_dir / "sub"
    sub.mkdir()
    path = sub / "labels.csv"
    pd.DataFrame({"path": ["../img/a1.png", "../../outside.png"], "label": ["a", "b"]}).to_csv(
        path, index=False
    )
    ds = load_dataset(path)
    assert len(ds) == 2
    assert ds.file_path(1).resolve() == (tmp_path / "outside.png").resolve()
    np.testing.assert_array_equal(ds.read(1)[0, 0], (9, 9, 9))

    with pytest.raises(DataError) as info:
        load_dataset(path, allow_outside_root=False)
    message = str(info.value)
    assert "outside" in message and "allow_outside_root" in message
    assert "row 2" in message  # the first offending data row, counting the header as row 1


def test_manifest_of_absolute_paths_and_file_uris(manifest_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = elsewhere / "labels.csv"
    first = (manifest_dir / "img" / "a1.png").resolve()
    pd.DataFrame({"path": [str(first), first.as_uri()], "label": ["a", "b"]}).to_csv(path, index=False)
    ds = load_dataset(path.as_uri())  # the manifest itself named by a file:// URI
    assert [ds.file_path(i) for i in range(2)] == [first, first]
    pd.DataFrame({"path": ["file://server/x.png"], "label": ["a"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="on host 'server'"):
        load_dataset(path)


def test_manifest_absolute_path_outside_root_is_refused_only_when_untrusted(manifest_dir, tmp_path):
    outside = write_solid(tmp_path / "outside.png", 0, mode="L")
    path = manifest_dir / "labels.csv"
    pd.DataFrame({"path": [str(outside)], "label": ["a"]}).to_csv(path, index=False)
    assert load_dataset(path).file_path(0) == outside
    with pytest.raises(DataError, match="outside"):
        load_dataset(path, allow_outside_root=False)


def test_manifest_missing_label_column(manifest_dir):
    path = manifest_dir / "labels.csv"
    pd.DataFrame({"path": ["img/a1.png"], "class": ["a"]}).to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        load_dataset(path)
    assert "'label'" in str(info.value)
    assert "'path'" not in str(info.value).split("found")[0]  # only the missing one is blamed


def test_manifest_missing_path_column(manifest_dir):
    path = manifest_dir / "labels.parquet"
    pd.DataFrame({"file": ["img/a1.png"], "label": ["a"]}).to_parquet(path)
    with pytest.raises(DataError, match="'path'"):
        load_dataset(path)


def test_manifest_empty_label_names_the_row(manifest_dir):
    path = manifest_dir / "labels.csv"
    path.write_text("path,label\nimg/a1.png,a\nimg/a2.png,\n")
    with pytest.raises(DataError, match=r"row 3.*'label'"):
        load_dataset(path)


def test_manifest_labels_keep_leading_zeros_and_strip_spaces(manifest_dir):
    path = manifest_dir / "labels.csv"
    path.write_text("path,label\n img/a1.png ,007\nimg/a2.png, 10 \n")
    ds = load_dataset(path)
    assert list(ds.labels) == ["007", "10"]
    assert ds.paths[0] == "img/a1.png"
    assert ds.file_path(0).is_file()


def test_unreadable_manifest_is_a_data_error(manifest_dir):
    path = manifest_dir / "labels.parquet"
    path.write_text("this is not parquet")
    with pytest.raises(DataError, match="Cannot read manifest"):
        load_dataset(path)


def test_manifest_bad_split_value(manifest_dir):
    path = manifest_dir / "labels.csv"
    table = _manifest_table()
    table.loc[1, "split"] = "foo"
    table.to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        load_dataset(path)
    assert "foo" in str(info.value)
    assert "split" in str(info.value)


def test_manifest_split_aliases_are_normalised(manifest_dir):
    path = manifest_dir / "labels.csv"
    table = _manifest_table()
    table["split"] = ["Training", "validation", " TEST ", "dev"]
    table.to_csv(path, index=False)
    ds = load_dataset(path)
    assert ds.table["split"].tolist() == ["train", "val", "test", "val"]


def test_manifest_empty_split_cells_stay_empty(manifest_dir):
    path = manifest_dir / "labels.csv"
    path.write_text("path,label,split\nimg/a1.png,a,train\nimg/a2.png,a,\n")
    ds = load_dataset(path)
    assert ds.table["split"].tolist() == ["train", ""]


def test_parquet_null_label_is_refused(manifest_dir):
    path = manifest_dir / "labels.parquet"
    pd.DataFrame({"path": ["img/a1.png", "img/a2.png"], "label": ["a", None]}).to_parquet(path)
    with pytest.raises(DataError, match="empty 'label'"):
        load_dataset(path)


def test_parquet_null_path_is_refused(manifest_dir):
    path = manifest_dir / "labels.parquet"
    pd.DataFrame({"path": ["img/a1.png", None], "label": ["a", "b"]}).to_parquet(path)
    with pytest.raises(DataError, match="empty 'path'"):
        load_dataset(path)


def test_parquet_null_split_means_unassigned(manifest_dir):
    path = manifest_dir / "labels.parquet"
    table = pd.DataFrame(
        {"path": ["img/a1.png", "img/a2.png"], "label": ["a", "a"], "split": ["train", None]}
    )
    table.to_parquet(path)
    ds = load_dataset(path)
    assert ds.table["split"].tolist() == ["train", ""]


# ---------------------------------------------------------------- built-ins


def test_unknown_builtin_suggests_near_miss():
    with pytest.raises(DataError) as info:
        load_dataset("digit")
    message = str(info.value)
    assert "Did you mean 'digits'?" in message
    assert "shapes" in message  # lists the built-ins


def test_unknown_builtin_without_near_miss():
    with pytest.raises(DataError) as info:
        load_dataset("zzzzqqq")
    assert "Did you mean" not in str(info.value)
    assert "Built-ins" in str(info.value)


def test_digits_builtin():
    ds = load_dataset("digits")
    assert len(ds) == 1797
    assert ds.classes == [str(d) for d in range(10)]
    img = ds.read(0)
    assert img.dtype == np.uint8
    assert img.shape == (8, 8)
    assert max(int(a.max()) for a in ds.arrays) == 255  # rescaled from sklearn's 0..16
    assert set(np.unique(img)) <= {round(v * 255 / 16) for v in range(17)}
    assert ds.root is None
    assert ds.arrays is not None and len(ds.arrays) == 1797


def test_shapes_builtin():
    ds = load_dataset("shapes")
    assert len(ds) == 300
    assert ds.classes == ["circle", "square", "triangle"]
    assert ds.read(0).shape == (64, 64, 3)


def test_elpv_without_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "elpv_dataset", None)  # makes `import elpv_dataset` fail
    for name in ("elpv", "elpv4"):
        with pytest.raises(DataError) as info:
            load_dataset(name)
        assert "elpv-dataset" in str(info.value)
    from imgcls.data.builtins import list_datasets

    available = {d["name"]: d["available"] for d in list_datasets()}
    assert available["elpv"] is False
    assert available["digits"] is True


def test_make_shapes_is_deterministic():
    a = make_shapes(n_per_class=3, size=16, seed=1)
    b = make_shapes(n_per_class=3, size=16, seed=1)
    c = make_shapes(n_per_class=3, size=16, seed=2)
    assert len(a) == 9
    assert list(a.labels) == [lab for lab in SHAPE_CLASSES for _ in range(3)]
    for x, y in zip(a.arrays, b.arrays, strict=True):
        assert x.shape == (16, 16, 3)
        assert x.dtype == np.uint8
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a.arrays, c.arrays, strict=True))
    assert a.content_key() == b.content_key() != c.content_key()


# ---------------------------------------------------------------- Dataset record


def test_fingerprint_changes_with_content_and_mtime(tmp_path):
    path = write_solid(tmp_path / "a" / "x.png", (1, 2, 3))
    ds = from_folder(tmp_path)
    first = ds.fingerprint(0)
    assert ds.fingerprint(0) == first  # stable while nothing changes
    key = ds.content_key()

    write_solid(path, (1, 2, 3), size=(9, 9))  # new content (and size)
    second = ds.fingerprint(0)
    assert second != first
    assert ds.content_key() != key

    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touch only
    assert ds.fingerprint(0) != second

    path.unlink()
    assert ds.fingerprint(0).endswith("|missing")


def test_fingerprint_of_in_memory_arrays():
    arrays = [np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8)]
    ds = Dataset("mem", pd.DataFrame({"path": ["m/0", "m/1"], "label": ["a", "b"]}), arrays=arrays)
    assert ds.fingerprint(0) == ds.fingerprint(1)
    arrays[1][0, 0] = 1
    assert ds.fingerprint(0) != ds.fingerprint(1)
    reshaped = Dataset("mem", ds.table.copy(), arrays=[np.zeros((1, 4), np.uint8)] * 2)
    assert reshaped.fingerprint(0) != ds.fingerprint(0)  # same bytes, other shape


def test_dataset_labels_become_strings_and_subset_keeps_alignment():
    arrays = [np.full((2, 2), i, np.uint8) for i in range(4)]
    table = pd.DataFrame(
        {"path": ["0", "1", "2", "3"], "label": [1, 2, 1, 2], "site": list("wxyz")}
    )
    ds = Dataset("mem", table, arrays=arrays, ignored={"hidden": 1})
    assert list(ds.labels) == ["1", "2", "1", "2"]
    sub = ds.subset([3, 1])
    assert sub.paths == ["3", "1"]
    assert sub.table.index.tolist() == [0, 1]
    assert sub.read(0)[0, 0] == 3
    assert sub.ignored == {"hidden": 1}
    sub.ignored["hidden"] = 5
    assert ds.ignored == {"hidden": 1}  # a copy, not shared
    assert sub.metadata_columns == ["site"]
    summary = ds.summary()
    assert summary["images"] == 4
    assert summary["classes"] == {"1": 2, "2": 2}
    assert "splits" not in summary
