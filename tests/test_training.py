"""End to end: images in, a classical model trained, evaluated, saved and reloaded."""

import json

import numpy as np
import pandas as pd
import pytest

import imgcls
from helpers import file_hashes, write_bomb_png, write_empty, write_text_as_png, write_truncated_jpeg
from imgcls.core.errors import ConfigError, DataError
from imgcls.runs import Run


@pytest.fixture
def defective_folder(shapes_folder):
    write_truncated_jpeg(shapes_folder / "circle" / "truncated.jpg")
    write_empty(shapes_folder / "square" / "empty.png")
    write_text_as_png(shapes_folder / "triangle" / "notes.png")
    write_bomb_png(shapes_folder / "circle" / "bomb.png")
    (shapes_folder / "circle" / ".hidden.png").write_bytes(b"x")
    (shapes_folder / "square" / "readme.txt").write_text("not an image")
    return shapes_folder


def test_folder_with_bad_files_trains_and_lists_them(defective_folder, tmp_path):
    before = file_hashes(defective_folder)
    run = imgcls.train(str(defective_folder), model="logistic_regression",
                       out=tmp_path / "run", progress=False)
    skipped = pd.read_csv(run.path / "skipped.csv")
    reasons = dict(zip(skipped["path"], skipped["reason"], strict=True))
    assert set(reasons) == {"circle/truncated.jpg", "square/empty.png", "triangle/notes.png",
                            "circle/bomb.png"}
    assert "truncated" in reasons["circle/truncated.jpg"]
    assert "empty" in reasons["square/empty.png"]
    assert "text" in reasons["triangle/notes.png"]
    assert "decompression bomb" in reasons["circle/bomb.png"]
    assert file_hashes(defective_folder) == before
    summary = run.metrics["dataset"]
    assert summary["ignored"] == {"hidden": 1, "not_image": 1}
    assert "square/empty.png" in (run.path / "report.html").read_text()


def test_run_folder_is_complete_and_reloads(shapes_folder, tmp_path):
    run = imgcls.train(str(shapes_folder), model="svm", features="edges+lbp",
                       out=tmp_path / "run", overrides=["split.test=0.3"], progress=False)
    for name in ("config.yaml", "metrics.json", "report.html", "predictions.csv", "skipped.csv",
                 "model/model.json", "model/model.skops"):
        assert (run.path / name).is_file(), name
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert metrics["test"]["n"] == len(pd.read_csv(run.path / "predictions.csv"))
    assert metrics["test"]["accuracy"] >= 0.7
    reopened = Run.open(run.path)
    assert reopened.config.split.test == 0.3 and reopened.config.model.features == "edges+lbp"
    model = imgcls.load_model(run.path)
    table = pd.read_csv(run.path / "predictions.csv")
    images = [np.asarray(__import__("PIL.Image").Image.open(shapes_folder / p)) for p in table.path]
    assert (model.predict(images) == table["prediction"]).all()


