"""`predict --engine ray`: the same table as the local engine, from one local Ray instance (2 CPUs)."""

import logging
import subprocess
import sys

import pandas as pd
import pytest

import imgcls
from helpers import write_text_as_png
from imgcls.core.errors import ConfigError
from imgcls.deploy.exporting import export

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray for the module (its start-up is most of the cost); shut down at the end."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A classical run (scikit-learn in the actors) and a deep one with an ONNX export (ORT)."""
    root = tmp_path_factory.mktemp("ray-runs")
    classical = imgcls.train("shapes", model="logistic_regression", features="edges",
                             out=root / "classical", progress=False).path
    deep = imgcls.train("shapes", model="small_cnn", out=root / "deep", progress=False,
                        overrides=["train.epochs=1", "model.image_size=32"]).path
    export(deep, progress=False)
    return {"classical": classical, "deep": deep}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """12 shape PNGs in class folders, one corrupt PNG and one text file named .png."""
    from imgcls.data.builtins import make_shapes, write_image_folder

    folder = write_image_folder(make_shapes(4, 32, seed=1), tmp_path_factory.mktemp("ray-images"))
    (folder / "circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    write_text_as_png(folder / "square" / "text.png")
    return folder


def assert_same_table(ray_table: pd.DataFrame, local: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(ray_table, local, check_exact=False, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["classical", "deep"])
def test_ray_table_equals_the_local_table(ray_instance, runs, images, kind):
    local = imgcls.predict(runs[kind], [images], top_k=2, batch_size=5, progress=False)
    distributed = imgcls.predict(runs[kind], [images], top_k=2, batch_size=5, progress=False,
                                 engine="ray")
    assert_same_table(distributed, local)
    bad = distributed["path"].str.endswith(("broken.png", "text.png"))
    assert bad.sum() == 2 and (distributed.loc[bad, "error"] != "").all()
    assert (distributed.loc[~bad, "error"] == "").all() and len(distributed) == 14


def test_parquet_output_builtin_dataset_manifest_and_uri(ray_instance, runs, images, tmp_path):
    run = runs["deep"]
    out = tmp_path / "preds.parquet"
    table = imgcls.predict(run, ["shapes"], limit=20, output=out, engine="ray", progress=False)
    assert_same_table(table, imgcls.predict(run, ["shapes"], limit=20, progress=False))
    pd.testing.assert_frame_equal(pd.read_parquet(out), table)

    manifest = images / "list.csv"
    pd.DataFrame({"path": ["circle/broken.png", "triangle/0009.png"]}).to_csv(manifest, index=False)
    table = imgcls.predict(run, [manifest, images.as_uri() + "/square"], engine="ray", progress=False)
    local = imgcls.predict(run, [images / "circle" / "broken.png", images / "triangle" / "0009.png",
                                 images / "square"], progress=False)
    assert list(table["path"][:2]) == ["circle/broken.png", "triangle/0009.png"]
    assert table["path"][2].startswith("file://") and table["path"][2].endswith("square/0004.png")
    assert_same_table(table.drop(columns="path"), local.drop(columns="path"))


def test_cli_engine_ray_joins_a_running_cluster(ray_instance, runs, images, tmp_path):
    out = tmp_path / "preds.csv"
    result = subprocess.run(
        [sys.executable, "-m", "imgcls", "predict", str(runs["classical"]), str(images), "-q",
         "--engine", "ray", "--address", ray_instance, "-o", str(out)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(out)) == 14
    assert ray.cluster_resources().get("CPU") == 2  # the CLI disconnected; the cluster still runs


def test_engine_typos_and_missing_ray_are_clear_errors(runs, images, monkeypatch):
    with pytest.raises(ConfigError, match="'engine' parameter.*Did you mean 'ray'"):
        imgcls.predict(runs["classical"], [images], engine="rey", progress=False)
    with pytest.raises(ConfigError, match="'address' parameter is for engine='ray'"):
        imgcls.predict(runs["classical"], [images], address="auto", progress=False)
    with pytest.raises(ConfigError, match="read by engine='ray'"):
        imgcls.predict(runs["classical"], ["s3://bucket/cells/"], progress=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError, match=r"pip install 'imgcls\[ray\]'"):
        imgcls.predict(runs["classical"], [images], engine="ray", progress=False)
