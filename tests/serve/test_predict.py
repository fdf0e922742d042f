"""The predict routes: multipart and base64 JSON, top_k, several models, and what they describe."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from imgcls.data.decode import decode_image
from imgcls.deploy.loading import load_predictor


def files_of(paths):
    return [("files", (p.name, p.read_bytes(), "image/png")) for p in paths]


def test_one_image_multipart(client, png_files, shapes_run):
    response = client.post("/v1/predict", files=files_of(png_files[:1]))
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "shapes" and body["backend"] == "sklearn" and len(body["version"]) == 12
    [result] = body["results"]
    assert result["filename"] == png_files[0].name and result["error"] is None
    probs = [p["probability"] for p in result["predictions"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True)
    expected = load_predictor(shapes_run).predict_images([decode_image(png_files[0])])[0]
    assert result["predictions"][0]["label"] == ["circle", "square", "triangle"][int(np.argmax(expected))]
    assert probs[0] == pytest.approx(float(expected.max()), abs=1e-6)
    assert set(body["timing_ms"]) == {"decode", "inference", "total"}


def test_many_images_keep_their_order(client, png_files):
    response = client.post("/v1/predict?top_k=1", files=files_of(png_files))
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["filename"] for r in results] == [p.name for p in png_files]
    assert all(len(r["predictions"]) == 1 for r in results)


def test_base64_json_and_data_url(client, png_files):
    raw = png_files[0].read_bytes()
    plain = base64.b64encode(raw).decode()
    data_url = "data:image/png;base64," + plain
    response = client.post("/v1/predict", json={"images": [plain, data_url], "top_k": 2})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["filename"] for r in results] == ["images[0]", "images[1]"]
    assert len(results[0]["predictions"]) == 2
    assert [p["label"] for p in results[0]["predictions"]] == [p["label"] for p in results[1]["predictions"]]
    multipart = client.post("/v1/predict?top_k=2", files=files_of(png_files[:1])).json()
    labels = [p["label"] for p in results[0]["predictions"]]
    assert [p["label"] for p in multipart["results"][0]["predictions"]] == labels
    assert multipart["results"][0]["predictions"][0]["probability"] == pytest.approx(
        results[0]["predictions"][0]["probability"], abs=1e-5)


def test_top_k_is_capped_by_the_classes_and_validated(client, png_files):
    assert len(client.post("/v1/predict?top_k=50", files=files_of(png_files[:1])).json()
               ["results"][0]["predictions"]) == 3
    response = client.post("/v1/predict?top_k=0", files=files_of(png_files[:1]))
    assert response.status_code == 422 and "top_k" in response.json()["error"]["message"]


def test_a_bad_image_among_good_ones_is_reported_per_image(client, png_files):
    files = files_of(png_files[:1]) + [("files", ("notes.png", b"just text", "image/png"))]
    response = client.post("/v1/predict", files=files)
    assert response.status_code == 200
    good, bad = response.json()["results"]
    assert good["error"] is None and bad["predictions"] == []
    assert bad["error"]["code"] == "not_an_image" and "notes.png" in bad["error"]["message"]


def test_two_models_side_by_side(make_client, shapes_run, two_class_run, png_files):
    client = make_client([str(shapes_run), f"two={two_class_run}"])
    listing = client.get("/v1/models").json()
    assert [m["name"] for m in listing["models"]] == ["shapes", "two"] and listing["default"] == "shapes"
    files = files_of(png_files[:1])
    first = client.post("/v1/predict", files=files).json()
    second = client.post("/v1/models/two/predict", files=files).json()
    assert first["model"] == "shapes" and second["model"] == "two"
    assert {p["label"] for p in second["results"][0]["predictions"]} == {"circle", "square"}
    missing = client.post("/v1/models/nope/predict", files=files)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_model"
    assert "two" in missing.json()["error"]["message"]


def test_models_list_describes_each_model(client):
    listing = client.get("/v1/models").json()
    assert listing["auth_required"] is False
    [model] = listing["models"]
    assert model["classes"] == ["circle", "square", "triangle"] and model["input_size"] == 32
    assert model["default"] is True and model["backend"] == "sklearn"
    assert 0.0 <= model["test_metrics"]["accuracy"] <= 1.0 and "macro_f1" in model["test_metrics"]
    assert client.get("/v1/models/shapes").json() == model
    assert client.get("/v1/models/other").status_code == 404


def test_previous_version_stays_reachable_after_a_reload(make_client, shapes_run, two_class_run, tmp_path,
                                                         png_files):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(shapes_run, folder)
    key = {"X-API-Key": "k"}
    client = make_client([str(folder)], api_key="k")
    first = client.get("/v1/models/m").json()
    assert [(v["version"], v["current"]) for v in first["versions"]] == [(first["version"], True)]
    shutil.rmtree(folder)
    shutil.copytree(two_class_run, folder)  # retrained into the same folder: 2 classes now
    second = client.post("/v1/models/m/reload", headers=key).json()
    old, new = first["version"], second["version"]
    assert new != old
    listing = client.get("/v1/models").json()["models"][0]
    assert [(v["version"], v["current"]) for v in listing["versions"]] == [(new, True), (old, False)]
    assert listing == client.get("/v1/models/m").json()

    files = files_of(png_files[:1])
    current = client.post("/v1/models/m/predict?top_k=5", files=files, headers=key).json()
    previous = client.post(f"/v1/models/m/predict?top_k=5&version={old}", files=files, headers=key).json()
    assert current["version"] == new and len(current["results"][0]["predictions"]) == 2
    assert previous["version"] == old and len(previous["results"][0]["predictions"]) == 3
    same = client.post(f"/v1/models/m/predict?version={new}", files=files, headers=key)
    assert same.json()["version"] == new
    missing = client.post("/v1/models/m/predict?version=0123456789ab", files=files, headers=key)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_version"
    assert old in missing.json()["error"]["message"] and new in missing.json()["error"]["message"]
    metrics = client.get("/metrics").text
    assert f'version="{old}"' in metrics and f'version="{new}"' in metrics


@pytest.fixture(scope="module")
def unknown_run(serve_root, image_folder):
    """The shapes model with a validation split: calibrated, with a knn unknown detector."""
    import imgcls

    from .conftest import QUICK

    return imgcls.train(str(image_folder), model="logistic_regression", out=serve_root / "unknown",
                        overrides=[*QUICK, "split.val=0.3"], progress=False).path


def test_abstain_answers_unknown_for_images_unlike_the_training_data(make_client, unknown_run, png_files,
                                                                     tmp_path):
    from PIL import Image

    noise = tmp_path / "checkerboard.png"  # nothing like a shape's edges
    Image.fromarray((np.indices((32, 32)).sum(axis=0) % 2 * 255).astype(np.uint8)).save(noise)
    client = make_client([f"u={unknown_run}"])
    plain = client.post("/v1/predict", files=files_of([noise, png_files[0]])).json()["results"]
    asked = client.post("/v1/predict?abstain=true", files=files_of([noise, png_files[0]])).json()["results"]
    threshold = load_predictor(unknown_run).unknown["threshold"]
    for result in (*plain, *asked):
        assert result["unknown"] == (result["unknown_score"] > threshold)
    assert plain[0]["unknown"] and plain[0]["label"] != "unknown"  # flagged, but the class is kept
    assert asked[0]["label"] == "unknown" and asked[0]["predictions"]  # the top-k stay for inspection
    assert asked[1]["label"] == plain[1]["label"] == "circle" and not asked[1]["unknown"]


def test_abstain_with_a_model_without_a_detector_is_a_409(client, png_files):
    response = client.post("/v1/predict?abstain=true", files=files_of(png_files[:1]))
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_unknown_detector"
    plain = client.post("/v1/predict", files=files_of(png_files[:1])).json()["results"][0]
    assert plain["unknown"] is None and plain["unknown_score"] is None


def test_a_multi_label_model_answers_a_set_of_labels(make_client, serve_root, tmp_path):
    from PIL import Image

    import imgcls
    from imgcls.data.builtins import make_multi_shapes

    run = imgcls.train("shapes_multi", model="logistic_regression", features="edges+color",
                       out=serve_root / "multi", progress=False).path
    shapes = make_multi_shapes(4, 64, seed=9)
    paths = []
    for k, image in enumerate(shapes.arrays):
        paths.append(tmp_path / f"{k}.png")
        Image.fromarray(image).save(paths[-1])
    client = make_client([f"multi={run}"])
    results = client.post("/v1/predict", files=files_of(paths)).json()["results"]
    predictor = load_predictor(run)
    expected = predictor.decide(predictor.predict_images([decode_image(p) for p in paths]))
    for result, label in zip(results, expected, strict=True):
        assert result["label"] == label and result["labels"] == [v for v in label.split("|") if v]
        assert len(result["predictions"]) == 3
