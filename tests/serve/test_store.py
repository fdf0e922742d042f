"""The model store: names and versions, and reloads that never drop a request."""

from __future__ import annotations

import threading

import pytest

from imgcls.errors import ConfigError, ModelError
from imgcls.serve.store import ModelStore, model_version, parse_model_specs


def test_model_specs_name_path_and_defaults(shapes_run, two_class_run, tmp_path):
    sources = parse_model_specs([str(shapes_run), f"other={two_class_run}"])
    assert [(s.name, s.path) for s in sources] == [("shapes", shapes_run), ("other", two_class_run)]
    with pytest.raises(ConfigError, match="Two models are named 'shapes'"):
        parse_model_specs([str(shapes_run), f"shapes={two_class_run}"])
    with pytest.raises(ModelError, match="does not exist"):
        parse_model_specs([str(tmp_path / "missing")])
    (tmp_path / "has space").mkdir()
    with pytest.raises(ConfigError, match="give one as NAME=PATH"):
        parse_model_specs([str(tmp_path / "has space")])
    assert parse_model_specs([f"ok={tmp_path / 'has space'}"])[0].name == "ok"


def test_version_is_a_hash_of_the_model_files(shapes_run, two_class_run):
    assert model_version(shapes_run) == model_version(shapes_run / "model")
    assert model_version(shapes_run) != model_version(two_class_run)
    assert len(model_version(shapes_run)) == 12


def test_reload_swaps_atomically_and_old_holders_keep_their_object(shapes_run, tmp_path):
    from imgcls.config import ServeConfig

    store = ModelStore.from_config(ServeConfig(models=[f"m={shapes_run}"], api_key=None))
    with pytest.raises(LookupError, match="not loaded yet"):
        store.get("m")
    store.load_all()
    old = store.get()
    new = store.reload("m")
    assert store.get("m") is new and new is not old and new.loaded_at >= old.loaded_at
    assert old.predictor.classes == new.predictor.classes  # the old object still works
    with pytest.raises(KeyError, match="Unknown model 'n'"):
        store.reload("n")


def test_reload_under_load_keeps_answering_200(make_client, png_files):
    client = make_client(max_wait_ms=2)
    files = [("files", (png_files[0].name, png_files[0].read_bytes(), "image/png"))]
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            response = client.post("/v1/models/shapes/predict", files=files)
            statuses.append(response.status_code)
            versions.add(response.json().get("version", "?"))

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for w in workers:
        w.start()
    reloads = [client.post("/v1/models/shapes/reload") for _ in range(4)]
    stop.set()
    for w in workers:
        w.join()
    assert [r.status_code for r in reloads] == [200] * 4
    assert len(statuses) > 4 and set(statuses) == {200}
    assert versions == {reloads[-1].json()["version"]}  # same files, same content hash


def test_readyz_is_503_until_the_models_are_loaded(shapes_run):
    from fastapi.testclient import TestClient

    from imgcls.config import ServeConfig
    from imgcls.serve import create_app

    app = create_app(ServeConfig(models=[str(shapes_run)], api_key=None))
    cold = TestClient(app)  # not entered: the lifespan that loads the models has not run
    response = cold.get("/readyz")
    assert response.status_code == 503 and response.json()["models"] == {"shapes": "loading"}
    assert cold.get("/healthz").json() == {"status": "ok"}
    assert cold.post("/v1/predict", json={"images": ["AAAA"]}).status_code == 503


def test_readyz_reports_a_model_that_failed_to_load(tmp_path, make_client):
    broken = tmp_path / "broken"
    (broken / "model").mkdir(parents=True)
    (broken / "model" / "model.json").write_text("{not json")
    from fastapi.testclient import TestClient

    from imgcls.config import ServeConfig
    from imgcls.serve import create_app

    with TestClient(create_app(ServeConfig(models=[str(broken)], api_key=None))) as client:
        for _ in range(200):
            body = client.get("/readyz").json()
            if body["status"] != "loading":
                break
            threading.Event().wait(0.02)
        assert body["status"] == "failed" and "broken" in body["errors"]
        assert client.get("/readyz").status_code == 503
