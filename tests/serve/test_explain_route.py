"""POST /v1/models/{name}/explain: one image in, a heat map of why out; bad input is a 4xx."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

import imgcls
from helpers import write_text_as_png


def one_file(path):
    return [("files", (path.name, path.read_bytes(), "image/png"))]


def heatmap_image(body) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert body["heatmap"].startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(body["heatmap"][len(prefix):])))


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory):
    return imgcls.train("shapes", model="small_cnn", out=tmp_path_factory.mktemp("deep") / "run",
                        progress=False, overrides=["train.epochs=1", "model.image_size=32"]).path


def test_classical_model_gets_occlusion_of_its_predicted_label(client, png_files):
    predicted = client.post("/v1/models/shapes/predict", files=one_file(png_files[0])).json()
    response = client.post("/v1/models/shapes/explain", files=one_file(png_files[0]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["method"] == "occlusion" and body["filename"] == png_files[0].name
    top = predicted["results"][0]["predictions"][0]
    assert body["label"] == top["label"]
    assert body["probability"] == pytest.approx(top["probability"], abs=1e-5)
    image = heatmap_image(body)
    assert image.size == (32, 32) and np.asarray(image).std() > 0


def test_target_chooses_the_class_and_an_unknown_one_is_422(client, png_files):
    body = client.post("/v1/models/shapes/explain?target=square", files=one_file(png_files[0])).json()
    assert body["label"] == "square"
    response = client.post("/v1/models/shapes/explain?target=hexagon", files=one_file(png_files[0]))
    assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_target"
    assert "hexagon" in response.json()["error"]["message"]


def test_bad_uploads_are_client_errors(client, png_files, tmp_path):
    two = one_file(png_files[0]) + one_file(png_files[1])
    assert client.post("/v1/models/shapes/explain", files=two).status_code == 413
    text = write_text_as_png(tmp_path / "notes.png")
    response = client.post("/v1/models/shapes/explain", files=one_file(text))
    assert 400 <= response.status_code < 500 and "notes.png" in response.text
    assert client.post("/v1/models/nope/explain", files=one_file(png_files[0])).status_code == 404


def test_network_gets_gradcam_and_the_key_is_required(make_client, deep_run, png_files):
    client = make_client([f"cnn={deep_run}"], api_key="k")
    assert client.post("/v1/models/cnn/explain", files=one_file(png_files[0])).status_code == 401
    response = client.post("/v1/models/cnn/explain", files=one_file(png_files[0]),
                           headers={"X-API-Key": "k"})
    assert response.status_code == 200, response.text
    assert response.json()["method"] == "gradcam" and heatmap_image(response.json()).size == (32, 32)


def test_views_of_reloaded_versions_are_dropped(shapes_run):
    from imgcls.deploy.loading import load_predictor
    from imgcls.serve.heatmaps import HeatmapMaker
    from imgcls.serve.store import MAX_VERSIONS, LoadedModel

    maker = HeatmapMaker()
    predictor = load_predictor(shapes_run)
    for version in ("v1", "v2", "v3"):
        maker.view(LoadedModel("shapes", shapes_run, predictor, version, 0.0, batcher=None))
    assert [k[1] for k in maker.views] == ["v2", "v3"][-MAX_VERSIONS:]
