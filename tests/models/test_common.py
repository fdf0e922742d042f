"""One conformance suite over every registered model family, deep ones included (tiny images,
one epoch): scikit-learn's test_common idea."""

import json

import numpy as np
import pytest

from imgcls.core.errors import ConfigError, ModelError
from imgcls.data import prepare_images
from imgcls.models import (
    CAPABILITIES,
    FEATURE_GROUPS,
    GRADIENTS,
    MODELS,
    ONNX,
    REPRESENTATION,
    SEQUENCE,
    TEST_TIME_VIEWS,
    TILES,
    VALIDATION,
    Classifier,
    create_model,
    load_model,
)
from imgcls.models.calibration import fit_temperature
from imgcls.models.decision import Decision
from imgcls.models.unknown import fit_unknown, resolve_method

TINY_TRAIN = {"epochs": 1, "batch_size": 8, "head_init": "random", "freeze": 0}
MEMBERS = "two fitted members"


def variants():
    """(family, options) for every registered family; a backbone twice (fine-tune, probe)."""
    out = []
    for name in MODELS.names():
        family = MODELS.get(name)
        if name == "ensemble":
            out.append((name, {"members": MEMBERS}))  # filled with two fitted members below
            continue
        if SEQUENCE in family.capabilities:  # clips of three frames (the still images, repeated)
            out.append((name, {"image_size": 32, "frames": 3, **(
                {"features": "hog+color"} if family.school == "classical" else {"params": {"epochs": 3}})}))
            continue
        if family.school == "classical":
            out.append((name, {"features": "hog+color", "image_size": 32}))
            continue
        if TILES in family.capabilities:  # bags of four 16-px tiles of each image, resized to 32
            out.append((name, {"image_size": 32, "tiles": 16, "max_tiles": 4, "pretrained": "none",
                               "params": {"epochs": 3}}))
            continue
        pretrained = "auto" if family.facts().get("offline_weights") else "none"
        out.append((name, {"image_size": 32, "pretrained": pretrained, "augment": "none",
                           "train": TINY_TRAIN}))
        if name != "small_cnn":
            out.append((name, {"mode": "linear-probe", "image_size": 32, "pretrained": pretrained}))
    return out


VARIANTS = variants()
IDS = [f"{name}-{options.get('mode', 'fit')}" for name, options in VARIANTS]


@pytest.fixture(scope="module")
def data(shapes_small):
    from imgcls.data import ImageSpec, load_images

    images = load_images(shapes_small, ImageSpec(size=32), progress=False).images
    return images, shapes_small.labels


@pytest.fixture(scope="module")
def members(data, tmp_path_factory):
    """Two fitted classical models saved as model folders, the ensemble's members."""
    images, labels = data
    root = tmp_path_factory.mktemp("members")
    return [str(create_model(family, features="hist", image_size=32).fit(images, labels).save(root / family))
            for family in ("logistic_regression", "knn")]


def create(name, options, members):
    options = {**options, "members": members} if options.get("members") == MEMBERS else options
    return create_model(name, **options)


