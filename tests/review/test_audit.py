"""The audit: per-group metrics, gaps with intervals, the gate, representation and reports.

Most tests write a run folder by hand (config, model.json with the classes, predictions.csv),
so the statistics are checked against hand counts; one test trains a tiny model and audits
other data with it.
"""

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import imgcls
from helpers import file_hashes
from imgcls.config import config_to_yaml, resolve_config
from imgcls.core.errors import ConfigError, DataError
from imgcls.review.auditing import audit
from imgcls.runs import load_run_model as load_model


def fake_run(tmp_path, test_rows, train_rows=(), column="site", classes=("ok", "defect")):
    """A run folder whose predictions.csv holds ``test_rows`` (label, prediction, group) and
    whose data (a manifest, no images needed) adds ``train_rows`` (label, group)."""
    classes = list(classes)
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    manifest = pd.DataFrame(
        [{"path": f"train/{i}.png", "label": y, "split": "train", column: g}
         for i, (y, g) in enumerate(train_rows)]
        + [{"path": f"test/{i}.png", "label": y, "split": "test", column: g}
           for i, (y, _, g) in enumerate(test_rows)])
    manifest.to_csv(tmp_path / "data.csv", index=False)
    cfg = resolve_config(None, {"data.source": str(tmp_path / "data.csv"), "out": str(run)})
    (run / "config.yaml").write_text(config_to_yaml(cfg))
    (run / "model" / "model.json").write_text(json.dumps({"format_version": 1, "classes": classes}))
    predictions = pd.DataFrame({"path": [f"test/{i}.png" for i in range(len(test_rows))],
                                "label": [r[0] for r in test_rows], "prediction": [r[1] for r in test_rows],
                                "confidence": 1.0, "split": "test"})
    for c in classes:
        predictions[f"p_{c}"] = (predictions["prediction"] == c).astype(float)
    predictions[column] = [r[2] for r in test_rows]
    predictions.to_csv(run / "predictions.csv", index=False)
    return run


def rows_with_accuracy(group, n, correct):
    """``n`` rows of ``group``, alternating classes, the first ``correct`` predicted right."""
    labels = ["ok" if i % 2 else "defect" for i in range(n)]
    flip = {"ok": "defect", "defect": "ok"}
    return [(y, y if i < correct else flip[y], group) for i, y in enumerate(labels)]


def test_gap_is_the_difference_of_group_accuracies_and_gates(tmp_path):
    run = fake_run(tmp_path, rows_with_accuracy("north", 40, 36) + rows_with_accuracy("south", 40, 28))
    result = audit(run, group_by="site", n_boot=300, progress=False)
    accuracy = result.report["metrics"]["accuracy"]
    assert accuracy["by_group"]["north"]["value"] == pytest.approx(0.9)
    assert accuracy["by_group"]["south"]["value"] == pytest.approx(0.7)
    assert result.gap == pytest.approx(0.2) and accuracy["ratio"] == pytest.approx(0.7 / 0.9)
    assert (accuracy["min_group"], accuracy["max_group"]) == ("south", "north")
    for group in ("north", "south"):
        low, high = accuracy["by_group"][group]["ci"]
        assert low <= accuracy["by_group"][group]["value"] <= high and low < high
    low, high = accuracy["difference_ci"]
    assert low < 0.2 < high
    assert not result.passed and result.path == run / "audit-site"
    assert "a gap of 20.0 points" in result.report["findings"][0]
    assert "above the allowed 5.0" in result.report["findings"][0]
    relaxed = audit(run, group_by="site", max_gap=0.25, n_boot=0, progress=False)
    assert relaxed.passed and relaxed.report["metrics"]["accuracy"]["difference_ci"] is None


