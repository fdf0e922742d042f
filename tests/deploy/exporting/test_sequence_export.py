"""A sequence model exports as two ONNX graphs, encoder and temporal head, checked together."""

from __future__ import annotations

import json

import numpy as np
import pytest

import imgcls
from helpers import train_clip_run
from imgcls.core.errors import ConfigError
from imgcls.deploy.exporting import export
from imgcls.runs import EXPORT_JSON

FRAMES = 5


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    return train_clip_run(tmp_path_factory, FRAMES, 8, "model.params.temporal=attention")


def test_the_two_graphs_answer_as_the_model_does(clip_run):
    import onnxruntime as ort

    result = export(clip_run, progress=False)
    report = json.loads((result.path / EXPORT_JSON).read_text())
    assert report["kind"] == "sequence" and report["parity"]["disagreements"] == 0
    assert report["parity"]["max_abs_diff"] < 1e-4
    assert set(report["files"]) == {"encoder.onnx", "temporal.onnx"}
    encoder = ort.InferenceSession(str(result.path / "encoder.onnx"))
    temporal = ort.InferenceSession(str(result.path / "temporal.onnx"))
    meta = json.loads(encoder.get_modelmeta().custom_metadata_map["imgcls"])
    assert meta["graph"] == "encoder" and meta["image_spec"]["frames"] == FRAMES
    assert meta["classes"] == ["grow", "shrink"] and meta["temporal"] == "attention"  # as asked, not auto
    clips = np.random.default_rng(0).integers(0, 255, (3, FRAMES, 32, 32, 3)).astype(np.uint8)
    embeddings = encoder.run(None, {"frames": clips.reshape(-1, 32, 32, 3)})[0].reshape(3, FRAMES, -1)
    proba = temporal.run(None, {"embeddings": embeddings})[0]
    assert np.abs(proba - imgcls.load_model(clip_run).predict_proba(clips)).max() < 1e-4
    from imgcls.deploy.loading import load_predictor

    assert load_predictor(clip_run).backend == "torch"  # predict and serve stay in-process


def test_other_formats_and_int8_are_refused_with_the_way_out(clip_run):
    with pytest.raises(ConfigError, match="ONNX only"):
        export(clip_run, "web", progress=False)
    with pytest.raises(ConfigError, match="fp32 only"):
        export(clip_run, quantize="int8", progress=False)


def test_a_classical_clip_model_says_why_it_has_no_graph(tmp_path_factory):
    from imgcls.core.errors import ModelError

    run = train_clip_run(tmp_path_factory, 4, 4, "model.name=sequence_classical", "model.features=hist")
    with pytest.raises(ModelError, match="no network to export.*model.name=sequence"):
        export(run, progress=False)
    assert not (run / "export" / "encoder.onnx").exists()
