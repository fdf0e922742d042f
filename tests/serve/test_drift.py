"""The server's drift watch: statistics of what each model version answered, compared with its
test split; no drift on images like it, drift on darkened ones, in /drift and /metrics."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import imgcls
from helpers import wait_ready
from imgcls.config import ServeConfig
from imgcls.data.builtins import make_shapes, write_image_folder
from imgcls.serve import create_app


@pytest.fixture(scope="module")
def watched_run(tmp_path_factory):
    """Shapes with a test split of 36 images: enough for a reference."""
    root = tmp_path_factory.mktemp("drift")
    folder = write_image_folder(make_shapes(n_per_class=30, size=32, seed=0), root / "images")
    return imgcls.train(str(folder), model="logistic_regression", out=root / "run", progress=False,
                        overrides=["cache=false", "model.features=edges", "split.test=0.4"]).path


def uploads(n, seed, darken=False):
    ds = make_shapes(n_per_class=n // 3 + 1, size=32, seed=seed)
    out = []
    for k in range(n):
        img = ds.arrays[k]
        img = (img.astype(float) / 3).astype(np.uint8) if darken else img
        buffer = io.BytesIO()
        Image.fromarray(img).save(buffer, format="PNG")
        out.append(("files", (f"{k}.png", buffer.getvalue(), "image/png")))
    return out


def client_for(run, **settings):
    app = create_app(ServeConfig(models=[f"shapes={run}"], api_key=None, max_wait_ms=0, **settings))
    return TestClient(app, raise_server_exceptions=False)


def test_like_the_test_split_is_ok_and_darkened_images_drift(watched_run, caplog):
    with client_for(watched_run, drift_window=60, drift_every=30) as client:
        wait_ready(client)
        first = client.get("/v1/models/shapes/drift").json()
        assert first["status"] in ("loading_reference", "waiting") and first["images_seen"] == 0
        for part in (uploads(30, seed=1), uploads(30, seed=2)):
            assert client.post("/v1/predict", files=part).status_code == 200
        same = client.get("/v1/models/shapes/drift", params={"check": True}).json()
        assert same["status"] == "ok" and same["reference"] == {"split": "test", "n": 36}
        assert same["images_seen"] == same["images_held"] == 60 and not same["last"]["drift"]
        with caplog.at_level(logging.WARNING, logger="imgcls.serve"):
            for _ in range(2):
                assert client.post("/v1/predict", files=uploads(30, seed=3, darken=True)).status_code == 200
            dark = client.get("/v1/models/shapes/drift", params={"check": True}).json()
        assert dark["status"] == "drift" and "brightness" in dark["last"]["moved"]
        assert dark["images_seen"] == 120 and dark["images_held"] == 60  # a bounded window
        assert [h["drift"] for h in dark["history"]][-1] is True and len(dark["history"]) >= 2
        assert any("drift over its last 60 images" in r.getMessage() for r in caplog.records)
        metrics = client.get("/metrics").text
        assert 'imgcls_drift{model="shapes"' in metrics and "} 1.0" in metrics.split("imgcls_drift{")[1]


def test_no_reference_and_the_watch_turned_off_are_said(watched_run, shapes_run):
    with client_for(shapes_run) as client:  # its test split holds 9 images
        wait_ready(client)
        client.post("/v1/predict", files=uploads(3, seed=1))
        status = client.get("/v1/models/shapes/drift", params={"check": True}).json()
        assert status["status"] == "no_reference" and "needs 20" in status["reason"]
    with client_for(watched_run, drift_window=0) as client:
        wait_ready(client)
        answer = client.get("/v1/models/shapes/drift")
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "drift_off"
        assert client.get("/v1/models/nope/drift").status_code == 404