def test_one_vs_rest_rates_by_group_match_hand_counts(tmp_path):
    x = list(zip("aaabbc", "ababcc", "xxxxxx", strict=True))
    y = list(zip("abcccb", "cbcacb", "yyyyyy", strict=True))
    run = fake_run(tmp_path, x + y, classes="abc")
    metrics = audit(run, group_by="site", n_boot=0, progress=False).report["metrics"]
    expected = {  # group: {metric: value}, counted by hand from the rows above
        "x": {"accuracy": 4 / 6, "recall:a": 2 / 3, "fnr:a": 1 / 3, "fpr:a": 0, "selection_rate:a": 2 / 6,
              "recall:b": 1 / 2, "fnr:b": 1 / 2, "fpr:b": 1 / 4, "selection_rate:b": 2 / 6,
              "recall:c": 1, "fnr:c": 0, "fpr:c": 1 / 5, "selection_rate:c": 2 / 6},
        "y": {"accuracy": 4 / 6, "recall:a": 0, "fnr:a": 1, "fpr:a": 1 / 5, "selection_rate:a": 1 / 6,
              "recall:b": 1, "fnr:b": 0, "fpr:b": 0, "selection_rate:b": 2 / 6,
              "recall:c": 2 / 3, "fnr:c": 1 / 3, "fpr:c": 1 / 3, "selection_rate:c": 3 / 6},
    }
    for group, values in expected.items():
        for name, value in values.items():
            assert metrics[name]["by_group"][group]["value"] == pytest.approx(value, abs=1e-6), (group, name)
    assert metrics["recall:a"]["difference"] == pytest.approx(2 / 3, abs=1e-6)
    assert metrics["fpr:c"]["ratio"] == pytest.approx(0.6, abs=1e-6)


def test_the_fast_bootstrap_matches_row_resampling_on_the_same_rows():
    from fairlearn.metrics import MetricFrame

    from imgcls.review.auditing.metrics import bootstrap_intervals, confusion_by_group

    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b"], 300)
    p = np.where(rng.random(300) < 0.8, y, rng.choice(["a", "b"], 300))
    g = np.where(rng.random(300) < 0.3, "small", "large")
    ours = bootstrap_intervals(confusion_by_group(y, p, g, ["large", "small"], ["a", "b"]), ["a", "b"], 400)
    theirs = MetricFrame(metrics={"accuracy": lambda t, q: float(np.mean(t == q))}, y_true=y, y_pred=p,
                         sensitive_features=g, n_boot=400, ci_quantiles=[0.025, 0.975], random_state=0)
    for k, group in enumerate(["large", "small"]):
        reference = [theirs.by_group_ci[i]["accuracy"][group] for i in range(2)]
        assert ours["accuracy"]["by_group"][:, k] == pytest.approx(reference, abs=0.03)
    # the gap's interval is of the signed difference of the two groups ranked on the data (not
    # fairlearn's max - min per resample, which is never below 0); check it by a row bootstrap
    correct = y == p
    high, low = sorted(["large", "small"], key=lambda name: -correct[g == name].mean())
    draws = [rng.integers(0, len(y), len(y)) for _ in range(400)]
    signed = [correct[d][g[d] == high].mean() - correct[d][g[d] == low].mean() for d in draws]
    reference = np.quantile(signed, [0.025, 0.975])
    assert ours["accuracy"]["difference"] == pytest.approx(reference, abs=0.03)
    assert ours["accuracy"]["difference"][0] < 0 < ours["accuracy"]["difference"][1]  # may be chance


