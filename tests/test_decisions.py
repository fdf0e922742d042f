"""Ordered grades and decision targets end to end: tuned at training, saved with the model, used
by evaluate, predict, the server and the ONNX export alike."""

import json

import numpy as np
import pytest
from PIL import Image

import imgcls
from helpers import wait_ready
from imgcls.runs import Run


@pytest.fixture(scope="module")
def grades_folder(tmp_path_factory):
    """Four brightness grades, 0 to 3, as class folders: ordered, numeric labels."""
    root = tmp_path_factory.mktemp("grades")
    rng = np.random.default_rng(0)
    for grade in range(4):
        for k in range(24):
            level = 40 + 55 * grade + rng.normal(0, 18)
            pixels = np.clip(rng.normal(level, 25, (24, 24)), 0, 255).astype(np.uint8)
            (root / str(grade)).mkdir(exist_ok=True)
            Image.fromarray(pixels).save(root / str(grade) / f"{k:02d}.png")
    return root


@pytest.fixture(scope="module")
def two_class_folder(tmp_path_factory, shapes_small):
    from imgcls.data.builtins import write_image_folder

    root = write_image_folder(shapes_small, tmp_path_factory.mktemp("two") / "all")
    import shutil

    shutil.rmtree(root / "triangle")
    return root


def test_ordered_grades_are_learnt_cut_and_scored(grades_folder, tmp_path):
    run = imgcls.train(str(grades_folder), model="logistic_regression", features="hist", out=tmp_path / "run",
                       overrides=["task.kind=ordinal"], progress=False)
    assert run.config.task.order == ["0", "1", "2", "3"] and run.config.decision.target == "kappa"
    decision = run.metrics["decision"]
    assert decision["kind"] == "ordinal" and len(decision["cuts"]) == 3
    ordinal = run.metrics["test"]["ordinal"]
    assert ordinal["qwk"] > 0.8 and ordinal["qwk_ci"][0] <= ordinal["qwk"] <= ordinal["qwk_ci"][1]
    assert "quadratic-weighted kappa" in (run.path / "report.html").read_text()
    assert "Quadratic-weighted kappa" in (run.path / "model_card.md").read_text()
    # the saved rule decides again after loading, and predict uses it
    model = imgcls.load_model(run.path)
    assert model.decision_.kind == "ordinal"
    table = imgcls.predict(run.path, [grades_folder / "3"], progress=False)
    assert (table["prediction"] == "3").mean() >= 0.7


def test_without_a_declared_order_the_task_is_unordered(grades_folder, tmp_path):
    run = imgcls.train(str(grades_folder), model="logistic_regression", features="hist", out=tmp_path / "r",
                       progress=False)
    assert run.config.task.kind == "single" and "ordinal" not in run.metrics["test"]
    assert "decision" not in run.metrics


def test_a_network_learns_grades_with_soft_ordinal_targets(grades_folder, tmp_path):
    run = imgcls.train(str(grades_folder), model="small_cnn", out=tmp_path / "cnn", progress=False,
                       overrides=["task.kind=ordinal", "model.image_size=16", "train.epochs=2",
                                  "train.batch_size=16"])
    meta = json.loads((run.path / "model" / "model.json").read_text())
    assert meta["order"] == ["0", "1", "2", "3"] and meta["resolved"]["grades"] == [0, 1, 2, 3]
    assert meta["decision"]["kind"] == "ordinal"


def test_a_recall_target_is_part_of_the_model_everywhere(two_class_folder, tmp_path):
    from fastapi.testclient import TestClient

    from imgcls.config import ServeConfig
    from imgcls.serve import create_app

    run = imgcls.train(str(two_class_folder), model="small_cnn", out=tmp_path / "run", progress=False,
                       overrides=["model.image_size=16", "train.epochs=2", "train.batch_size=8",
                                  "decision.target=recall:square=0.95"])
    rule = run.metrics["decision"]
    assert rule["kind"] == "threshold" and rule["positive"] == "square"
    assert rule["validation"]["recall"] >= 0.95
    test = run.metrics["test"]["per_class"]["square"]
    assert test["recall_ci"][0] <= test["recall"] <= test["recall_ci"][1]
    assert "precision-recall curve" in (run.path / "report.html").read_text()
    # the table's prediction follows the rule, not the most probable class
    predictions = Run.open(run.path).predictions()
    p_square = predictions["p_square"].astype(float).to_numpy()  # rounded to 6 decimals
    clear = np.abs(p_square - rule["threshold"]) > 1e-5
    expected = np.where(p_square >= rule["threshold"], "square", "circle")
    assert (predictions["prediction"].to_numpy()[clear] == expected[clear]).all()
    # the export carries it: the graph's label output and the ONNX predictor decide alike
    exported = imgcls.export(run.path, progress=False)
    assert exported.parity["label_agreement"] == 1.0
    onnx = imgcls.load_predictor(run.path)
    assert onnx.backend.startswith("onnx") and onnx.decision.threshold == pytest.approx(rule["threshold"])
    files = sorted(two_class_folder.rglob("*.png"))[:6]
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    from imgcls.data import prepare_images

    batch = prepare_images(images, onnx.spec)
    assert (onnx.graph_labels(batch) == np.array([onnx.classes.index(x) for x in
                                                  onnx.decide(onnx.predict_proba(batch))])).all()
    # the server answers with the decided label
    client = TestClient(create_app(ServeConfig(models=[str(run.path)], api_key=None, max_wait_ms=0)))
    with client:
        wait_ready(client)  # the model loads in the background; a busy machine may not have it yet
        body = client.post("/v1/predict", files=[("files", (f.name, f.read_bytes(), "image/png"))
                                                 for f in files]).json()
    labels = [r["label"] for r in body["results"]]
    assert labels == list(onnx.decide(onnx.predict_images(images)))


def test_a_search_on_ordered_grades_selects_on_kappa_and_cuts_before_the_refit(grades_folder, tmp_path):
    result = imgcls.search(str(grades_folder), budget="60s", trials=3, families="classical",
                           out=tmp_path / "s", overrides=["task.kind=ordinal"], progress=False)
    assert result.summary["metric"] == "kappa" and "kappa" in result.summary["best_test"]
    run = result.best_run
    assert run.config.task.kind == "ordinal" and run.metrics["decision"]["kind"] == "ordinal"
    assert imgcls.load_model(run.path).decision_.kind == "ordinal"  # the cut points travel with the model
    assert run.metrics["search"]["refitted"].split(" of ")[0] != "0"
    with pytest.raises(imgcls.ConfigError, match="metric=kappa needs ordered grades"):
        imgcls.search(str(grades_folder), metric="kappa", out=tmp_path / "t", budget="5s")


def test_a_search_with_a_recall_target_keeps_the_threshold(two_class_folder, tmp_path):
    result = imgcls.search(str(two_class_folder), budget="60s", trials=3, families="classical",
                           out=tmp_path / "s", overrides=["decision.target=recall:circle=0.9"],
                           progress=False)
    decision = result.best_run.metrics["decision"]
    assert decision["kind"] == "threshold" and decision["positive"] == "circle"
    assert imgcls.load_model(result.best_run.path).decision_.kind == "threshold"
