"""ONNX export: parity with PyTorch, int8, metadata, refusals that leave nothing half-written."""

import json

import numpy as np
import onnx
import pandas as pd
import pytest

import imgcls
from helpers import file_hashes, noise_image
from imgcls.core.errors import ConfigError, ModelError
from imgcls.deploy.exporting import export, list_formats
from imgcls.deploy.loading import load_predictor
from imgcls.deploy.predictors import OnnxPredictor
from imgcls.runs import EXPORT_JSON, Run


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory):
    """small_cnn on 3 shape classes, saved with hflip test-time augmentation (in the graph)."""
    out = tmp_path_factory.mktemp("export") / "run"
    return imgcls.train("shapes", model="small_cnn", out=out, progress=False,
                        overrides=["train.epochs=2", "model.image_size=32", "train.tta=hflip"]).path


@pytest.fixture(scope="module")
def exported(deep_run):
    return export(deep_run, quantize="int8", calibration=64, progress=False).report


def test_onnx_agrees_with_pytorch_on_the_test_split(deep_run, exported):
    parity = exported["parity"]
    assert parity["n"] == 75 and parity["top1_agreement"] == 1.0
    assert parity["max_abs_diff"] < 1e-4
    assert parity["accuracy_onnx"] == parity["accuracy_torch"]
    saved = json.loads((deep_run / "export" / EXPORT_JSON).read_text())
    assert saved["model_sha256"] == exported["model_sha256"]
    assert set(saved["files"]) == {"model.onnx", "model.int8.onnx"}


def test_graph_takes_uint8_nhwc_and_carries_its_metadata(deep_run, exported):
    model = onnx.load(str(deep_run / "export" / "model.onnx"))
    (inp,) = model.graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    assert dims[1:] == [32, 32, 3] and isinstance(dims[0], str)  # dynamic batch
    meta = json.loads({p.key: p.value for p in model.metadata_props}["imgcls"])
    assert meta["classes"] == ["circle", "square", "triangle"]
    assert meta["image_spec"]["size"] == 32 and meta["family"] == "small_cnn"


def test_onnx_predictor_prepares_raw_images_like_the_classifier(deep_run, exported):
    rng = np.random.default_rng(0)
    images = [noise_image(48, 40, seed=1), noise_image(20, 30, seed=2)[..., 0],
              rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)]  # colour, grey, other size
    fast, slow = load_predictor(deep_run), load_predictor(deep_run, backend="torch")
    assert (fast.backend, slow.backend) == ("onnx-fp32", "torch")
    assert fast.version == slow.version and len(fast.version) == 12  # one model, one version
    onnx_proba, torch_proba = fast.predict_images(images), slow.predict_images(images)
    np.testing.assert_allclose(onnx_proba, torch_proba, atol=1e-4)
    np.testing.assert_allclose(onnx_proba.sum(1), 1, atol=1e-5)


def test_int8_copy_is_reported_and_predicts(deep_run, exported, shapes_folder):
    int8 = exported["int8"]
    assert int8["calibration_images"] == 64 and int8["speedup"] > 0
    assert int8["accuracy_change"] == round(int8["accuracy_int8"] - int8["accuracy_fp32"], 4)
    assert int8["top1_agreement_with_fp32"] > 0.5  # a quantised copy of the same model, not noise
    predictor = load_predictor(deep_run, precision="int8")
    assert predictor.backend == "onnx-int8"
    table = imgcls.predict(deep_run, [shapes_folder], precision="int8", progress=False)
    assert len(table) == 36 and (table["error"] == "").all()


