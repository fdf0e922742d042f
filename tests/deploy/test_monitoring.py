"""imgcls monitor: new images like the test split do not drift; darkened ones do, from the window
where they start; the report says what moved and shows the images least like the reference."""

import json

import numpy as np
import pytest
from PIL import Image

import imgcls
from imgcls.core.errors import DataError
from imgcls.data.builtins import make_shapes, write_image_folder
from imgcls.deploy.drift import Profile, compare, image_stats


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor")
    folder = write_image_folder(make_shapes(n_per_class=60, size=48, seed=0), root / "train")
    run = imgcls.train(str(folder), model="logistic_regression", features="hog+hist", out=root / "run",
                       progress=False, overrides=["cache=false", "split.test=0.4"])
    return run.path, root


def stream(root, name, n, seed, darken_from=None):
    """``n`` new shapes images in arrival order; from image ``darken_from`` on, at a third of the light."""
    ds = make_shapes(n_per_class=n // 3 + 1, size=48, seed=seed)
    folder = root / name
    folder.mkdir()
    order = np.random.default_rng(seed).permutation(len(ds))[:n]
    for k, i in enumerate(order):
        img = ds.arrays[i]
        if darken_from is not None and k >= darken_from:
            img = (img.astype(float) / 3).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{k:04d}.png")  # names sort in arrival order
    return folder


def test_like_the_test_split_no_window_drifts(shapes_run):
    run, root = shapes_run
    result = imgcls.monitor(run, [str(stream(root, "same", 120, seed=5))], window=40, progress=False)
    assert not result.drift and result.report["first_drift_window"] is None
    assert [w["end"] for w in result.report["windows"]] == [40, 80, 120]
    assert result.report["overall"]["embeddings"]["auc"] < 0.75
    assert (run / "monitor" / "drift.html").is_file()
    saved = json.loads((run / "monitor" / "drift.json").read_text())
    assert saved["reference"]["n"] == 72  # the run's test split: 40 % of 180


def test_darkened_images_drift_from_the_window_where_they_start(shapes_run, tmp_path):
    run, root = shapes_run
    folder = stream(root, "darkening", 120, seed=6, darken_from=60)
    result = imgcls.monitor(run, [str(folder)], window=30, out=tmp_path / "m", progress=False)
    windows = result.report["windows"]
    assert [w["drift"] for w in windows] == [False, False, True, True]
    # hog and the histogram features are normalised per image: the cheap statistics see it
    assert "brightness" in windows[2]["moved"] and "brightness" not in windows[1]["moved"]
    assert result.drift and result.report["first_drift_window"] == 2
    darkest = [e["path"] for e in result.report["least_like_reference"]]
    assert all(int(p.rsplit("/", 1)[-1][:4]) >= 60 for p in darkest)  # the darkened ones
    page = (tmp_path / "m" / "drift.html").read_text()
    assert "DRIFT" in page and "brightness" in page and "data:image/png" in page


def test_the_cli_fails_on_drift_when_asked(shapes_run, tmp_path):
    from typer.testing import CliRunner

    from imgcls.cli import app

    run, root = shapes_run
    folder = stream(root, "dark", 40, seed=7, darken_from=0)
    done = CliRunner().invoke(app, ["monitor", str(run), str(folder), "--window", "20", "--fail-on-drift",
                                    "--out", str(tmp_path / "cli"), "--quiet"])
    assert done.exit_code == 1 and "DRIFT" in done.output
    assert CliRunner().invoke(app, ["monitor", str(run), str(folder), "--window", "5"]).exit_code == 2
    with pytest.raises(DataError, match="at least 20"):
        imgcls.monitor(run, [str(folder)], window=10)


def test_compare_needs_a_window_and_skips_constant_statistics():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 32)).astype(np.uint8) for _ in range(60)]
    stats = np.stack([image_stats(i) for i in images])
    assert stats[:, 0].tolist() == [32.0] * 60  # width
    proba = rng.dirichlet([1, 1], 60)
    ref, new = Profile(stats[:40], proba[:40], ["a", "b"]), Profile(stats[40:], proba[40:], ["a", "b"])
    report = compare(ref, new)
    assert "width" not in report["tests"] and "brightness" in report["tests"]
    assert not report["drift"] and "embeddings" not in report
    assert compare(ref, new.subset(range(5)))["reason"].startswith("fewer than")