def test_a_group_without_a_class_gives_null_and_small_groups_are_flagged(tmp_path, capfd):
    big = [(c, c, g) for g in ("x", "y") for c in "abc" for _ in range(7)]
    lacking_c = [("a", "a", "z"), ("a", "b", "z"), ("b", "b", "z"), ("b", "c", "z"), ("a", "a", "z")]
    run = fake_run(tmp_path, big + lacking_c, classes="abc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # undefined metrics are null, not sklearn warnings
        result = audit(run, group_by="site", metric="recall:c", min_group_size=10, n_boot=200,
                       progress=False)
    recall_c = result.report["metrics"]["recall:c"]["by_group"]["z"]
    assert recall_c == {"value": None, "ci": None}
    assert result.report["metrics"]["fpr:c"]["by_group"]["z"]["value"] == pytest.approx(1 / 5)
    assert result.gap == 0 and result.passed  # x and y both recall every c
    groups = {r["group"]: r for r in result.report["representation"]["groups"]}
    assert groups["z"]["small"] and not groups["x"]["small"]
    assert groups["z"]["classes"]["c"] == {"eval_n": 0, "train_n": 0, "small": True}
    assert "Group z has only 5 evaluation images: its figures are unreliable." in result.report["findings"]
    assert "Warning" not in capfd.readouterr().err


def test_bad_columns_metrics_and_options_are_named(tmp_path):
    run = fake_run(tmp_path, rows_with_accuracy("north", 10, 9) + rows_with_accuracy("south", 10, 7))
    with pytest.raises(DataError, match=r"Column 'sitte' is not in .*metadata columns: site\. Use --group"):
        audit(run, group_by="sitte", progress=False)
    with pytest.raises(ConfigError, match=r"Unknown metric 'acuracy'\. Did you mean 'accuracy'\?"):
        audit(run, group_by="site", metric="acuracy", progress=False)
    with pytest.raises(ConfigError, match=r"names class 'cat'.*Classes: ok, defect"):
        audit(run, group_by="site", metric="recall:cat", progress=False)
    with pytest.raises(ConfigError, match="'max_gap' parameter"):
        audit(run, group_by="site", max_gap=2, progress=False)
    one_group = fake_run(tmp_path / "one", rows_with_accuracy("north", 10, 9))
    with pytest.raises(DataError, match="at least 2"):
        audit(one_group, group_by="site", progress=False)


def test_reports_are_strict_json_and_escaped_html(tmp_path):
    column = "<i>site</i>"
    rows = rows_with_accuracy("<b>x</b>", 12, 11) + rows_with_accuracy("plain", 12, 6)
    rows += [("ok", "ok", None), ("defect", "ok", None)]  # missing values form their own group
    run = fake_run(tmp_path, rows, train_rows=[("ok", "plain")] * 3, column=column)
    result = audit(run, group_by=column, metric="recall:ok", n_boot=100, progress=False)

    def refuse(constant):
        raise AssertionError(f"{constant} in audit.json")

    report = json.loads((result.path / "audit.json").read_text(), parse_constant=refuse)
    assert report["groups"] == ["(missing)", "<b>x</b>", "plain"]
    assert report["passed"] is result.passed
    html = result.html.read_text()
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "&lt;i&gt;site&lt;/i&gt;" in html
    assert "<b>x</b>" not in html and "<i>site</i>" not in html
    assert ("PASS" if result.passed else "FAIL") in html and html.count("data:image/png;base64,") == 3
    shares = {r["group"]: r["train_share"] for r in report["representation"]["groups"]}
    assert shares == {"(missing)": 0.0, "<b>x</b>": 0.0, "plain": 1.0}


def _write_images(tmp_path, site_rows):
    """Grey 8x8 images: 'dark' and 'light' are easy in site p; site q's are random greys."""
    from PIL import Image

    rng = np.random.default_rng(0)
    records = []
    for k, (site, label, split) in enumerate(site_rows):
        level = rng.integers(0, 256) if site == "q" else (50 if label == "dark" else 200)
        pixels = np.clip(level + rng.normal(0, 8, (8, 8)), 0, 255).astype(np.uint8)
        path = tmp_path / "images" / f"{k:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        records.append({"path": path.relative_to(tmp_path).as_posix(), "label": label, "split": split,
                        "site": site})
    return records


def test_other_data_is_predicted_with_the_saved_model(tmp_path):
    from PIL import Image

    train = [(s, c, sp) for s in "pq" for c in ("dark", "light") for sp in ["train"] * 10 + ["test"] * 3]
    pd.DataFrame(_write_images(tmp_path, train)).to_csv(tmp_path / "train.csv", index=False)
    run = imgcls.train(str(tmp_path / "train.csv"), model="logistic_regression", features="hist",
                       out=tmp_path / "run", overrides=["model.image_size=8"], progress=False)
    other_dir = tmp_path / "other"
    other_rows = [("p", c, "") for c in ("dark", "light") for _ in range(9)] + [("q", "dark", "")] * 6
    pd.DataFrame(_write_images(other_dir, other_rows)).drop(columns="split").to_csv(
        other_dir / "field.csv", index=False)
    before = file_hashes(other_dir)
    result = audit(run.path, str(other_dir / "field.csv"), group_by="site", n_boot=50, progress=False)
    assert file_hashes(other_dir) == before and result.path == run.path / "audit-field-site"
    report = result.report
    assert report["evaluated"] == {"dataset": "field", "split": "all", "source": "model", "n": 24}
    table = pd.read_csv(other_dir / "field.csv")
    images = [np.asarray(Image.open(other_dir / p)) for p in table.path]
    predicted = imgcls.load_model(run.path).predict(images)
    for site in ("p", "q"):
        mask = (table["site"] == site).to_numpy()
        expected = float(np.mean(predicted[mask] == table["label"].to_numpy()[mask]))
        assert report["metrics"]["accuracy"]["by_group"][site]["value"] == pytest.approx(expected)
    shares = {r["group"]: (r["train_share"], r["eval_share"]) for r in report["representation"]["groups"]}
    assert shares == {"p": (0.5, 0.75), "q": (0.5, 0.25)}
    assert "p is 50 % of training data and 75 % of evaluated data." in report["findings"]
    own = audit(run.path, group_by="site", n_boot=0, progress=False)
    assert own.report["evaluated"]["source"] == "predictions.csv" and own.report["evaluated"]["n"] == 12
    assert not math.isnan(own.report["metrics"]["accuracy"]["overall"])
    predictions = pd.read_csv(run.path / "predictions.csv")  # an older run, saved without metadata
    predictions.drop(columns="site").to_csv(run.path / "predictions.csv", index=False)
    again = audit(run.path, group_by="site", n_boot=0, progress=False)
    assert again.report["evaluated"]["source"] == "model"
    assert again.report["metrics"] == own.report["metrics"]


