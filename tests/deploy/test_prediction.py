import json

import numpy as np
import pandas as pd
import pytest

import imgcls
from helpers import write_text_as_png
from imgcls.core.errors import ConfigError, DataError
from imgcls.deploy.inputs import expand_inputs


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from imgcls.data.builtins import make_shapes, write_image_folder

    root = tmp_path_factory.mktemp("pred")
    folder = write_image_folder(make_shapes(12, 32, seed=3), root / "shapes")
    run = imgcls.train(str(folder), model="logistic_regression", features="edges",
                       out=root / "run", progress=False)
    return run.path, folder


def test_files_folders_and_globs_are_expanded(run_dir, tmp_path):
    _, folder = run_dir
    (folder / "circle" / ".hidden.png").write_bytes(b"")
    files = expand_inputs([folder])
    assert len(files) == 36 and not any(".hidden" in f for f in files)
    assert len(expand_inputs([str(folder / "*" / "*.png")])) == 36
    with pytest.raises(DataError, match="does not exist"):
        expand_inputs([tmp_path / "missing.png"])


def test_top_k_rows_and_bad_files(run_dir, tmp_path):
    run, folder = run_dir
    bad = write_text_as_png(tmp_path / "bad.png")
    table = imgcls.predict(run, [folder / "circle", bad], top_k=2, progress=False)
    assert list(table.columns) == ["path", "prediction", "confidence", "top1", "p1", "top2", "p2",
                                   "error"]
    good = table[table["error"] == ""]
    assert len(good) == 12 and (good["p1"] >= good["p2"]).all()
    assert (good["prediction"] == good["top1"]).all()
    assert "text" in table.loc[table["path"] == str(bad), "error"].item()


def test_output_formats(run_dir, tmp_path):
    run, folder = run_dir
    imgcls.predict(run, [folder], output=tmp_path / "p.csv", progress=False)
    imgcls.predict(run, [folder], output=tmp_path / "p.jsonl", limit=5, progress=False)
    assert len(pd.read_csv(tmp_path / "p.csv")) == 36
    lines = (tmp_path / "p.jsonl").read_text().splitlines()
    assert len(lines) == 5 and "prediction" in json.loads(lines[0])
    with pytest.raises(ConfigError, match=".csv"):
        imgcls.predict(run, [folder], output=tmp_path / "p.xlsx", progress=False)


def test_builtin_dataset_name_as_input(tmp_path):
    run = imgcls.train("digits", model="knn", out=tmp_path / "d", progress=False)
    table = imgcls.predict(run.path, ["digits"], limit=20, progress=False)
    assert len(table) == 20 and set(table["prediction"]) <= set(map(str, range(10)))


def test_manifest_as_input(run_dir, tmp_path):
    run, folder = run_dir
    manifest = folder / "to_predict.csv"
    paths = ["square/0012.png", "circle/0000.png", "missing.png"]
    pd.DataFrame({"path": paths}).to_csv(manifest, index=False)
    table = imgcls.predict(run, [manifest], progress=False)
    assert list(table["path"]) == paths
    assert (table["error"].iloc[:2] == "").all() and "cannot read" in table["error"].iloc[2]
    (folder / "bad.csv").write_text("file\nx.png\n")
    with pytest.raises(DataError, match="lacks a 'path' column"):
        imgcls.predict(run, [folder / "bad.csv"], progress=False)


def test_abstain_calls_unknown_what_the_threshold_rejects(run_dir, tmp_path):
    from PIL import Image

    from imgcls.core.errors import ConfigError

    path, folder = run_dir
    with pytest.raises(ConfigError, match="no unknown detector"):  # this run had no validation split
        imgcls.predict(path, [str(folder)], abstain=True, progress=False)
    assert "unknown_score" not in imgcls.predict(path, [str(folder)], progress=False).columns
    run = imgcls.train(str(folder), model="logistic_regression", features="edges", out=tmp_path / "u",
                       overrides=["split.val=0.3"], progress=False)
    noise = tmp_path / "noise"
    noise.mkdir()
    grid = np.indices((32, 32))
    for k, image in enumerate([grid.sum(axis=0) % 2, grid[1] // 2 % 2, grid[0] // 4 % 2, np.zeros((32, 32))]):
        Image.fromarray((image * 255).astype(np.uint8)).save(noise / f"{k}.png")  # checkers, stripes, flat
    shapes = imgcls.predict(run.path, [str(folder)], progress=False)
    noisy = imgcls.predict(run.path, [str(noise)], abstain=True, progress=False)
    assert {"unknown_score", "unknown"} <= set(noisy.columns)
    assert noisy["unknown"].mean() > shapes["unknown"].mean()
    assert (noisy.loc[noisy["unknown"], "prediction"] == "unknown").all()
    assert (noisy.loc[~noisy["unknown"], "prediction"] != "unknown").all()
    assert (shapes["prediction"] != "unknown").all()  # without --abstain the class is kept
