"""imgcls search on clips: the sequence families and their temporal heads, a single winner."""

import json

import optuna
import pandas as pd
import pytest

import imgcls
from helpers import write_direction_clips
from imgcls.config import resolve_config
from imgcls.data import describe, load_dataset
from imgcls.data.facts import DataFacts
from imgcls.models.families import build_model
from imgcls.searching import search
from imgcls.searching.space import (
    CLIP_FEATURES,
    CLIP_FINETUNE_TEMPORAL,
    CLIP_TEMPORAL,
    ESTIMATORS,
    SpaceFacts,
    available,
    first_trials,
    stoppable,
    suggest,
    to_overrides,
)

BACKBONES = ("tf_efficientnet_lite0", "tf_efficientnet_lite1")
CLIPS = SpaceFacts(48, 3, BACKBONES, clips=True)
IMAGES = SpaceFacts(48, 3, BACKBONES)
FAST = ["model.image_size=32", "cache=false", "data.frames=4"]


def sampled(facts: SpaceFacts, families=("classical", "probe", "finetune"), n: int = 60) -> list[dict]:
    """The overrides of ``n`` random configurations of the space (no training)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(to_overrides(suggest(trial, families, facts), facts))
        study.tell(trial, 0.0)
    return out


def test_the_clip_space_samples_the_sequence_families_and_their_heads():
    overrides = sampled(CLIPS)
    names = {o["model.name"] for o in overrides}
    assert names == {"sequence", "sequence_classical"}
    for o in overrides:
        if o["model.name"] == "sequence_classical":
            assert o["model.features"] in CLIP_FEATURES and 1e-2 <= o["model.params.C"] <= 1e2
            assert o["model.image_size"] == 48  # tiny frames: about their own size, not 96 px
            continue
        assert o["model.params.backbone"] in BACKBONES and o["model.image_size"] == 64
        if o.get("model.params.finetune_epochs"):
            assert o["model.params.temporal"] in CLIP_FINETUNE_TEMPORAL
            assert 1 <= o["model.params.finetune_epochs"] <= 4
            assert 3e-5 <= o["model.params.finetune_lr"] <= 3e-4
        else:
            assert o["model.params.temporal"] in CLIP_TEMPORAL
            assert 30 <= o["model.params.epochs"] <= 120 and 0 <= o["model.params.dropout"] <= 0.4
            assert ("model.params.bidirectional" in o) == (o["model.params.temporal"] in ("gru", "lstm"))
    heads = {o["model.params.temporal"] for o in overrides if "model.params.temporal" in o}
    assert heads == set(CLIP_TEMPORAL)
    # every sampled configuration is a valid sequence model of the config
    facts = DataFacts(48, 20, 2, 3, videos=20)
    for o in overrides[:12]:
        model = build_model(resolve_config(None, {**o, "data.frames": 4}), facts)
        assert model.frames == 4 and model.family == o["model.name"]


def test_image_data_keeps_the_image_space():
    overrides = sampled(IMAGES)
    assert not any("sequence" in str(o["model.name"]) or "model.params.temporal" in o for o in overrides)
    assert {o["model.name"] for o in overrides} & set(ESTIMATORS)
    assert {o.get("model.mode") for o in overrides} >= {"linear-probe", "finetune"}
    assert [t["family"] for t in first_trials(("classical", "probe", "finetune"), IMAGES)] == [
        "classical", "classical", "probe", "finetune"]
    assert stoppable("finetune", IMAGES) and not stoppable("finetune", CLIPS)


def test_clip_defaults_sizes_and_families():
    trials = first_trials(("classical", "probe", "finetune"), CLIPS)
    overrides = [to_overrides(t, CLIPS) for t in trials]
    assert [(o["model.name"], o.get("model.params.temporal"), o.get("model.params.finetune_epochs"))
            for o in overrides] == [("sequence_classical", None, None), ("sequence", "gru", None),
                                    ("sequence", "attention", None), ("sequence", "gru", 2)]
    assert overrides[0]["model.features"] == "edges+lbp+color"
    # the user's model.image_size wins; frames that are not tiny keep the models' own sizes
    fixed = SpaceFacts(48, 3, BACKBONES, clips=True, image_size=32)
    large = SpaceFacts(240, 3, BACKBONES, clips=True)
    assert not any("model.image_size" in to_overrides(t, f) for t in trials for f in (fixed, large))
    # a probe on 24 px images is dropped; the sequence model resizes tiny frames, so it is kept
    pair = ("classical", "probe")
    assert available(pair, SpaceFacts(24, 3, BACKBONES)) == ("classical",)
    assert available(pair, SpaceFacts(24, 3, BACKBONES, clips=True)) == pair
    assert available(("classical", "probe", "finetune"), SpaceFacts(48, 3, (), clips=True)) == ("classical",)
    assert first_trials(("classical", "probe", "finetune"), SpaceFacts(48, 3, (), clips=True)) == [
        {"family": "classical", "seqc_features": "edges+lbp+color", "seqc_C": 1.0}]


def test_the_frame_size_of_clips_and_folders_of_frames(tmp_path):
    import numpy as np
    from PIL import Image

    clips = write_direction_clips(tmp_path / "clips", per_class=2)
    facts = describe(load_dataset(str(clips)))
    assert (facts.short_side, facts.videos) == (48, 4)
    for label in ("a", "b"):
        clip = tmp_path / "frames" / label / "s1"  # one clip of three 60 x 40 frames per class
        clip.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(clip / f"{i}.png")
    cfg = resolve_config(None, {"data.source": str(tmp_path / "frames"), "data.frame_folders": True})
    facts = describe(load_dataset(cfg.data, cfg.task))
    assert (facts.short_side, facts.videos) == (40, 2)


@pytest.fixture(scope="module")
def clip_search(tmp_path_factory):
    """The four clip defaults on fresh grow / shrink clips; records how the winner was planned."""
    import imgcls.searching as searching_module

    asked = []
    original = searching_module.plan_winner

    def recording(kept, labels_of, score, ensemble=True, multilabel=False):
        asked.append(ensemble)
        return original(kept, labels_of, score, ensemble, multilabel)

    root = write_direction_clips(tmp_path_factory.mktemp("clips") / "clips", per_class=6)
    searching_module.plan_winner = recording
    try:
        result = search(str(root), budget="150s", trials=4, out=tmp_path_factory.mktemp("search") / "s",
                        progress=False, overrides=FAST)
    finally:
        searching_module.plan_winner = original
    return result, root, asked


def test_a_clip_search_tries_the_sequence_families(clip_search):
    result, _, _ = clip_search
    table = pd.read_csv(result.out / "leaderboard.csv")
    assert len(table) == 4 and (table["state"] == "complete").all(), table["error"].tolist()
    params = " ".join(table["params"])
    assert "model.name=sequence_classical" in params and "model.name=sequence " in params
    for head in ("gru", "attention"):
        assert f"model.params.temporal={head}" in params
    assert "model.params.finetune_epochs=2" in params
    assert "model.image_size" not in params  # the shared model.image_size=32 is kept
    assert set(table["model"]) >= {"sequence (gru)", "sequence (attention)", "sequence (gru, fine-tuned)"}


def test_a_clip_search_ends_with_one_trial_that_predicts_clips(clip_search):
    result, root, asked = clip_search
    assert asked and not any(asked)  # never an ensemble of clip models
    summary = json.loads((result.out / "search.json").read_text())
    assert summary["clips"] is True and "single" in summary["ensemble"]
    run = result.best_run
    assert run.metrics["search"]["winner"] == "single" and run.metrics["search"]["refitted"] == "1 of 1"
    model = imgcls.load_model(run.path)
    assert model.image_spec.frames == 4 and model.image_spec.size == 32
    assert model.family in ("sequence", "sequence_classical")
    table = imgcls.predict(run.path, [str(root)], progress=False)
    assert len(table) == 12 and (table["error"] == "").all()
    assert set(table["prediction"]) <= {"grow", "shrink"}


def test_one_family_alone_searches_only_its_sequence_model(tmp_path):
    family, model = "classical", "sequence_classical"  # the probe family: the four-trial search above
    root = write_direction_clips(tmp_path / "clips", per_class=5)
    result = search(str(root), budget="60s", trials=2, out=tmp_path / "s", families=family,
                    progress=False, overrides=FAST)
    table = result.leaderboard
    assert len(table) == 2 and (table["state"] == "complete").all(), table["error"].tolist()
    assert table["params"].str.contains(f"model.name={model} ").all()
    run = result.best_run
    assert run.model.family == model and run.metrics["search"]["refitted"] == "1 of 1"
    predictions = imgcls.predict(run.path, [str(root / "grow")], progress=False)
    assert len(predictions) == 5 and (predictions["error"] == "").all()