def test_predict_uses_the_export_and_matches_torch(deep_run, exported, shapes_folder, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    inputs = [shapes_folder, tmp_path / "broken.png"]
    fast = imgcls.predict(deep_run, inputs, progress=False, batch_size=5)
    slow = imgcls.predict(deep_run, inputs, progress=False, backend="torch")
    assert list(fast["path"]) == list(slow["path"])  # order kept across batches and failures
    assert fast["error"].iloc[-1] != "" and (fast["error"].iloc[:-1] == "").all()
    good = slice(0, -1)
    assert (fast["prediction"].iloc[good] == slow["prediction"].iloc[good]).all()
    np.testing.assert_allclose(fast["p1"].iloc[good].to_numpy(float),
                               slow["p1"].iloc[good].to_numpy(float), atol=1e-4)


def test_a_changed_model_makes_the_export_stale(deep_run, exported, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(deep_run, copy)
    onnx_file = copy / "export" / "model.onnx"
    assert Run.open(copy).export_is_current(onnx_file) and Run.open(copy).current_export() == onnx_file
    meta = copy / "model" / "model.json"
    meta.write_text(meta.read_text() + "\n")
    assert not Run.open(copy).export_is_current(onnx_file) and Run.open(copy).current_export() is None
    assert load_predictor(copy).backend == "torch"  # falls back instead of serving stale weights
    with pytest.raises(ModelError, match="no up-to-date"):
        load_predictor(copy, backend="onnx")


def test_a_bare_onnx_file_is_enough(deep_run, exported, tmp_path):
    import shutil

    lone = tmp_path / "model.onnx"
    shutil.copy(deep_run / "export" / "model.onnx", lone)
    predictor = load_predictor(lone)
    assert predictor.classes == ["circle", "square", "triangle"] and predictor.spec.size == 32
    assert predictor.predict_images([noise_image(32, 32)]).shape == (1, 3)


def test_disagreement_fails_loudly_and_writes_nothing(deep_run, tmp_path, monkeypatch):
    def shifted(self, batch):
        proba = self.session.run(None, {self.input_name: batch})[0]
        return np.roll(proba, 1, axis=1)

    monkeypatch.setattr(OnnxPredictor, "predict_proba", shifted)
    with pytest.raises(ModelError, match="disagrees with PyTorch"):
        export(deep_run, out=tmp_path / "out", progress=False)
    assert not any((tmp_path / "out").glob("*.onnx")) and not (tmp_path / "out" / EXPORT_JSON).exists()


@pytest.mark.parametrize("name", ["notes.txt", "model.onnx"])
def test_out_folder_with_other_files_is_refused(deep_run, tmp_path, name):
    (tmp_path / name).write_text("mine")  # a user's own model.onnx too: no export.json lists it
    before = file_hashes(tmp_path)
    with pytest.raises(ConfigError, match="holds other files"):
        export(deep_run, out=tmp_path, progress=False)
    assert file_hashes(tmp_path) == before


def test_a_failed_int8_step_leaves_no_current_export(deep_run, tmp_path, monkeypatch):
    import shutil

    import imgcls.deploy.exporting.onnx as onnx_module

    copy = tmp_path / "run"
    shutil.copytree(deep_run, copy)
    assert Run.open(copy).current_export("int8") is not None

    def broken(*args, **kwargs):
        raise RuntimeError("calibration exploded")

    monkeypatch.setattr(onnx_module, "_quantize", broken)
    with pytest.raises(ModelError, match="int8 quantisation failed"):
        export(copy, quantize="int8", progress=False)
    assert Run.open(copy).current_export() is None and Run.open(copy).current_export("int8") is None
    assert load_predictor(copy).backend == "torch"  # never a mix of new and old files


def test_a_model_folder_exports_beside_itself(deep_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(deep_run, copy, ignore=shutil.ignore_patterns("export"))
    predictor = load_predictor(copy / "model", export=True)
    assert predictor.backend == "onnx-fp32" and (copy / "export" / "model.onnx").is_file()


def test_missing_data_names_the_way_out(deep_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(deep_run, copy, ignore=shutil.ignore_patterns("export"))
    config = copy / "config.yaml"
    config.write_text(config.read_text().replace("source: shapes", f"source: {tmp_path / 'gone'}"))
    with pytest.raises(ModelError, match="--data"):
        export(copy, progress=False)


def test_classical_models_are_refused_with_a_reason(tmp_path):
    run = imgcls.train("shapes", model="logistic_regression", features="edges", out=tmp_path / "run",
                       progress=False, overrides=["model.image_size=32"])
    with pytest.raises(ModelError, match="classical model"):
        export(run.path, progress=False)
    assert load_predictor(run.path).backend == "sklearn"  # still served, in-process
    with pytest.raises(ModelError, match="classical"):
        load_predictor(run.path, backend="onnx", export=True)


def test_unknown_format_and_quantisation_are_config_errors(deep_run):
    assert [f.name for f in list_formats()][:3] == ["onnx", "openvino", "web"]
    with pytest.raises(ConfigError, match="Unknown export format 'onxx'.*onnx"):
        export(deep_run, "onxx")
    with pytest.raises(ConfigError, match="'quantize'"):
        export(deep_run, quantize="int4")


def test_linear_probe_head_is_exported_exactly(tmp_path):
    """The scikit-learn head becomes a linear layer; a binary one as logits (-z/2, z/2)."""
    from imgcls.data.builtins import make_shapes, write_image_folder

    shapes = make_shapes(n_per_class=16, size=48, seed=1)
    two = shapes.subset(np.flatnonzero(shapes.labels != "triangle"))
    folder = write_image_folder(two, tmp_path / "two")
    run = imgcls.train(str(folder), model="tf_efficientnet_lite0", out=tmp_path / "run", progress=False,
                       overrides=["model.mode=linear-probe", "model.image_size=64"])
    report = export(run.path, progress=False).report
    assert report["parity"]["top1_agreement"] == 1.0 and report["parity"]["max_abs_diff"] < 1e-3


def test_cli_export_and_predict(deep_run, exported, shapes_folder, tmp_path):
    import os
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "imgcls", *map(str, args)], capture_output=True,
                              text=True, env={**os.environ, "COLUMNS": "200"}, timeout=300)

    listed = cli("export", "--list")
    assert listed.returncode == 0 and "onnx" in listed.stdout and "int8" in listed.stdout
    result = cli("export", deep_run, "--out", tmp_path / "exp", "-q")
    assert result.returncode == 0, result.stderr
    assert "model.onnx" in result.stdout and (tmp_path / "exp" / "model.onnx").is_file()
    out = tmp_path / "p.csv"
    result = cli("predict", tmp_path / "exp" / "model.onnx", shapes_folder, "-o", out, "-q")
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(out)) == 36
    missing = cli("predict", tmp_path / "exp", shapes_folder, "--precision", "int8", "-q")
    assert missing.returncode == 1 and "error:" in missing.stderr
    bad = cli("export", tmp_path / "nowhere")
    assert bad.returncode == 1 and "nowhere" in bad.stderr


def test_tta_views_can_be_dropped_at_export(deep_run, exported, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(deep_run, copy)
    before = file_hashes(copy / "export")
    report = export(copy, tta="none", progress=False).report
    assert exported["tta"] == "hflip" and report["tta"] == "none"
    assert report["parity"]["top1_agreement"] == 1.0  # against PyTorch without the views too
    assert file_hashes(copy / "export") == before  # RUN/export, what predict uses, is unchanged
    with_views = onnx.load(str(copy / "export" / "model.onnx"))
    without = onnx.load(str(copy / "export-tta-none" / "model.onnx"))
    assert len(without.graph.node) < len(with_views.graph.node)
    with pytest.raises(ConfigError, match="'tta'"):
        export(deep_run, tta="rot90")


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    """small_cnn with a validation split: a temperature and a knn unknown detector, hflip TTA."""
    out = tmp_path_factory.mktemp("export-tuned") / "run"
    return imgcls.train("shapes", model="small_cnn", out=out, progress=False,
                        overrides=["train.epochs=2", "model.image_size=32", "train.tta=hflip",
                                   "split.val=0.2"])


def test_calibration_and_unknown_score_are_in_the_graph(tuned_run):
    clf = tuned_run.model
    assert clf.calibration_ is not None and clf.calibration_.temperature != 1.0
    assert clf.unknown_.method == "knn" and clf.unknown_.metric == "cosine"
    report = export(tuned_run.path, progress=False).report
    assert report["parity"]["max_abs_diff"] < 1e-4  # the calibrated probabilities
    assert report["parity"]["unknown"]["max_abs_diff"] < 1e-4
    model = onnx.load(str(tuned_run.path / "export" / "model.onnx"))
    assert [o.name for o in model.graph.output] == ["probabilities", "label", "unknown_score"]
    graph = OnnxPredictor(tuned_run.path / "export" / "model.onnx")
    assert graph.unknown["threshold"] == clf.unknown_.threshold
    images = np.stack([noise_image(32, 32, seed=s) for s in range(4)])
    proba, scores = graph.predict_outputs(images)
    expected, expected_scores = clf.predict_with_unknown(images)
    assert np.allclose(proba, expected, atol=1e-4) and np.allclose(scores, expected_scores, atol=1e-4)
    assert load_predictor(tuned_run.path).backend == "onnx-fp32"  # predict and serve now run the graph


def test_an_ensemble_of_calibrated_networks_exports_with_their_temperatures(deep_run, tuned_run, tmp_path):
    run = imgcls.train("shapes", model="ensemble", out=tmp_path / "ens", progress=False,
                       overrides=[f"model.members=[{tuned_run.path},{deep_run}]", "model.image_size=32"])
    assert run.model.members_[0].calibration_ is not None
    report = export(run.path, progress=False).report  # raises when the graph and the model disagree
    assert report["parity"]["max_abs_diff"] < 1e-4


def test_a_multi_label_graph_has_sigmoids_and_each_labels_threshold(tmp_path):
    run = imgcls.train("shapes_multi", model="small_cnn", out=tmp_path / "multi", progress=False,
                       overrides=["train.epochs=2", "model.image_size=32"])
    clf = run.model
    report = export(run.path, progress=False).report
    assert report["parity"]["max_abs_diff"] < 1e-4 and report["parity"]["label_agreement"] == 1.0
    graph = OnnxPredictor(run.path / "export" / "model.onnx")
    assert graph.multilabel and graph.decision.thresholds == clf.decision_.thresholds
    images = np.stack([noise_image(32, 32, seed=s) for s in range(6)])
    proba = graph.predict_proba(images)
    assert np.allclose(proba, clf.predict_proba(images), atol=1e-4)
    assert not np.allclose(proba.sum(axis=1), 1.0)  # a sigmoid per label
    chosen = graph.graph_labels(images)
    assert chosen.shape == (6, 3) and (chosen == clf.decision_.chosen(proba)).all()
    assert graph.decide(proba).tolist() == clf.predict(images).tolist()
