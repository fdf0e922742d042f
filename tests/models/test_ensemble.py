"""Ensembles of fitted models of any families: greedy weights, mixed image specs, a run like any
other, and an ONNX export when every member has a network."""

import numpy as np
import pytest

import imgcls
from imgcls.core.errors import ConfigError, ModelError
from imgcls.models.ensemble import greedy_selection

TINY = ["model.image_size=16", "train.epochs=2", "train.batch_size=8", "split.val=0.2"]


def test_greedy_selection_picks_members_that_fix_each_others_errors():
    y = np.array([0, 0, 1, 1] * 25)
    left = np.where(np.arange(100)[:, None] < 50, np.eye(2)[y] * 0.8 + 0.1, 0.5)  # right on half
    right = np.where(np.arange(100)[:, None] >= 50, np.eye(2)[y] * 0.8 + 0.1, 0.5)
    noise = np.full((100, 2), 0.5)
    weights = greedy_selection([left, right, noise], y, lambda p: float(np.mean(p.argmax(1) == y)))
    assert weights[2] == 0 and weights[0] > 0 and weights[1] > 0 and weights.sum() == pytest.approx(1)


@pytest.fixture(scope="module")
def member_runs(shapes_small, tmp_path_factory):
    from imgcls.data.builtins import write_image_folder

    root = tmp_path_factory.mktemp("ens")
    data = write_image_folder(shapes_small, root / "data")
    runs = {"svm": imgcls.train(str(data), model="svm", features="hog+color", out=root / "svm",
                                overrides=["split.val=0.2"], progress=False),
            "cnn": imgcls.train(str(data), model="small_cnn", out=root / "cnn", overrides=TINY,
                                progress=False),
            "cnn2": imgcls.train(str(data), model="small_cnn", out=root / "cnn2", progress=False,
                                 overrides=[*TINY, "split.seed=0", "train.lr=0.001"])}
    return data, runs


def test_a_hand_built_ensemble_of_both_schools_is_a_normal_run(member_runs, tmp_path):
    data, runs = member_runs
    members = f"model.members=[{runs['svm'].path},{runs['cnn'].path}]"
    run = imgcls.train(str(data), model="ensemble", out=tmp_path / "ens",
                       overrides=[members, "split.val=0.2"], progress=False)
    model = run.model
    assert model.image_spec.size == 32 and len(model.weights_) == 2  # the largest member's size
    assert run.metrics["model"]["school"] == "ensemble"
    again = imgcls.load_model(run.path)
    assert np.allclose(again.weights_, model.weights_)
    table = imgcls.predict(run.path, [data / "circle"], progress=False)
    assert len(table) == 12 and (table["error"] == "").all()
    assert imgcls.evaluate(run.path, progress=False).metrics["n"] == run.metrics["test"]["n"]
    with pytest.raises(ModelError, match="cannot be exported to ONNX: its members svm"):
        imgcls.export(run.path, progress=False)
    # black-box explanations and audits, as for any model; gradient methods say what they need
    one = sorted((data / "circle").iterdir())[0]
    explained = imgcls.explain(run.path, [one], methods="occlusion", progress=False)
    assert explained.images and "occlusion" in explained.summary
    with pytest.raises(ConfigError, match="needs a deep model"):
        imgcls.explain(run.path, [one], methods="gradcam", progress=False)
    files = sorted(data.glob("*/*.png"))
    manifest = tmp_path / "sites.csv"
    manifest.write_text("path,label,site\n" + "".join(f"{f},{f.parent.name},{'ab'[k % 2]}\n"
                                                     for k, f in enumerate(files)))
    audit = imgcls.audit(run.path, manifest, group_by="site", min_group_size=1, n_boot=50, progress=False)
    assert set(audit.report["groups"]) == {"a", "b"} and audit.gap is not None


def test_an_ensemble_of_networks_exports_with_parity(member_runs, tmp_path):
    data, runs = member_runs
    members = f"model.members=[{runs['cnn'].path},{runs['cnn2'].path}]"
    run = imgcls.train(str(data), model="ensemble", out=tmp_path / "ens",
                       overrides=[members, "split.val=0.2"], progress=False)
    report = imgcls.export(run.path, progress=False).report
    assert report["parity"]["top1_agreement"] == 1.0 and report["parity"]["max_abs_diff"] < 1e-4
    assert imgcls.load_predictor(run.path).backend == "onnx-fp32"


def test_members_must_know_the_same_classes(member_runs, tmp_path):
    data, runs = member_runs
    import shutil

    two = tmp_path / "two"
    for label in ("circle", "square"):
        shutil.copytree(data / label, two / label)
    other = imgcls.train(str(two), model="logistic_regression", features="hist", out=tmp_path / "o",
                         progress=False)
    with pytest.raises(ConfigError, match="same classes"):
        imgcls.train(str(data), model="ensemble", out=tmp_path / "e", progress=False,
                     overrides=[f"model.members=[{runs['svm'].path},{other.path}]"])
    with pytest.raises(ConfigError, match="model.members"):
        imgcls.train(str(data), model="ensemble", out=tmp_path / "e2", progress=False)


