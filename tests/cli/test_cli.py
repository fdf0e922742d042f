"""The real CLI, run as a user runs it, on tiny images."""

import os
import subprocess
import sys

import pandas as pd
import pytest


def imgcls(*args, cwd=None):
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "imgcls", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from imgcls.data.builtins import make_shapes, write_image_folder

    root = tmp_path_factory.mktemp("cli")
    folder = write_image_folder(make_shapes(10, 32, seed=5), root / "shapes")
    result = imgcls("train", folder, "--model", "logistic_regression", "--features", "edges",
                    "--out", root / "run", "-q", "split.test=0.3")
    assert result.returncode == 0, result.stderr
    return root, folder, result


def test_train_writes_the_run_and_says_where(trained):
    root, _, result = trained
    assert (root / "run" / "report.html").is_file()
    assert "report.html" in result.stderr and "test accuracy" in result.stderr


def test_evaluate_and_predict(trained):
    root, folder, _ = trained
    assert imgcls("evaluate", root / "run", "-q").returncode == 0
    result = imgcls("predict", root / "run", folder / "circle", "--top-k", "2", "-o",
                    root / "preds.csv", "-q")
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(root / "preds.csv")) == 10
    shown = imgcls("predict", root / "run", folder / "square" / "0010.png", "-q")
    assert shown.returncode == 0 and "0010.png" in shown.stdout


def test_unknown_option_is_a_usage_error_with_a_suggestion(trained):
    root, folder, _ = trained
    result = imgcls("train", folder, "--modle", "svm")
    assert result.returncode == 2
    assert "--model" in result.stderr


def test_unknown_config_key_fails_with_a_suggestion(trained):
    _, folder, _ = trained
    result = imgcls("train", folder, "split.tset=0.2")
    assert result.returncode == 1
    assert "Did you mean 'split.test'" in result.stderr


def test_missing_data_and_bad_run_fail_cleanly(tmp_path):
    result = imgcls("train", tmp_path / "nowhere")
    assert result.returncode == 1 and "neither an existing folder" in result.stderr
    assert "Traceback" not in result.stderr
    result = imgcls("predict", tmp_path, tmp_path)
    assert result.returncode == 1 and "model" in result.stderr


def test_listing_commands():
    datasets = imgcls("datasets")
    assert datasets.returncode == 0 and "digits" in datasets.stdout and "elpv4" in datasets.stdout
    models = imgcls("models")
    assert models.returncode == 0
    for name in ("svm", "random_forest", "decision_tree", "logistic_regression",
                 "gradient_boosting", "knn"):
        assert name in models.stdout
    config = imgcls("config", "model.name=knn")
    assert config.returncode == 0 and "name: knn" in config.stdout


def test_deep_train_profile_predict_evaluate_and_resume_errors(tmp_path):
    from imgcls.data.builtins import make_shapes, write_image_folder

    folder = write_image_folder(make_shapes(8, 32, seed=6), tmp_path / "shapes")
    run = tmp_path / "deep"
    result = imgcls("train", folder, "--model", "small_cnn", "--out", run, "-q", "--profile",
                    "train.epochs=2", "train.batch_size=8", "model.image_size=32", "split.val=0.2")
    assert result.returncode == 0, result.stderr
    assert "alone, data" in result.stderr  # the --profile line
    assert (run / "model" / "model.safetensors").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert imgcls("evaluate", run, "-q").returncode == 0
    shown = imgcls("predict", run, folder / "circle", "-q")
    assert shown.returncode == 0 and "circle" in shown.stdout
    extended = imgcls("train", "--resume", run, "train.epochs=3", "-q")
    assert extended.returncode == 0, extended.stderr

    no_data = imgcls("train")
    assert no_data.returncode == 1 and "--resume" in no_data.stderr
    not_run = imgcls("train", "--resume", tmp_path / "shapes")
    assert not_run.returncode == 1 and "not a run folder" in not_run.stderr
    assert "Traceback" not in not_run.stderr


def test_calibration_unknown_and_ood_from_the_command_line(trained):
    import json

    root, folder, _ = trained
    out = root / "tuned"
    result = imgcls("train", folder, "--model", "logistic_regression", "--features", "edges", "--out", out,
                    "-q", "split.test=0.3", "split.val=0.3")
    assert result.returncode == 0, result.stderr
    assert "calibration: temperature" in result.stderr and "unknown: knn score" in result.stderr
    shown = imgcls("evaluate", out, "--ood", "digits", "-q")
    assert shown.returncode == 0, shown.stderr
    assert "AUROC" in shown.stdout and "knn" in shown.stdout and "msp" in shown.stdout
    ood = json.loads((out / "eval-shapes-test" / "metrics.json").read_text())["ood"]["digits"]
    assert set(ood["methods"]) == {"knn", "msp"} and ood["n_out"] == 1797
    refused = imgcls("predict", root / "run", folder / "circle", "--abstain", "-q")
    assert refused.returncode == 1 and "no unknown detector" in refused.stderr
    missing = imgcls("evaluate", out, "--ood", root / "nothing-here", "-q")
    assert missing.returncode == 1 and "nothing-here" in missing.stderr
