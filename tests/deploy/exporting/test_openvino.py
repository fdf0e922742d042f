"""OpenVINO IR export: converted from the verified ONNX graph, parity-checked, metadata inside."""

import json

import numpy as np
import pytest

import imgcls
from imgcls.deploy.exporting import export, list_formats
from imgcls.runs import EXPORT_JSON

ov = pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("openvino") / "run"
    return imgcls.train("shapes", model="small_cnn", out=out, progress=False,
                        overrides=["train.epochs=1", "model.image_size=32", "cache=false"]).path


def test_openvino_agrees_with_pytorch_and_carries_the_metadata(deep_run):
    assert "openvino" in [f.name for f in list_formats()]
    result = export(deep_run, "openvino", progress=False)
    report = result.report
    assert report["format"] == "openvino" and report["openvino"]["disagreements"] == 0
    assert report["openvino"]["max_abs_diff"] < 1e-3 and report["openvino"]["images_per_s"] > 0
    assert {"model.onnx", "model.xml", "model.bin"} <= set(report["files"])
    saved = json.loads((result.path / EXPORT_JSON).read_text())
    assert saved["files"]["model.xml"]["runtime"] == "openvino"
    model = ov.Core().read_model(str(result.path / "model.xml"))
    meta = json.loads(model.get_rt_info(["imgcls", "metadata"]).astype(str))
    assert meta["classes"] == ["circle", "square", "triangle"] and meta["image_spec"]["size"] == 32
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    images = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3)).astype(np.uint8)
    proba = compiled(images)[compiled.outputs[0]]
    expected = imgcls.load_model(deep_run).predict_proba(images)
    assert np.abs(proba - expected).max() < 1e-3
    again = export(deep_run, "onnx", progress=False)  # an ONNX export removes the stale IR
    assert not (again.path / "model.xml").exists() and (again.path / "model.onnx").exists()
