"""Multiple-instance learning on tiles: a run from a folder of large images (PNG and tiled TIFF),
the three poolings, tile heat maps that find the evidence, and what a tiled model refuses."""

import numpy as np
import pytest
from PIL import Image

import imgcls
from imgcls.core.errors import ConfigError, ModelError

tifffile = pytest.importorskip("tifffile")
QUICK = ["data.tiles=64", "data.max_tiles=16", "model.image_size=32", "cache=false"]


@pytest.fixture(scope="module")
def spots(tmp_path_factory):
    """256 px noisy grey images; 'spot' ones hide a 28 px red square among their 16 tiles,
    whose position is recorded. A third are tiled TIFFs, read tile by tile."""
    root = tmp_path_factory.mktemp("spots")
    rng = np.random.default_rng(0)
    where = {}
    for n in range(40):
        label = "spot" if n % 2 else "plain"
        (root / label).mkdir(exist_ok=True)
        img = rng.integers(100, 140, (256, 256, 3)).astype(np.uint8)
        if label == "spot":
            y, x = rng.integers(4, 224, 2)
            img[y:y + 28, x:x + 28] = (250, 30, 30)
            where[f"{n}"] = (y + 14, x + 14)
        if n % 3 == 0:
            tifffile.imwrite(root / label / f"{n}.tif", img, tile=(64, 64))
        else:
            Image.fromarray(img).save(root / label / f"{n}.png")
    return root, where


@pytest.fixture(scope="module")
def mil_run(spots, tmp_path_factory):
    root, _ = spots
    return imgcls.train(str(root), out=tmp_path_factory.mktemp("runs") / "mil", progress=False,
                        overrides=QUICK)


def test_auto_picks_mil_for_tiles_and_it_learns_the_spots(mil_run):
    assert mil_run.config.model.name == "mil"
    assert mil_run.model.image_spec.tiles == 64 and mil_run.model.image_spec.max_tiles == 16
    assert mil_run.metrics["test"]["accuracy"] >= 0.9
    assert "tile attention" in (mil_run.path / "report.html").read_text()


def test_heat_maps_point_at_the_tile_with_the_evidence(mil_run, spots, tmp_path):
    root, where = spots
    table = imgcls.predict(mil_run.path, [str(root / "spot")], heatmaps=tmp_path / "maps", progress=False)
    assert (table["prediction"] == "spot").mean() >= 0.85
    assert table["heatmap"].str.endswith(".heatmap.png").all()
    hits = 0
    for path, png in zip(table["path"], table["heatmap"], strict=True):
        heat = np.load(png.replace(".png", ".npy"))
        y, x = where[path.rsplit("/", 1)[-1].split(".")[0]]
        peak = np.unravel_index(np.nanargmax(heat), heat.shape)
        hits += (peak[0] // 64, peak[1] // 64) == (y // 64, x // 64)  # the same 64 px tile
    assert hits >= 0.8 * len(table)
    with pytest.raises(ConfigError, match="heat maps"):
        imgcls.predict(mil_run.path, [str(root / "spot")], heatmaps=tmp_path / "x", engine="ray")


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_baseline_poolings_train_and_reload(pooling, spots, tmp_path):
    from imgcls.models import load_model

    root, _ = spots
    run = imgcls.train(str(root), model="mil", out=tmp_path / pooling, progress=False,
                       overrides=[*QUICK, f"model.params.pooling={pooling}"])
    assert run.metrics["test"]["accuracy"] >= 0.75
    loaded = load_model(run.path / "model")
    assert loaded.options["pooling"] == pooling


def test_what_a_tiled_model_refuses(mil_run, spots, tmp_path):
    root, _ = spots
    with pytest.raises(ConfigError, match="model.name=mil"):
        imgcls.train(str(root), model="svm", out=tmp_path / "svm", progress=False, overrides=QUICK)
    with pytest.raises(ConfigError, match="pooling"):
        imgcls.train(str(root), model="mil", out=tmp_path / "bad", progress=False,
                     overrides=[*QUICK, "model.params.pooling=median"])
    with pytest.raises(ModelError, match="cannot be exported"):
        imgcls.export(mil_run.path, out=tmp_path / "export", progress=False)
    with pytest.raises(ConfigError, match="tile weights"):
        imgcls.explain(mil_run.path, progress=False)


def test_the_server_tiles_an_upload_as_predict_does(mil_run, spots):
    from fastapi.testclient import TestClient

    from helpers import wait_ready
    from imgcls.config import ServeConfig
    from imgcls.serve import create_app

    root, _ = spots
    files = sorted((root / "spot").glob("*.png"))[:3]
    expected = imgcls.predict(mil_run.path, [str(f) for f in files], progress=False)
    app = create_app(ServeConfig(models=[f"tiles={mil_run.path}"], api_key=None))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        response = client.post("/v1/predict", files=[("files", (f.name, f.read_bytes(), "image/png"))
                                                      for f in files])
    assert response.status_code == 200, response.text
    for result, (_, row) in zip(response.json()["results"], expected.iterrows(), strict=True):
        assert result["predictions"][0]["label"] == row["prediction"]
        assert abs(result["predictions"][0]["probability"] - row["confidence"]) < 1e-4
