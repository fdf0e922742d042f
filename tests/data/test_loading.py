"""load_images: decode, resize and stack a dataset, skip bad files, cache on disk, touch nothing."""

from __future__ import annotations

import os

import numpy as np
import pytest

from helpers import (
    file_hashes,
    write_empty,
    write_solid,
    write_text_as_png,
    write_truncated_jpeg,
)
from imgcls.data import ImageSpec, load_images
from imgcls.data.builtins import make_shapes
from imgcls.data.dataset import Dataset
from imgcls.data.prepare import prepare_image, resize_image, to_channels
from imgcls.data.sources import load_dataset

# Distinct colours so every stacked image can be traced back to its file.
GOOD = {
    "blue/b1.png": (0, 0, 250),
    "blue/sub/b2.png": (10, 20, 200),
    "red/r1.png": (250, 0, 0),
    "red/r2.bmp": (200, 30, 10),
}


@pytest.fixture
def mixed_folder(tmp_path):
    root = tmp_path / "data"
    for rel, colour in GOOD.items():
        write_solid(root / rel, colour, size=(12, 10))
    write_truncated_jpeg(root / "red" / "cut.jpg")
    write_empty(root / "blue" / "empty.png")
    write_text_as_png(root / "blue" / "x.png")
    return root


def _load(ds, size=4, **kwargs):
    kwargs.setdefault("progress", False)
    return load_images(ds, ImageSpec(size=size, **kwargs.pop("spec", {})), **kwargs)


def _touch(path, seconds=5):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


# ---------------------------------------------------------------- good and bad files


def test_good_files_are_stacked_and_bad_ones_skipped(mixed_folder):
    ds = load_dataset(mixed_folder)
    assert len(ds) == 7
    loaded = _load(ds)
    assert loaded.images.dtype == np.uint8
    assert loaded.images.shape == (4, 4, 4, 3)
    assert loaded.channels == 3
    assert len(loaded.rows) == 4

    # every stacked image is the row it claims to be
    for k, row in enumerate(loaded.rows):
        expected = GOOD[ds.paths[row]]
        np.testing.assert_array_equal(loaded.images[k], np.broadcast_to(expected, (4, 4, 3)))

    skipped = dict(zip(loaded.skipped["path"], loaded.skipped["reason"], strict=True))
    assert set(skipped) == {"red/cut.jpg", "blue/empty.png", "blue/x.png"}
    assert "empty" in skipped["blue/empty.png"]
    assert "text" in skipped["blue/x.png"]
    assert "truncated" in skipped["red/cut.jpg"] or "decode" in skipped["red/cut.jpg"]
    # stacked rows and skipped paths partition the dataset
    assert sorted([ds.paths[r] for r in loaded.rows] + list(skipped)) == sorted(ds.paths)


def test_parallel_loading_gives_the_same_result(mixed_folder):
    ds = load_dataset(mixed_folder)
    serial = _load(ds, n_jobs=1)
    parallel = _load(ds, n_jobs=3)
    np.testing.assert_array_equal(parallel.images, serial.images)
    np.testing.assert_array_equal(parallel.rows, serial.rows)
    assert parallel.skipped.values.tolist() == serial.skipped.values.tolist()


def test_unexpected_exception_is_skipped_not_raised(mixed_folder, monkeypatch):
    ds = load_dataset(mixed_folder)
    real = Dataset.read

    def flaky(self, i, draft_size=None, window="file"):
        if self.paths[i] == "red/r1.png":
            raise RuntimeError("disk on fire")
        return real(self, i, draft_size, window)

    monkeypatch.setattr(Dataset, "read", flaky)
    loaded = _load(ds)
    reasons = dict(zip(loaded.skipped["path"], loaded.skipped["reason"], strict=True))
    assert "RuntimeError" in reasons["red/r1.png"]
    assert "disk on fire" in reasons["red/r1.png"]
    assert len(loaded.rows) == 3