def test_a_multi_label_run_is_audited_one_label_at_a_time(tmp_path):
    # cat: found on 9 of 10 north images that have it, 5 of 10 south; dog: right everywhere
    north = [("cat|dog", "cat|dog", "north")] * 9 + [("cat", "", "north")] + [("dog", "dog", "north")] * 10
    south = [("cat|dog", "cat|dog", "south")] * 5 + [("cat", "dog", "south")] * 5 + [("", "", "south")] * 10
    rows = north + south
    run = fake_run(tmp_path, rows, train_rows=[("cat", "north"), ("dog", "south"), ("cat|dog", "south")],
                   classes=("cat", "dog"))
    meta = json.loads((run / "model" / "model.json").read_text())
    (run / "model" / "model.json").write_text(json.dumps({**meta, "multilabel": True}))
    config = (run / "config.yaml").read_text().replace("kind: auto", "kind: multilabel")
    (run / "config.yaml").write_text(config)
    with pytest.raises(ConfigError, match="one label at a time.*cat, dog"):
        audit(run, group_by="site", progress=False)
    with pytest.raises(ConfigError, match="'bird' is not one of them"):
        audit(run, group_by="site", label="bird", progress=False)
    cat = audit(run, group_by="site", label="cat", metric="recall:cat", n_boot=0, progress=False)
    recall = cat.report["metrics"]["recall:cat"]["by_group"]
    assert recall["north"]["value"] == pytest.approx(0.9) and recall["south"]["value"] == pytest.approx(0.5)
    assert cat.report["classes"] == ["cat", "not cat"] and not cat.passed
    assert cat.path == run / "audit-site-cat"
    dog = audit(run, group_by="site", label="dog", metric="recall:dog", n_boot=0, progress=False)
    assert dog.report["metrics"]["recall:dog"]["by_group"]["north"]["value"] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="for multi-label runs"):
        audit(fake_run(tmp_path / "single", rows_with_accuracy("a", 4, 4) + rows_with_accuracy("b", 4, 4)),
              group_by="site", label="ok", progress=False)


def test_a_clip_model_is_audited_on_videos_and_folders_of_frames(tmp_path):
    from helpers import write_clip, write_frame_folder

    rows = []
    for i in range(16):
        label, step = ("grow", 3) if i % 2 == 0 else ("shrink", -3)
        camera = "film" if i % 4 < 2 else "stills"  # one camera films, the other keeps frames
        if camera == "film":
            path = write_clip(tmp_path / "data" / f"c{i}.avi", step=step, frames=10, start=16 + i)
        else:
            path = write_frame_folder(tmp_path / "data" / f"c{i}", step=step, frames=10, start=16 + i)
        rows.append({"path": path.name, "label": label, "camera": camera,
                     "split": "test" if i >= 8 else "train"})
    pd.DataFrame(rows).to_csv(tmp_path / "data" / "clips.csv", index=False)
    before = file_hashes(tmp_path / "data")
    run = imgcls.train(str(tmp_path / "data" / "clips.csv"), out=tmp_path / "run", progress=False,
                       overrides=["model.image_size=32", "data.frames=4", "cache=false"])
    assert load_model(run.path).family == "sequence"
    saved = audit(run.path, group_by="camera", min_group_size=2, n_boot=100, progress=False)
    again = audit(run.path, tmp_path / "data" / "clips.csv", group_by="camera", split="test",
                  min_group_size=2, n_boot=100, progress=False, out=tmp_path / "again")
    for result, source in ((saved, "predictions.csv"), (again, "model")):  # the clips predicted again
        assert set(result.report["groups"]) == {"film", "stills"}
        evaluated = result.report["evaluated"]
        assert (evaluated["split"], evaluated["source"], evaluated["n"]) == ("test", source, 8)
    assert saved.report["metrics"]["accuracy"]["overall"] == again.report["metrics"]["accuracy"]["overall"]
    assert file_hashes(tmp_path / "data") == before  # nothing of the user's changed
