import numpy as np
import pytest

from imgcls.core.errors import ConfigError
from imgcls.data.features import FEATURES, FeatureSet, auto_features


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, size=(3, 48, 48, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, size=(3, 48, 48), dtype=np.uint8)
    return colour, grey


@pytest.mark.parametrize("name", FEATURES.names())
def test_every_extractor_gives_a_finite_fixed_length_vector(name, images):
    colour, grey = images
    extract = FEATURES.get(name)
    lengths = {np.asarray(extract(img)).size for img in colour}
    assert len(lengths) == 1 and lengths.pop() > 0
    for img in (*colour, *grey):
        assert np.isfinite(np.asarray(extract(img), dtype=float)).all()


def test_features_tell_textures_apart():
    rng = np.random.default_rng(1)
    flat = np.full((48, 48), 128, np.uint8)
    noisy = rng.integers(0, 256, size=(48, 48), dtype=np.uint8)
    for name in ("lbp", "glcm", "hog", "edges"):
        a, b = FEATURES.get(name)(flat), FEATURES.get(name)(noisy)
        assert not np.allclose(a, b), name


def test_colour_histogram_reflects_colour():
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((16, 16, 3), np.uint8)
    blue[..., 2] = 255
    assert not np.allclose(FEATURES.get("color")(red), FEATURES.get("color")(blue))


def test_feature_set_concatenates_and_reports_groups(images):
    colour, _ = images
    fs = FeatureSet("hog+color")
    matrix = fs.transform(colour, progress=False)
    groups = fs.groups(colour[0])
    assert matrix.shape == (3, groups["color"].stop)
    assert np.allclose(matrix[0, groups["hog"]], FEATURES.get("hog")(colour[0]), atol=1e-6)


def test_unknown_and_repeated_extractors_are_refused():
    with pytest.raises(ConfigError, match="Did you mean 'hog'"):
        FeatureSet("hgo")
    with pytest.raises(ConfigError, match="repeats"):
        FeatureSet("hog+hog")
    with pytest.raises(ConfigError, match="unused"):
        FeatureSet("hog", {"lbp": {"grid": 1}})


def test_parameters_reach_the_extractor(images):
    colour, _ = images
    small = FeatureSet("hog", {"hog": {"cells": 4}}).transform(colour, progress=False)
    large = FeatureSet("hog", {"hog": {"cells": 8}}).transform(colour, progress=False)
    assert small.shape[1] < large.shape[1]


def test_cache_is_keyed_by_content_and_config(tmp_path, images, monkeypatch):
    colour, _ = images
    fs = FeatureSet("lbp")
    first = fs.transform(colour, cache_dir=tmp_path, progress=False)
    assert len(list((tmp_path / "features").glob("*/*.npz"))) == 1
    monkeypatch.setattr(FeatureSet, "_run", lambda *a, **k: pytest.fail("cache missed"))
    assert np.array_equal(fs.transform(colour, cache_dir=tmp_path, progress=False), first)
    monkeypatch.undo()
    changed = colour.copy()
    changed[0, 0, 0] ^= 255
    FeatureSet("lbp").transform(changed, cache_dir=tmp_path, progress=False)
    FeatureSet("lbp", {"lbp": {"grid": 1}}).transform(colour, cache_dir=tmp_path, progress=False)
    chunks = list((tmp_path / "features").glob("*/*.npz"))
    assert len(chunks) == 3 and len({c.parent for c in chunks}) == 2  # two settings
    sizes = sorted(len(np.load(c)["keys"]) for c in chunks)
    assert sizes == [1, 3, 3]  # the changed image alone was computed again


def test_cache_computes_only_the_rows_it_has_not_seen(tmp_path, images, monkeypatch):
    colour, _ = images
    fs = FeatureSet("lbp")
    whole = fs.transform(colour, progress=False)
    fs.transform(colour[:1], cache_dir=tmp_path, progress=False)
    seen = []
    original = FeatureSet._run
    monkeypatch.setattr(FeatureSet, "_run",
                        lambda self, todo, *a: seen.append(len(todo)) or original(self, todo, *a))
    both = fs.transform(colour, cache_dir=tmp_path, progress=False)  # row 0 cached, the rest new
    assert seen == [len(colour) - 1] and np.allclose(both, whole)


def test_parallel_extraction_equals_serial():
    rng = np.random.default_rng(2)
    many = rng.integers(0, 256, size=(140, 32, 32), dtype=np.uint8)
    fs = FeatureSet("lbp+hist")
    assert np.allclose(fs.transform(many, n_jobs=2, progress=False),
                       fs.transform(many, n_jobs=1, progress=False))


def test_auto_features_by_size_and_channels():
    assert auto_features(8, 1) == "pixels"
    assert "color" in auto_features(64, 3)
    assert "hist" in auto_features(64, 1)
