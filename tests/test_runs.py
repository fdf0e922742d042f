"""The run folder's owner: the one rule that opens a run or a model folder, listing runs to
compare them, and the model card."""

import os
import subprocess
import sys

import pytest

import imgcls
from imgcls.core.errors import ConfigError
from imgcls.runs import Run, list_runs


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory, shapes_small):
    from imgcls.data.builtins import write_image_folder

    root = tmp_path_factory.mktemp("runs")
    data = write_image_folder(shapes_small, root.parent / "shapes-data")
    for name, model, features in (("lr-hist", "logistic_regression", "hist"), ("svm-hog", "svm", "hog+color"),
                                  ("rf-edges", "random_forest", "edges")):
        imgcls.train(str(data), model=model, features=features, out=root / name, progress=False)
    (root / "half").mkdir()  # a run that never finished: no metrics, not listed
    (root / "half" / "config.yaml").write_text("model: {name: svm}\n")
    return root


def test_one_rule_opens_a_run_or_its_model_folder(runs_folder, tmp_path):
    run = Run.open(runs_folder / "lr-hist")
    via_model = Run.open(runs_folder / "lr-hist" / "model")
    assert via_model.path == run.path and via_model.config == run.config
    assert run.export_dir == runs_folder / "lr-hist" / "export"
    lone = tmp_path / "lone"
    run.model.save(lone / "model-folder")
    standalone = Run.open(lone / "model-folder")
    assert standalone.config is None and standalone.model_dir == lone / "model-folder"
    with pytest.raises(ConfigError, match="config.yaml is missing"):
        standalone.dataset()
    with pytest.raises(ConfigError, match="not a run folder"):
        Run.open(tmp_path)


def test_runs_are_listed_sorted_with_their_figures(runs_folder):
    table = list_runs(runs_folder)
    assert sorted(table["run"]) == ["lr-hist", "rf-edges", "svm-hog"]  # not the unfinished one
    assert list(table["accuracy"]) == sorted(table["accuracy"], reverse=True)
    row = table.set_index("run").loc["svm-hog"]
    metrics = Run.open(runs_folder / "svm-hog").metrics
    assert row["accuracy"] == metrics["test"]["accuracy"] and row["n_test"] == metrics["test"]["n"]
    assert row["data"] == "shapes-data" and row["model"] == "svm" and "3 classes" in row["task"]
    by_name = list_runs(runs_folder, sort="run")
    assert list(by_name["run"]) == ["lr-hist", "rf-edges", "svm-hog"]
    with pytest.raises(ConfigError, match="'sort' parameter"):
        list_runs(runs_folder, sort="speed")


def test_imgcls_runs_prints_a_table_and_csv(runs_folder):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "imgcls", "runs", str(runs_folder), *args],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "COLUMNS": "80"})

    table = cli("--sort", "macro_f1")
    assert table.returncode == 0, table.stderr
    assert all(name in table.stdout for name in ("lr-hist", "rf-edges", "svm-hog"))
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    csv = cli("--csv")
    lines = csv.stdout.splitlines()
    assert lines[0].startswith("run,data,model,task,accuracy") and len(lines) == 4
    assert cli("--sort", "nope").returncode == 1


def test_the_model_card_says_what_the_model_is_and_grows_with_audits(runs_folder, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(runs_folder / "lr-hist", copy)
    card = (copy / "model_card.md").read_text()
    assert card.startswith("---\nlibrary_name: imgcls")
    for section in ("## Model details", "## Intended use", "## Training data", "## Evaluation",
                    "## Audit findings", "## Limitations", "## How to use it"):
        assert section in card
    accuracy = Run.open(copy).metrics["test"]["accuracy"]
    assert f"{100 * accuracy:.1f} %" in card and "No audit yet" in card
    assert "imgcls export" not in card  # a classical model has no network to export
    table = (copy / "predictions.csv").read_text().splitlines()
    header, rows = table[0], table[1:]
    sited = [f"{r},{'a' if i % 2 else 'b'}" for i, r in enumerate(rows)]
    (copy / "predictions.csv").write_text("\n".join([header + ",site", *sited]) + "\n")
    imgcls.audit(copy, group_by="site", n_boot=0, progress=False)
    card = (copy / "model_card.md").read_text()
    assert "By `site`" in card and "No audit yet" not in card