def inputs(model, images):
    """What ``model`` takes: the images, or for a model of tiles (or clips) their bags (clips)."""
    bags = model.supports(TILES) or model.supports(SEQUENCE)
    return prepare_images(list(images), model.image_spec) if bags else images


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
def test_every_family_keeps_the_contract(name, options, data, members, tmp_path):
    images, labels = data
    model = create(name, options, members)
    images = inputs(model, images)
    assert isinstance(model, Classifier) and model.family == name
    assert model.capabilities <= set(CAPABILITIES)
    # parameters only: a copy made from get_params has the same parameters (sklearn's clone)
    from sklearn.base import clone

    assert clone(model).get_params() == model.get_params()
    assert model.fit(images, labels) is model
    assert model.classes_.tolist() == ["circle", "square", "triangle"]
    proba = model.predict_proba(images)
    assert proba.shape == (len(images), 3) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (model.predict(images) == model.classes_[proba.argmax(axis=1)]).all()
    model.decision_ = Decision("weights", weights=(1.0, 0.5, 0.25), target="macro_f1")
    # what is tuned after fit: a temperature, an unknown detector (knn where there is a representation)
    y = np.asarray([model.classes_.tolist().index(v) for v in labels])
    model.calibration_ = fit_temperature(y, model.raw_proba(images))
    model.unknown_ = fit_unknown(model, resolve_method("auto", model), images[::2], images[1::2], 0.1)
    calibrated, scores = model.predict_with_unknown(images)
    assert np.allclose(calibrated, model.calibration_.apply(proba), atol=1e-5)
    assert (calibrated.argmax(1) == proba.argmax(1)).all()  # a temperature keeps the ranking
    assert scores.shape == (len(images),) and np.isfinite(scores).all()
    folder = model.save(tmp_path / "model")
    meta = json.loads((folder / "model.json").read_text())
    assert meta["family"] == name and meta["classes"] == model.classes_.tolist()
    assert meta["calibration"]["temperature"] == model.calibration_.temperature
    loaded = load_model(folder)
    assert type(loaded) is type(model) and loaded.image_spec == model.image_spec
    assert np.allclose(loaded.raw_proba(images), proba, atol=1e-5)
    assert np.allclose(loaded.predict_proba(images), calibrated, atol=1e-5)
    assert loaded.decision_ == model.decision_  # the decision rule travels with the model
    assert loaded.calibration_ == model.calibration_ and loaded.unknown_.threshold == model.unknown_.threshold
    assert np.allclose(loaded.predict_with_unknown(images)[1], scores, atol=1e-4)
    assert (loaded.predict(images) == model.decide(calibrated)).all()


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
def test_declared_capabilities_are_real(name, options, data, members):
    import torch

    images, labels = data
    model = create(name, options, members)
    images = inputs(model, images)
    model.fit(images, labels)
    if model.supports(GRADIENTS) or model.supports(ONNX):
        logits = model.network()(torch.from_numpy(images[:2]).permute(0, 3, 1, 2).float())
        assert tuple(logits.shape) == (2, 3)
    else:
        with pytest.raises(ModelError, match="without a network|cannot be exported"):
            model.network()
    if model.supports(FEATURE_GROUPS):
        groups = model.feature_groups()
        width = model.feature_matrix(images[:2]).shape[1]
        assert sum(g.stop - g.start for g in groups.values()) == width
    if model.supports(TEST_TIME_VIEWS):
        assert model.set_tta("hflip+vflip").test_time_flips() == ((3,), (2,))
    if model.supports(REPRESENTATION):
        vectors = model.representation(images[:4])
        assert vectors.ndim == 2 and len(vectors) == 4
        assert np.allclose(vectors, model.representation(images[:4]))
        assert resolve_method("auto", model) == "knn"
    else:
        with pytest.raises(ModelError, match="no representation"):
            model.representation(images[:4])
        assert resolve_method("auto", model) == "msp"
    if model.supports(VALIDATION):
        assert model.fit(images[::2], labels[::2], val=(images[1::2], labels[1::2])) is model


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
def test_unprepared_images_are_refused_with_the_way_out(name, options, data, members):
    images, labels = data
    model = create(name, options, members)
    big = images if model.supports(TILES) or model.supports(SEQUENCE) else \
        images.repeat(2, axis=1).repeat(2, axis=2)  # tiles, clips: not bags, not clips
    with pytest.raises(ModelError, match="prepare_images"):
        model.fit(big, labels)
    model.fit(prepare_images(list(big), model.image_spec), labels)
    assert model.predict_proba(prepare_images(list(big[:4]), model.image_spec)).shape == (4, 3)


def test_constructors_store_parameters_and_fit_validates(data):
    images, labels = data
    for family in ("svm", "small_cnn"):
        cls = MODELS.get(family).cls
        model = cls(family=family, augment="mirror")  # no error: constructors only store
        assert model.get_params()["augment"] == "mirror"
        with pytest.raises(ConfigError, match="model.augment"):
            model.fit(images, labels)


@pytest.mark.parametrize("name", ["svm", "random_forest", "logistic_regression"])
def test_learns_the_shapes(name, data):
    images, labels = data
    model = create_model(name, features="edges+lbp", image_size=32).fit(images[::2], labels[::2])
    assert (model.predict(images[1::2]) == labels[1::2]).mean() >= 0.75


def test_images_of_other_sizes_and_modes_go_through_the_prepare_step(data):
    images, labels = data
    model = create_model("logistic_regression", features="hog", image_size=32).fit(images, labels)
    big_grey = [np.asarray(img[..., 0]).repeat(2, 0).repeat(2, 1) for img in images[:4]]
    assert model.predict_proba(prepare_images(big_grey, model.image_spec)).shape == (4, 3)


def test_unknown_family_and_bad_params_are_config_errors(data):
    images, labels = data
    with pytest.raises(ConfigError, match="Did you mean 'svm'"):
        create_model("smv")
    with pytest.raises(ConfigError, match="model.params"):
        create_model("random_forest", features="hist", image_size=32,
                     params={"n_trees": 3}).fit(images, labels)


