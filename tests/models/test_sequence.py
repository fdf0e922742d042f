"""Sequence models on tiny synthetic clips: every temporal head's contract, saving, which
frames mattered, and that order is learnt where one frame cannot tell (direction)."""

from __future__ import annotations

import numpy as np
import pytest

import imgcls
from helpers import write_direction_clips
from imgcls.core.errors import ConfigError
from imgcls.data.decode import decode_with_info
from imgcls.data.prepare import ImageSpec, prepare_image
from imgcls.data.video import CLIP
from imgcls.models import SEQUENCE, create_model, load_model
from imgcls.models.sequence import TEMPORAL

FRAMES = 6


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """(train clips, train labels, test clips, test labels): squares growing or shrinking."""
    root = write_direction_clips(tmp_path_factory.mktemp("clips") / "clips", per_class=24)
    spec = ImageSpec(size=32, channels=3, frames=FRAMES)
    paths = sorted(root.rglob("*.avi"))
    data = np.stack([prepare_image(decode_with_info(p, draft_size=CLIP)[0], spec) for p in paths])
    labels = np.array([p.parent.name for p in paths], dtype=object)
    test = np.arange(len(paths)) % 4 == 0
    return data[~test], labels[~test], data[test], labels[test]


def _model(temporal: str, **params):
    if temporal == "classical":  # the classical school: frame features pooled over time, a fixed rate
        return create_model("sequence_classical", image_size=32, frames=FRAMES, features="edges+color",
                            frame_stride=2)
    return create_model("sequence", image_size=32, frames=FRAMES, params={"temporal": temporal, **params})


@pytest.mark.parametrize("temporal", [*TEMPORAL, "classical"])
def test_every_temporal_head_keeps_the_contract(clips, temporal, tmp_path):
    train, labels, test, _ = clips
    model = _model(temporal).fit(train, labels)
    assert model.supports(SEQUENCE) and list(model.classes_) == ["grow", "shrink"]
    proba = model.predict_proba(test)
    assert proba.shape == (len(test), 2) and np.allclose(proba.sum(1), 1, atol=1e-5)
    scores = model.frame_scores(test[:2])
    assert scores.shape == (2, FRAMES) and (scores >= 0).all()
    again = load_model(model.save(tmp_path / "model"))
    assert np.allclose(again.predict_proba(test), proba, atol=1e-5)
    assert again.image_spec == model.image_spec  # frames, stride and size come back as trained
    with pytest.raises(Exception, match="prepared"):
        model.predict_proba(test[:, :3])  # a clip of the wrong length


def test_order_is_learnt_where_one_frame_cannot_tell(clips):
    train, labels, test, truth = clips
    accuracy = {t: float((_model(t).fit(train, labels).predict(test) == truth).mean())
                for t in ("frames", "gru", "attention", "classical")}
    assert accuracy["gru"] >= 0.85 and accuracy["attention"] >= 0.85, accuracy
    assert accuracy["classical"] >= 0.85, accuracy  # the trend of its features says which way
    assert accuracy["frames"] <= 0.75, accuracy  # every frame is a square of some size: no direction


def test_bad_parameters_are_refused():
    with pytest.raises(ConfigError, match="temporal"):
        _model("rnn").validate()
    with pytest.raises(ConfigError, match="backbone"):
        _model("gru", backbone="small_cnn").validate()


def test_training_on_clips_picks_a_sequence_model_and_refuses_image_models(tmp_path):
    root = write_direction_clips(tmp_path / "clips", per_class=6)
    run = imgcls.train(str(root), out=tmp_path / "run", progress=False,
                       overrides=["model.image_size=32", "cache=false", f"data.frames={FRAMES}"])
    assert run.config.model.name == "sequence" and run.model.options["temporal"] == "gru"
    assert run.model.image_spec.frames == FRAMES
    with pytest.raises(ConfigError, match="video clips.*model.name=sequence"):
        imgcls.train(str(root), model="logistic_regression", out=tmp_path / "bad", progress=False,
                     overrides=["model.image_size=32", "cache=false"])


def test_fine_tuning_moves_the_cnn_and_keeps_the_contract(clips, tmp_path):
    train, labels, test, _ = clips
    few = np.r_[0:6, len(train) - 6:len(train)]  # six clips of each class
    frozen = _model("gru").fit(train[few], labels[few])
    tuned = _model("gru", finetune_epochs=1, finetune_batch=4).fit(train[few], labels[few])
    before = frozen.backbone_.state_dict()
    after = tuned.backbone_.state_dict()
    moved = [k for k in after if after[k].dtype.is_floating_point and not bool((after[k] == before[k]).all())]
    assert moved  # the backbone's weights changed, not only the head's
    assert tuned.weights_ != frozen.weights_ and "finetuned" in tuned.weights_  # its embeddings get new keys
    assert "finetune_seconds" in tuned.fit_timings_
    again = load_model(tuned.save(tmp_path / "tuned"))
    assert np.allclose(again.predict_proba(test), tuned.predict_proba(test), atol=1e-5)