def test_decompression_limit_from_load_dataset_is_used(tmp_path):
    write_solid(tmp_path / "a" / "small.png", 5, size=(4, 4), mode="L")  # 16 pixels
    write_solid(tmp_path / "a" / "big.png", 5, size=(20, 20), mode="L")  # 400 pixels
    ds = load_dataset(tmp_path, max_image_pixels=100)
    loaded = _load(ds)
    assert [ds.paths[r] for r in loaded.rows] == ["a/small.png"]
    assert loaded.skipped["path"].tolist() == ["a/big.png"]
    assert "decompression bomb" in loaded.skipped["reason"].iloc[0]


# ---------------------------------------------------------------- channels


def test_all_grey_folder_gives_single_channel(tmp_path):
    write_solid(tmp_path / "a" / "1.png", 10, size=(8, 8), mode="L")
    write_solid(tmp_path / "a" / "2.jpg", 200, size=(16, 12), mode="L")
    write_solid(tmp_path / "b" / "3.png", (70, 70, 70), size=(8, 8))  # RGB but grey content
    loaded = _load(load_dataset(tmp_path), size=6)
    assert loaded.images.ndim == 3
    assert loaded.images.shape == (3, 6, 6)
    assert loaded.channels == 1
    assert np.all(loaded.images[0] == 10)
    assert np.all(loaded.images[2] == 70)


def test_mixed_grey_and_colour_gives_rgb(tmp_path):
    write_solid(tmp_path / "a" / "grey.png", 90, size=(8, 8), mode="L")
    write_solid(tmp_path / "b" / "colour.png", (250, 0, 0), size=(8, 8))
    loaded = _load(load_dataset(tmp_path), size=5)
    assert loaded.images.shape == (2, 5, 5, 3)
    assert loaded.channels == 3
    assert np.all(loaded.images[0] == 90)  # grey repeated in all three channels
    assert np.all(loaded.images[1] == (250, 0, 0))


def test_requested_channels_override_the_data(tmp_path):
    write_solid(tmp_path / "a" / "grey.png", 90, size=(8, 8), mode="L")
    write_solid(tmp_path / "b" / "red.png", (255, 0, 0), size=(8, 8))
    ds = load_dataset(tmp_path)
    rgb = _load(ds, spec={"channels": 3})
    assert rgb.images.shape == (2, 4, 4, 3)
    grey = _load(ds, spec={"channels": 1})
    assert grey.images.shape == (2, 4, 4)
    assert np.all(grey.images[0] == 90)
    assert abs(int(grey.images[1, 0, 0]) - 76) <= 1  # ITU-R 601 luma of pure red


def test_to_channels():
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    rgb = to_channels(grey, 3)
    assert rgb.shape == (2, 3, 3)
    np.testing.assert_array_equal(rgb[..., 2], grey)
    np.testing.assert_array_equal(to_channels(rgb, 1), grey)
    assert to_channels(grey, 1) is grey
    green = np.zeros((1, 1, 3), np.uint8)
    green[..., 1] = 255
    assert abs(int(to_channels(green, 1)[0, 0]) - 150) <= 1


# ---------------------------------------------------------------- resizing