def test_one_class_is_refused(data):
    images, _ = data
    with pytest.raises(ConfigError, match="at least 2 classes"):
        create_model("svm", features="hist", image_size=32).fit(images, ["a"] * len(images))


def test_svm_tunes_c_by_cross_validation_unless_given(data):
    images, labels = data
    tuned = create_model("svm", features="hog", image_size=32).fit(images, labels)
    assert tuned.tuned_["C"] in (1.0, 3.0, 10.0, 30.0, 100.0)
    fixed = create_model("svm", features="hog", image_size=32, params={"C": 2.5}).fit(images, labels)
    assert not hasattr(fixed, "tuned_")


def test_balanced_class_weight_reaches_the_estimator(data):
    images, labels = data
    model = create_model("logistic_regression", features="hist", image_size=32,
                         class_weight="balanced").fit(images, labels)
    assert model.pipeline_[-1].class_weight == "balanced"


def test_loading_a_folder_without_model_json_fails_clearly(tmp_path):
    with pytest.raises(ModelError, match="model.json is missing"):
        load_model(tmp_path)


def test_predict_before_fit_is_an_error(data):
    with pytest.raises(ModelError, match="not fitted"):
        create_model("knn", features="hist", image_size=32).predict_proba(data[0][:2])


def test_augment_adds_flipped_copies_and_is_saved(data, tmp_path, monkeypatch):
    from imgcls.models.classical import SklearnClassifier

    images, labels = data
    seen = []
    original = SklearnClassifier._training_features

    def spy(self, imgs, labs):
        X, y = original(self, imgs, labs)
        seen.append((len(X), len(y)))
        return X, y

    monkeypatch.setattr(SklearnClassifier, "_training_features", spy)
    model = create_model("svm", features="hist", image_size=32, augment="hflip+vflip")
    model.fit(images, labels)
    assert seen == [(3 * len(labels), 3 * len(labels))]
    assert load_model(model.save(tmp_path / "m")).augment == "hflip+vflip"
    with pytest.raises(ConfigError, match="model.augment"):
        create_model("svm", augment="mirror")


@pytest.fixture(scope="module")
def multi_data():
    from imgcls.data import ImageSpec, load_images
    from imgcls.data.builtins import make_multi_shapes

    shapes = make_multi_shapes(48, 64, seed=2)
    return load_images(shapes, ImageSpec(size=32), progress=False).images, shapes.labels


def labels_sets(name):
    """Families that learn label sets: not the ensemble (its members do), not one of tiles
    (multiple-instance learning here gives one label per bag)."""
    caps = MODELS.get(name).capabilities
    return name != "ensemble" and TILES not in caps and SEQUENCE not in caps  # clips: one label each


@pytest.mark.parametrize(("name", "options"), [v for v in VARIANTS if labels_sets(v[0])],
                         ids=[i for i, v in zip(IDS, VARIANTS, strict=True) if labels_sets(v[0])])
def test_every_family_learns_several_labels_per_image(name, options, multi_data, tmp_path):
    images, labels = multi_data
    model = create_model(name, **options, multilabel=True)
    assert model.is_multilabel and model.fit(images, labels) is model
    assert model.classes_.tolist() == ["circle", "square", "triangle"]
    proba = model.predict_proba(images)
    assert proba.shape == (len(images), 3) and ((proba >= 0) & (proba <= 1)).all()
    assert not np.allclose(proba.sum(axis=1), 1.0)  # independent labels, not one softmax
    decided = model.predict(images)
    assert all(set(d.split("|")) - {""} <= {"circle", "square", "triangle"} for d in decided)
    expected = ["|".join(c for c, p in zip(model.classes_, row, strict=True) if p >= 0.5) for row in proba]
    assert decided.tolist() == expected  # untuned: every label at 0.5
    model.decision_ = Decision("multilabel", thresholds=(0.2, 0.5, 0.8), target="f1")
    loaded = load_model(model.save(tmp_path / "model"))
    assert loaded.is_multilabel and np.allclose(loaded.predict_proba(images), proba, atol=1e-5)
    assert (loaded.predict(images) == model.predict(images)).all()


def test_multi_label_training_refuses_a_label_on_every_image(multi_data):
    images, labels = multi_data
    with pytest.raises(ConfigError, match="on every training image"):
        create_model("logistic_regression", features="hist", image_size=32, multilabel=True).fit(
            images, [f"{v}|always" if v else "always" for v in labels])
