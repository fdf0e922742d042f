"""Two tiny trained runs, real image files, and a factory for ready TestClients."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

import imgcls
from helpers import wait_ready

QUICK = ["cache=false", "model.features=edges"]


@pytest.fixture(scope="session")
def serve_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="session")
def image_folder(serve_root, shapes_small) -> Path:
    from imgcls.data.builtins import write_image_folder

    return write_image_folder(shapes_small, serve_root / "images")


@pytest.fixture(scope="session")
def shapes_run(serve_root, image_folder) -> Path:
    """Circles, squares and triangles (3 classes, 32 px), logistic regression on edges: < 1 s."""
    return imgcls.train(str(image_folder), model="logistic_regression", out=serve_root / "shapes",
                        overrides=QUICK, progress=False).path


@pytest.fixture(scope="session")
def two_class_run(serve_root, image_folder) -> Path:
    """A second model with other classes (circle, square) to serve side by side."""
    folder = serve_root / "two"
    for label in ("circle", "square"):
        shutil.copytree(image_folder / label, folder / label)
    return imgcls.train(str(folder), model="logistic_regression", out=serve_root / "two-run",
                        overrides=QUICK, progress=False).path


@pytest.fixture(scope="session")
def png_files(image_folder) -> list[Path]:
    """Two real PNG files of each class."""
    labels = ("circle", "square", "triangle")
    return [p for label in labels for p in sorted((image_folder / label).iterdir())[:2]]


def wait_loaded_or_failed(client, timeout: float = 20.0) -> dict:
    """The /readyz body once no model is still loading."""
    deadline = time.monotonic() + timeout
    while "loading" in (body := client.get("/readyz").json())["models"].values():
        assert time.monotonic() < deadline, body
        time.sleep(0.02)
    return body


@pytest.fixture
def make_client(shapes_run):
    """``make_client(models=None, wait=True, **settings)`` -> a TestClient whose models are loaded
    (with ``wait=False``: whose models have finished loading or failing)."""
    from fastapi.testclient import TestClient

    from imgcls.config import ServeConfig
    from imgcls.serve import create_app

    opened = []

    def make(models: list[str] | None = None, wait: bool = True, **settings):
        settings.setdefault("api_key", None)
        app = create_app(ServeConfig(models=models or [f"shapes={shapes_run}"], **settings))
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        if wait:
            wait_ready(client)
        else:
            wait_loaded_or_failed(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture(scope="session")
def onnx_run(serve_root, image_folder) -> Path:
    """A small CNN on the same images, exported to ONNX: the server runs it with ONNX Runtime
    and the page can run it in the browser."""
    run = imgcls.train(str(image_folder), model="small_cnn", out=serve_root / "cnn", progress=False,
                       overrides=["train.epochs=1", "model.image_size=32", "cache=false"]).path
    imgcls.export(run, progress=False)
    return run