def test_report_is_self_contained(shapes_folder, tmp_path):
    run = imgcls.train(str(shapes_folder), model="knn", features="color",
                       out=tmp_path / "run", progress=False)
    html = (run.path / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html
    for section in ("confusion matrix", "Per class", "Worst errors", "reliability", "Dataset"):
        assert section.lower() in html.lower(), section


def test_existing_out_folder_needs_overwrite(shapes_folder, tmp_path):
    imgcls.train(str(shapes_folder), model="knn", features="hist", out=tmp_path / "r",
                 progress=False)
    with pytest.raises(ConfigError, match="overwrite"):
        imgcls.train(str(shapes_folder), model="knn", features="hist", out=tmp_path / "r",
                     progress=False)
    imgcls.train(str(shapes_folder), model="knn", features="hist", out=tmp_path / "r",
                 overwrite=True, progress=False)


def test_default_run_names_do_not_collide(shapes_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = imgcls.train(str(shapes_folder), model="knn", features="hist", progress=False)
    b = imgcls.train(str(shapes_folder), model="knn", features="hist", progress=False)
    assert a.path.name == "shapes-knn" and b.path.name == "shapes-knn-2"


def test_one_class_is_refused_before_any_work(tmp_path, shapes_small):
    from imgcls.data.builtins import write_image_folder

    only = shapes_small.subset(np.flatnonzero(shapes_small.labels == "circle"))
    folder = write_image_folder(only, tmp_path / "one")
    with pytest.raises(DataError, match="at least 2"):
        imgcls.train(str(folder), model="knn", out=tmp_path / "r", progress=False)


def test_interrupted_save_leaves_no_loadable_half_model(shapes_folder, tmp_path, monkeypatch):
    from imgcls.models.classical import SklearnClassifier

    good = imgcls.train(str(shapes_folder), model="knn", features="hist", out=tmp_path / "r",
                        progress=False)
    before = (good.path / "model" / "model.skops").read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("skops.io.dump", crash)
    with pytest.raises(KeyboardInterrupt):
        good.model.save(good.path / "model")
    assert (good.path / "model" / "model.skops").read_bytes() == before
    assert isinstance(imgcls.load_model(good.path), SklearnClassifier)
    assert not [p for p in good.path.iterdir() if p.name.endswith(".tmp")]


def test_evaluate_reproduces_the_test_split_and_accepts_other_data(shapes_folder, tmp_path):
    run = imgcls.train(str(shapes_folder), model="logistic_regression", features="edges",
                       out=tmp_path / "run", progress=False)
    again = imgcls.evaluate(run.path, progress=False)
    assert again.metrics["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
    assert again.metrics["n"] == run.metrics["test"]["n"] and again.split == "test"
    other = imgcls.evaluate(run.path, str(shapes_folder), out=tmp_path / "ev", progress=False)
    assert other.metrics["n"] == 36 and other.split == "all"
    assert other.report == tmp_path / "ev" / "report.html" and other.report.is_file()


def test_digits_svm_reaches_reference_accuracy(tmp_path):
    run = imgcls.train("digits", model="svm", out=tmp_path / "digits", progress=False)
    assert run.metrics["test"]["accuracy"] >= 0.991
    assert run.metrics["test"]["n"] == 450


def test_a_manifest_of_absolute_paths_elsewhere_trains(shapes_folder, tmp_path):
    """The way people write a manifest from a database or pandas: absolute paths, the
    manifest in another folder."""
    import pandas as pd

    rows = [{"path": str(p.resolve()), "label": p.parent.name} for p in sorted(shapes_folder.rglob("*.png"))]
    manifest = tmp_path / "exports" / "labels.csv"
    manifest.parent.mkdir()
    pd.DataFrame(rows).to_csv(manifest, index=False)
    run = imgcls.train(str(manifest), model="logistic_regression", features="hist", out=tmp_path / "run",
                       progress=False)
    assert run.metrics["test"]["n"] == 9 and not run.metrics["dataset"]["ignored"]


def test_a_validation_split_calibrates_and_gives_an_unknown_detector(shapes_folder, tmp_path):
    run = imgcls.train(str(shapes_folder), model="logistic_regression", features="edges",
                       out=tmp_path / "tuned", progress=False, overrides=["split.val=0.3"])
    clf = run.model
    assert clf.calibration_ is not None and clf.unknown_.method == "knn"
    assert run.metrics["calibration"]["temperature"] == clf.calibration_.temperature
    test = run.metrics["test"]
    assert test["calibration"]["temperature"] == clf.calibration_.temperature
    assert 0 <= test["unknown"]["rejected"] <= 1 and "ece_before" in test["calibration"]
    table = pd.read_csv(tmp_path / "tuned" / "predictions.csv")
    assert table["unknown_score"].notna().all()
    assert run.metrics["timings"]["tune_seconds"] >= 0


def test_without_a_validation_split_nothing_is_tuned_unless_asked(shapes_folder, tmp_path):
    plain = imgcls.train(str(shapes_folder), model="logistic_regression", features="edges",
                         out=tmp_path / "plain", progress=False)
    assert plain.model.calibration_ is None and plain.model.unknown_ is None
    assert "calibration" not in plain.metrics["test"]
    asked = imgcls.train(str(shapes_folder), model="logistic_regression", features="edges",
                         out=tmp_path / "asked", progress=False,
                         overrides=["decision.calibration=temperature", "decision.unknown=msp"])
    assert asked.model.calibration_ is not None and asked.model.unknown_.method == "msp"
    assert asked.metrics["dataset"]["splits"]["val"] > 0  # held out of train to tune on
    with pytest.raises(ConfigError, match="energy is not available"):
        imgcls.train(str(shapes_folder), model="logistic_regression", features="edges",
                     out=tmp_path / "energy", progress=False,
                     overrides=["split.val=0.3", "decision.unknown=energy"])


def test_a_multi_label_run_end_to_end(tmp_path):
    run = imgcls.train("shapes_multi", model="logistic_regression", features="edges+color",
                       out=tmp_path / "multi", progress=False)
    assert run.config.task.kind == "multilabel" and run.model.is_multilabel
    test = run.metrics["test"]
    assert test["task"] == "multilabel" and set(test["per_label"]) == {"circle", "square", "triangle"}
    assert 0 < test["micro"]["f1"] <= 1 and test["intervals"]["map"] is not None
    rule = run.model.decision_
    assert rule.kind == "multilabel" and rule.target == "f1" and len(rule.thresholds) == 3
    assert run.metrics["dataset"]["splits"]["val"] > 0  # carved to tune the thresholds on
    # the quick data checks count images per label, not per label combination
    assert not [c for c in run.metrics["checks"] if c["check"] == "class_too_small"]
    table = pd.read_csv(tmp_path / "multi" / "predictions.csv", keep_default_na=False)
    assert {"p_circle", "p_square", "p_triangle"} <= set(table.columns)
    row = table.iloc[0]
    chosen = [c for c, t in zip(["circle", "square", "triangle"], rule.thresholds, strict=True)
              if row[f"p_{c}"] >= t]
    assert row["prediction"] == "|".join(chosen)
    html = (tmp_path / "multi" / "report.html").read_text()
    assert "Per label" in html and "Worst examples per label" in html
    assert "Micro-F1" in (tmp_path / "multi" / "model_card.md").read_text()
    again = imgcls.evaluate(run.path, progress=False)
    assert again.metrics["micro"]["f1"] == pytest.approx(test["micro"]["f1"])
    plain = imgcls.train("shapes_multi", model="logistic_regression", features="edges+color",
                         out=tmp_path / "plain", progress=False, overrides=["decision.target=threshold"])
    proba = np.array([[0.49, 0.5, 0.9]])
    assert plain.model.decision_ is None and plain.model.decide(proba).tolist() == ["square|triangle"]
    assert plain.metrics["dataset"]["splits"].get("val", 0) == 0  # 0.5 needs no validation split
    predicted = imgcls.predict(run.path, ["shapes_multi"], limit=5, progress=False)
    threshold = dict(zip(["circle", "square", "triangle"], rule.thresholds, strict=True))
    for row in predicted.itertuples(index=False):
        p = {getattr(row, f"top{k}"): getattr(row, f"p{k}") for k in (1, 2, 3)}
        assert row.prediction == "|".join(c for c in sorted(p) if p[c] >= threshold[c])
        exact = np.prod([p[c] if p[c] >= threshold[c] else 1 - p[c] for c in p])
        assert row.confidence == pytest.approx(exact, abs=1e-5)  # that exactly this set is right
