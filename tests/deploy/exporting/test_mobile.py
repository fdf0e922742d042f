"""Mobile and edge formats: LiteRT, ExecuTorch (both run here, so parity-checked) and Core ML
(converted here, its interface and metadata checked; it predicts only on Apple systems)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import imgcls
from imgcls.core.errors import ConfigError
from imgcls.deploy.exporting import export
from imgcls.runs import EXPORT_JSON

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mobile") / "run"
    return imgcls.train("shapes", model="small_cnn", out=out, progress=False,
                        overrides=["train.epochs=2", "model.image_size=32", "cache=false"]).path


def _images(n: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 255, (n, 32, 32, 3)).astype(np.uint8)


def test_litert_agrees_with_pytorch_at_any_batch_and_int8_is_reported(deep_run):
    pytest.importorskip("litert_torch")
    from imgcls.deploy.exporting.litert_format import LiteRTRunner

    result = export(deep_run, "litert", quantize="int8", calibration=16, progress=False)
    section = json.loads((result.path / EXPORT_JSON).read_text())["litert"]
    assert section["disagreements"] == 0 and section["max_abs_diff"] < 1e-4 and section["n"] > 20
    assert set(section["int8"]) >= {"accuracy_change", "top1_agreement_with_fp32", "speedup"}
    assert {"model.onnx", "model.tflite", "model.int8.tflite", "model.tflite.json"} <= set(result.files)
    assert result.files["model.int8.tflite"]["bytes"] < result.files["model.tflite"]["bytes"] / 2
    meta = json.loads((result.path / "model.tflite.json").read_text())
    assert meta["classes"] == CLASSES and meta["image_spec"]["size"] == 32
    expected = imgcls.load_model(deep_run).predict_proba(_images(5))
    runner = LiteRTRunner(result.path / "model.tflite")
    for batch in (5, 1):  # the graph's batch of one, resized
        got = runner(_images(5)[:batch])
        assert np.abs(got - expected[:batch]).max() < 1e-4
    int8 = LiteRTRunner(result.path / "model.int8.tflite")(_images(5))
    assert int8.shape == (5, 3) and np.allclose(int8.sum(1), 1, atol=0.05)  # dequantised probabilities


def test_executorch_agrees_with_pytorch_and_keeps_a_dynamic_batch(deep_run):
    pytest.importorskip("executorch")
    from imgcls.deploy.exporting.executorch_format import ExecuTorchRunner

    result = export(deep_run, "executorch", quantize="int8", calibration=16, progress=False)
    section = result.report["executorch"]
    assert section["disagreements"] == 0 and section["max_abs_diff"] < 1e-4
    assert section["backend"] == "xnnpack"
    assert section["int8"]["top1_agreement_with_fp32"] > 0.5
    assert not (result.path / "model.tflite").exists()  # the earlier LiteRT files are not vouched for now
    expected = imgcls.load_model(deep_run).predict_proba(_images(40))
    runner = ExecuTorchRunner(result.path / "model.pte")
    for n in (1, 7, 40):
        assert np.abs(runner(_images(40)[:n]) - expected[:n]).max() < 1e-4
    assert json.loads((result.path / "model.pte.json").read_text())["method"] == "forward"


def test_coreml_package_has_the_interface_and_metadata_a_phone_needs(deep_run):
    ct = pytest.importorskip("coremltools")
    result = export(deep_run, "coreml", progress=False)
    section = result.report["coreml"]
    package = result.path / "model.mlpackage"
    assert package.is_dir() and result.files["model.mlpackage"]["bytes"] > 10_000
    assert section["inputs"][0]["dtype"] == "INT32" and section["inputs"][0]["shape"][1:] == [32, 32, 3]
    assert section["inputs"][0]["batch"] == [1, 64]
    assert [o["name"] for o in section["outputs"]] == ["probabilities", "label"]
    spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    meta = json.loads(spec.description.metadata.userDefined["imgcls"])
    assert meta["classes"] == CLASSES and "int32" in meta["input"]
    if sys.platform != "darwin":
        assert section["parity"].startswith("not run")
    again = export(deep_run, "onnx", progress=False)  # a folder it no longer vouches for is removed
    assert not (again.path / "model.mlpackage").exists()


@pytest.mark.parametrize(("fmt", "module"), [("litert", "litert_torch"), ("executorch", "executorch"),
                                              ("coreml", "coremltools")])
def test_a_missing_converter_says_how_to_install_it(deep_run, monkeypatch, fmt, module):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(ConfigError, match=rf"pip install 'imgcls\[{fmt}\]'"):
        export(deep_run, fmt, progress=False)
