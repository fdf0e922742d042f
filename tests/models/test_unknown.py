"""The unknown score and its threshold: each method, the threshold's rate, saving it."""

import numpy as np
import pytest

from imgcls.core.errors import ConfigError
from imgcls.data import ImageSpec, load_images
from imgcls.data.builtins import make_shapes
from imgcls.models import create_model, load_model
from imgcls.models.unknown import (
    Unknown,
    detection_metrics,
    energy_score,
    fit_unknown,
    knn_score,
    msp_score,
    normalise,
    resolve_method,
)


@pytest.fixture(scope="module")
def fitted():
    shapes = make_shapes(n_per_class=40, size=32, seed=0)
    images = load_images(shapes, ImageSpec(size=32), progress=False).images
    labels = shapes.labels
    model = create_model("svm", features="hog+color", image_size=32).fit(images[::2], labels[::2])
    return model, images


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_knn_score_is_zero_on_a_training_vector_and_grows_away_from_them():
    bank = normalise(np.eye(4, 8))
    near = np.eye(4, 8)[:1] * 3.0  # same direction, another length: cosine similarity 1
    far = np.ones((1, 8))
    assert knn_score(near, bank, 1)[0] == pytest.approx(0.0, abs=1e-6)
    assert knn_score(far, bank, 1)[0] > 0.5
    assert (knn_score(np.eye(4, 8), bank, 2) > knn_score(np.eye(4, 8), bank, 1)).all()
    # Euclidean: the length counts; distances are the plain ones
    raw = np.eye(4, 8) * 2.0
    assert knn_score(np.eye(4, 8)[:1] * 2.0, raw, 1, "euclidean")[0] == pytest.approx(0.0, abs=1e-6)
    assert knn_score(np.eye(4, 8)[:1] * 5.0, raw, 1, "euclidean")[0] == pytest.approx(3.0, abs=1e-5)


def test_msp_and_energy_are_higher_for_less_certain_answers():
    assert msp_score(np.array([[0.9, 0.1], [0.5, 0.5]])).tolist() == pytest.approx([0.1, 0.5])
    energy = energy_score(np.array([[10.0, 0.0], [0.1, 0.0]]))
    assert energy[0] < energy[1]


def test_detection_metrics_on_separated_and_identical_scores():
    perfect = detection_metrics(np.linspace(0, 1, 100), np.linspace(2, 3, 50))
    assert perfect["auroc"] == 1.0 and perfect["fpr_at_95_tpr"] == 0.0
    same = detection_metrics(np.linspace(0, 1, 101), np.linspace(0, 1, 101))
    assert same["auroc"] == pytest.approx(0.5) and same["fpr_at_95_tpr"] > 0.9


def test_the_threshold_rejects_the_stated_share_of_validation_images(fitted):
    model, images = fitted
    for rate in (0.05, 0.2):
        detector = fit_unknown(model, "knn", images[::2], images[1::2], rate)
        rejected = detector.flags(detector.scores(model, images[1::2])).mean()
        assert abs(rejected - rate) <= 1 / len(images[1::2]) + 1e-9
        assert detector.validation["rejected"] == pytest.approx(rejected, abs=1e-4)


def test_knn_tells_noise_from_shapes_better_than_chance(fitted):
    model, images = fitted
    detector = fit_unknown(model, "knn", images[::2], images[1::2], 0.05)
    found = detection_metrics(detector.scores(model, images[1::2]), detector.scores(model, _noise(40)))
    assert found["auroc"] > 0.9
    assert detector.flags(detector.scores(model, _noise(40))).mean() > 0.8


def test_methods_a_model_cannot_give_are_config_errors(fitted):
    model, _ = fitted
    assert resolve_method("auto", model) == "knn" and resolve_method("none", model) is None
    with pytest.raises(ConfigError, match="energy is not available"):
        resolve_method("energy", model)
    with pytest.raises(ConfigError, match="decision.unknown"):
        resolve_method("maybe", model)
    with pytest.raises(ConfigError, match="unknown_rate"):
        fit_unknown(model, "msp", _noise(4), _noise(4), 1.5)


def test_the_detector_and_its_training_vectors_are_saved_with_the_model(fitted, tmp_path):
    model, images = fitted
    model.unknown_ = fit_unknown(model, "knn", images[::2], images[1::2], 0.1)
    folder = model.save(tmp_path / "m")
    assert (folder / "unknown.safetensors").is_file()
    loaded = load_model(folder)
    assert loaded.unknown_.method == "knn" and np.array_equal(loaded.unknown_.bank, model.unknown_.bank)
    noise = _noise(8, 3)
    assert np.allclose(loaded.predict_with_unknown(noise)[1], model.predict_with_unknown(noise)[1])
    (folder / "unknown.safetensors").unlink()
    with pytest.raises(Exception, match="unknown.safetensors"):
        load_model(folder)
    assert Unknown.from_dict(None) is None
