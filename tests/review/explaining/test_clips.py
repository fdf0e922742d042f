"""Explaining clip models: frame scores and their faithfulness, the key frame's pixel maps
through its clip, both schools, and what is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import train_clip_run, write_clip, write_frame_folder
from imgcls.core.errors import ConfigError
from imgcls.data.decode import decode_with_info
from imgcls.data.prepare import read_prepared
from imgcls.deploy.predictors import ClassifierPredictor
from imgcls.review.explaining import explain
from imgcls.review.explaining.clips import KeyFrameView, temporal_faithfulness
from imgcls.runs import load_run_model

FRAMES = 6
FAST = {"lime_samples": 30, "shap_evals": 40, "curve_steps": 6, "ig_steps": 6}


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    return train_clip_run(tmp_path_factory, FRAMES, 8)


def _clip(path, model):
    return read_prepared(lambda d, w: decode_with_info(path, draft_size=d)[0], model.image_spec)


def test_the_key_frame_view_scores_frames_inside_their_clip(clip_run, tmp_path):
    import torch

    model = load_run_model(clip_run)
    clip = _clip(write_clip(tmp_path / "g.avi", step=3, frames=12), model)
    view = KeyFrameView(model, ClassifierPredictor(model), clip=clip, t=FRAMES - 1)
    same = view.proba(clip[FRAMES - 1][None])
    assert np.abs(same - model.predict_proba(clip[None])).max() < 1e-5  # its own frame: the clip's answer
    swapped = view.proba(np.stack([clip[0], np.zeros_like(clip[0])]))
    assert np.abs(swapped - same).max() > 1e-4  # another frame in its place moves the answer
    logits = view.logits_module()(torch.from_numpy(clip[FRAMES - 1:].astype(np.float32)).permute(0, 3, 1, 2))
    assert np.allclose(np.log(same[0]), torch.log_softmax(logits, 1).detach().numpy()[0], atol=1e-4)


def test_frame_deletion_is_scored_against_random_orders(clip_run, tmp_path):
    model = load_run_model(clip_run)
    clip = _clip(write_clip(tmp_path / "s.avi", step=-3, frames=12), model)
    k = int(model.predict_proba(clip[None])[0].argmax())
    scores = model.frame_scores(clip[None], target=k)[0]
    got = temporal_faithfulness(model, clip, scores, k)
    assert len(got["deletion"]) == FRAMES + 1 and got["deletion"][0] == pytest.approx(
        model.predict_proba(clip[None])[0, k], abs=1e-5)
    assert got["deletion"][1] <= got["deletion"][0] + 1e-6  # the top frame hidden first: never helps
    reversed_order = temporal_faithfulness(model, clip, -scores, k)  # the worst order
    assert got["deletion_auc"] <= reversed_order["deletion_auc"] + 1e-6


def test_explain_a_deep_clip_model_writes_strips_and_key_frame_maps(clip_run, tmp_path):
    clips = [write_clip(tmp_path / "in" / "g.avi", step=3, frames=12),
             write_frame_folder(tmp_path / "in" / "shrinking", step=-3, frames=10)]
    broken = tmp_path / "in" / "broken.avi"
    broken.write_bytes(b"RIFF\0\0\0\0AVI not a video")
    result = explain(clip_run, [str(tmp_path / "in")], methods="gradcam+occlusion", settings=FAST,
                     out=tmp_path / "out", progress=False)
    names = {r["path"].rsplit("/", 1)[-1] for r in result.images}
    assert names == {"g.avi", "shrinking"}  # the folder of frames is one clip
    assert [s["path"].rsplit("/", 1)[-1] for s in result.skipped] == ["broken.avi"]
    for entry in result.images:
        frames = entry["frames"]
        assert len(frames["scores"]) == FRAMES and frames["key_frame"] == int(np.argmax(frames["scores"]))
        assert (tmp_path / "out" / frames["strip"]).is_file()
        cam = np.load(tmp_path / "out" / entry["methods"]["gradcam"]["npy"])
        assert cam.shape == (32, 32) and np.isfinite(cam).all()
        assert set(entry["methods"]) == {"gradcam", "occlusion", "random"}
    assert result.temporal["n"] == 2 and 0 <= result.temporal["beats_random"] <= 1
    saved = json.loads((tmp_path / "out" / "explain.json").read_text())
    assert saved["temporal"] == result.temporal
    assert "Which frames mattered" in (tmp_path / "out" / "explain.html").read_text()
    with pytest.raises(ConfigError, match="randomisation check"):
        explain(clip_run, clips[:1], methods="gradcam", sanity=True, progress=False)


def test_a_classical_clip_model_gets_the_black_box_methods(tmp_path_factory, tmp_path):
    run = train_clip_run(tmp_path_factory, 4, 6, "model.name=sequence_classical", "model.features=hist")
    clip = write_clip(tmp_path / "g.avi", step=3, frames=12)
    with pytest.raises(ConfigError, match="gradcam"):
        explain(run, [clip], methods="gradcam", progress=False)
    result = explain(run, [clip], methods="occlusion", settings=FAST, out=tmp_path / "out", progress=False)
    entry = result.images[0]
    assert len(entry["frames"]["scores"]) == 4 and "occlusion" in entry["methods"]