def test_grey_images_reach_members_that_want_one_channel_and_three(member_runs, tmp_path):
    from PIL import Image

    data, _ = member_runs
    grey = tmp_path / "grey"
    for f in data.glob("*/*.png"):
        (grey / f.parent.name).mkdir(parents=True, exist_ok=True)
        Image.open(f).convert("L").save(grey / f.parent.name / f.name)
    svm = imgcls.train(str(grey), model="svm", features="hog+hist", out=tmp_path / "svm", progress=False)
    cnn = imgcls.train(str(grey), model="small_cnn", out=tmp_path / "cnn", overrides=TINY, progress=False)
    assert svm.model.image_spec.channels == 1 and cnn.model.image_spec.channels == 3
    run = imgcls.train(str(grey), model="ensemble", out=tmp_path / "ens", progress=False,
                       overrides=[f"model.members=[{svm.path},{cnn.path}]", "split.val=0.2"])
    assert run.metrics["test"]["n"] > 0 and len(run.model.weights_) == 2


def test_probes_on_one_backbone_embed_the_images_once(member_runs, tmp_path, monkeypatch):
    from imgcls.models.probe import ProbeClassifier

    data, _ = member_runs
    probes = [imgcls.train(str(data), model="tf_efficientnet_lite0", out=tmp_path / f"p{c}", progress=False,
                           overrides=["model.mode=linear-probe", "model.image_size=32", f"model.params.C={c}",
                                      "split.val=0.2", "cache=false"]) for c in (0.01, 10.0)]
    run = imgcls.train(str(data), model="ensemble", out=tmp_path / "ens", progress=False,
                       overrides=[f"model.members=[{probes[0].path},{probes[1].path}]", "split.val=0.2"])
    model = imgcls.load_model(run.path)
    assert all(m.runtime.cache_dir is None for m in model.members_)  # no disk cache to share them
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    batches = []
    run_backbone = ProbeClassifier._run_backbone
    monkeypatch.setattr(ProbeClassifier, "_run_backbone",
                        lambda self, x: batches.append(len(x)) or run_backbone(self, x))
    proba = model.predict_proba(images)
    assert batches == [5]
    alone = sum(w * m.predict_proba(images) for w, m in zip(model.weights_, model.members_, strict=True))
    assert batches == [5, 5, 5] and np.allclose(proba, alone, atol=1e-5)


@pytest.fixture(scope="module")
def multilabel_members(tmp_path_factory):
    root = tmp_path_factory.mktemp("ens-multi")
    cnn = [imgcls.train("shapes_multi", model="small_cnn", out=root / f"cnn{k}", progress=False,
                        overrides=[*TINY, f"split.seed={k}", "model.image_size=32"]) for k in range(2)]
    linear = imgcls.train("shapes_multi", model="logistic_regression", features="edges+color",
                          out=root / "lr", progress=False, overrides=["split.val=0.2"])
    return root, cnn, linear


def test_an_ensemble_of_multi_label_models_averages_labels_and_tunes_thresholds(multilabel_members, tmp_path):
    _, cnn, linear = multilabel_members
    run = imgcls.train("shapes_multi", model="ensemble", out=tmp_path / "ens", progress=False,
                       overrides=[f"model.members=[{cnn[0].path},{linear.path}]", "split.val=0.2"])
    model = run.model
    assert model.is_multilabel and run.metrics["test"]["task"] == "multilabel"
    assert model.decision_.kind == "multilabel" and len(model.decision_.thresholds) == 3
    assert model.unknown_ is None  # per-label probabilities and no representation: no unknown score
    size = model.image_spec.size
    images = np.random.default_rng(0).integers(0, 256, (4, size, size, 3), dtype=np.uint8)
    alone = sum(w * m.predict_proba(imgcls.prepare_images(images, m.image_spec))
                for w, m in zip(model.weights_, model.members_, strict=True))
    assert np.allclose(model.predict_proba(images), alone, atol=1e-5)
    again = imgcls.load_model(run.path)
    assert again.is_multilabel and np.allclose(again.weights_, model.weights_)
    table = imgcls.predict(run.path, ["shapes_multi"], limit=5, progress=False)
    assert set("|".join(table["prediction"]).split("|")) <= {"circle", "square", "triangle", ""}


def test_a_multi_label_ensemble_of_networks_exports_with_parity(multilabel_members, tmp_path):
    _, cnn, _ = multilabel_members
    run = imgcls.train("shapes_multi", model="ensemble", out=tmp_path / "ens", progress=False,
                       overrides=[f"model.members=[{cnn[0].path},{cnn[1].path}]", "split.val=0.2"])
    report = imgcls.export(run.path, progress=False).report
    assert report["parity"]["top1_agreement"] == 1.0 and report["parity"]["max_abs_diff"] < 1e-4


def test_members_must_all_be_multi_label_or_none(multilabel_members, member_runs, tmp_path):
    _, cnn, _ = multilabel_members
    _, runs = member_runs
    with pytest.raises(ConfigError, match="mix multi-label and single-label"):
        imgcls.train("shapes_multi", model="ensemble", out=tmp_path / "e", progress=False,
                     overrides=[f"model.members=[{cnn[0].path},{runs['cnn'].path}]"])