def _three_bands(height=20, width=40) -> np.ndarray:
    """Left quarter red, middle half green, right quarter blue."""
    img = np.zeros((height, width, 3), np.uint8)
    img[:, : width // 4] = (255, 0, 0)
    img[:, width // 4 : 3 * width // 4] = (0, 255, 0)
    img[:, 3 * width // 4 :] = (0, 0, 255)
    return img


@pytest.mark.parametrize("rule", ["squash", "crop", "pad"])
@pytest.mark.parametrize("shape", [(20, 40, 3), (40, 20, 3), (20, 40), (5, 3, 3), (16, 16, 3)])
def test_resize_rules_give_requested_size(rule, shape):
    img = np.full(shape, 128, np.uint8)
    out = resize_image(img, 16, rule)
    assert out.shape == (16, 16, *shape[2:])
    assert out.dtype == np.uint8
    assert out.flags["C_CONTIGUOUS"]


def test_squash_stretches_everything_in():
    out = resize_image(_three_bands(), 16, "squash")
    assert out[8, 0, 0] > 200  # red still on the left
    assert out[8, 15, 2] > 200  # blue still on the right


def test_crop_keeps_the_centre():
    out = resize_image(_three_bands(), 16, "crop")
    assert np.all(out[..., 1] > 200)
    assert np.all(out[..., 0] < 30)
    assert np.all(out[..., 2] < 30)


def test_pad_letterboxes_wide_image_with_black():
    img = np.full((20, 40, 3), 255, np.uint8)
    out = resize_image(img, 16, "pad")
    assert np.all(out[:4] == 0)  # top border
    assert np.all(out[12:] == 0)  # bottom border
    assert np.all(out[4:12] == 255)  # the image itself, 8 rows high


def test_pad_pillarboxes_tall_grey_image_with_black():
    img = np.full((40, 20), 255, np.uint8)
    out = resize_image(img, 16, "pad")
    assert out.shape == (16, 16)
    assert np.all(out[:, :4] == 0)
    assert np.all(out[:, 12:] == 0)
    assert np.all(out[:, 4:12] == 255)


def test_prepare_image_applies_spec():
    img = np.full((10, 30, 3), 200, np.uint8)
    out = prepare_image(img, ImageSpec(size=8, channels=1, resize="pad"))
    assert out.shape == (8, 8)
    assert out[0, 0] == 0 and out[4, 4] == 200


def test_load_images_uses_the_resize_rule(tmp_path):
    write_solid(tmp_path / "a" / "wide.png", (255, 255, 255), size=(40, 20))
    ds = load_dataset(tmp_path)
    padded = _load(ds, size=16, spec={"resize": "pad"})
    assert padded.images.shape == (1, 16, 16)  # white is grey, so one channel
    assert np.all(padded.images[0, :4] == 0)
    assert np.all(padded.images[0, 4:12] == 255)
    squashed = _load(ds, size=16, spec={"resize": "squash"})
    assert np.all(squashed.images == 255)


def test_in_memory_dataset_loads():
    shapes = make_shapes(n_per_class=2, size=16, seed=0)
    loaded = _load(shapes, size=8)
    assert loaded.images.shape == (6, 8, 8, 3)
    np.testing.assert_array_equal(loaded.rows, np.arange(6))
    np.testing.assert_array_equal(loaded.images[3], resize_image(shapes.arrays[3], 8))


# ---------------------------------------------------------------- cache


@pytest.fixture
def forbid_decoding(monkeypatch):
    """While on, Dataset.read raises, so any decoding ends up in ``skipped``."""
    real = Dataset.read
    state = {"on": False}

    def guarded(self, i, draft_size=None, window="file"):
        if state["on"]:
            raise RuntimeError("decoded although cached")
        return real(self, i, draft_size, window)

    monkeypatch.setattr(Dataset, "read", guarded)
    return state


def test_second_call_is_served_from_cache(mixed_folder, tmp_path, forbid_decoding):
    cache = tmp_path / "cache"
    ds = load_dataset(mixed_folder)
    first = _load(ds, cache_dir=cache)
    assert list((cache / "images").glob("*.npy"))
    assert list((cache / "images").glob("*.json"))

    forbid_decoding["on"] = True
    second = _load(load_dataset(mixed_folder), cache_dir=cache)
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.rows, first.rows)
    assert second.skipped.values.tolist() == first.skipped.values.tolist()
    assert not any("decoded although cached" in r for r in second.skipped["reason"])


def test_no_cache_dir_means_no_cache(mixed_folder, forbid_decoding):
    ds = load_dataset(mixed_folder)
    _load(ds)
    forbid_decoding["on"] = True
    again = _load(ds)
    assert len(again.rows) == 0
    assert len(again.skipped) == len(ds)


def test_touching_a_file_invalidates_the_cache(mixed_folder, tmp_path, forbid_decoding):
    cache = tmp_path / "cache"
    _load(load_dataset(mixed_folder), cache_dir=cache)
    _touch(mixed_folder / "red" / "r1.png")
    forbid_decoding["on"] = True
    again = _load(load_dataset(mixed_folder), cache_dir=cache)
    assert len(again.rows) == 0  # it tried to decode everything again
    assert all("decoded although cached" in r for r in again.skipped["reason"])


def test_changed_file_content_is_reloaded(mixed_folder, tmp_path):
    cache = tmp_path / "cache"
    ds = load_dataset(mixed_folder)
    row = ds.paths.index("red/r1.png")
    before = _load(ds, cache_dir=cache)
    k = int(np.flatnonzero(before.rows == row)[0])
    assert tuple(before.images[k, 0, 0]) == (250, 0, 0)

    path = write_solid(mixed_folder / "red" / "r1.png", (0, 255, 0), size=(12, 10))
    _touch(path)  # make sure the mtime moves even on coarse clocks
    after = _load(load_dataset(mixed_folder), cache_dir=cache)
    k = int(np.flatnonzero(after.rows == row)[0])
    assert tuple(after.images[k, 0, 0]) == (0, 255, 0)


def test_other_spec_or_limit_is_not_served_from_cache(mixed_folder, tmp_path, forbid_decoding):
    cache = tmp_path / "cache"
    _load(load_dataset(mixed_folder), size=4, cache_dir=cache)
    forbid_decoding["on"] = True
    for ds, size, spec in [
        (load_dataset(mixed_folder), 5, {}),
        (load_dataset(mixed_folder), 4, {"resize": "pad"}),
        (load_dataset(mixed_folder), 4, {"channels": 1}),
        (load_dataset(mixed_folder, max_image_pixels=10_000), 4, {}),
    ]:
        loaded = _load(ds, size=size, spec=spec, cache_dir=cache)
        assert len(loaded.rows) == 0, (size, spec)


def test_in_memory_dataset_is_cached_by_content(tmp_path, forbid_decoding):
    cache = tmp_path / "cache"
    shapes = make_shapes(n_per_class=2, size=16, seed=0)
    first = _load(shapes, size=8, cache_dir=cache)
    forbid_decoding["on"] = True
    np.testing.assert_array_equal(_load(shapes, size=8, cache_dir=cache).images, first.images)
    other = make_shapes(n_per_class=2, size=16, seed=1)
    assert len(_load(other, size=8, cache_dir=cache).rows) == 0


def test_corrupt_cache_is_ignored(mixed_folder, tmp_path):
    cache = tmp_path / "cache"
    ds = load_dataset(mixed_folder)
    first = _load(ds, cache_dir=cache)
    for npy in (cache / "images").glob("*.npy"):
        npy.write_bytes(b"garbage")
    again = _load(ds, cache_dir=cache)
    np.testing.assert_array_equal(again.images, first.images)


# ---------------------------------------------------------------- user files are sacred


def test_user_files_are_never_modified(mixed_folder, tmp_path):
    before = file_hashes(mixed_folder)
    stat_before = {p: os.stat(mixed_folder / p).st_mtime_ns for p in before}
    cache = tmp_path / "cache"
    ds = load_dataset(mixed_folder)
    _load(ds, cache_dir=cache)
    _load(ds, cache_dir=cache, n_jobs=2, spec={"resize": "crop"})
    _load(load_dataset(mixed_folder), cache_dir=cache)
    after = file_hashes(mixed_folder)
    assert after == before  # same files, same bytes, nothing added
    assert {p: os.stat(mixed_folder / p).st_mtime_ns for p in after} == stat_before


def test_crop_of_a_thin_strip_stays_small():
    """The centre square is cut before resizing: a 20000 x 2 strip never becomes 2.2M x 224."""
    import tracemalloc

    strip = np.full((2, 20_000), 200, dtype=np.uint8)
    tracemalloc.start()
    out = resize_image(strip, 224, "crop")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (224, 224) and (out == 200).all()
    assert peak < 5_000_000
