"""The model store: names and versions, and reloads that never drop a request."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from imgcls.core.errors import ConfigError, ModelError
from imgcls.serve.store import (
    ModelSource,
    ModelStore,
    NotLoaded,
    UnknownVersion,
    model_threads,
    model_version,
    parse_model_specs,
)

KEY = "reload-key"


class FakePredictor:
    """Just enough of a Predictor for the store: a version, two classes, optional gate."""

    backend = "fake"
    classes = ("a", "b")
    unknown = None  # no unknown detector

    def __init__(self, version: str, gate: threading.Event | None = None) -> None:
        self.name = None
        self.version = version
        self.gate = gate

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        if self.gate is not None:
            assert self.gate.wait(10)
        return np.full((len(images), 2), 0.5)

    def describe(self) -> dict:
        return {"input_size": 8, "resize": "stretch", "roi": "none"}


def fake_store(tmp_path: Path, *versions: str, gate: threading.Event | None = None) -> ModelStore:
    """A store of model 'm' whose loads return the given versions in turn (the first gated)."""
    made = iter(FakePredictor(v, gate if i == 0 else None) for i, v in enumerate(versions))
    return ModelStore([ModelSource("m", tmp_path)], lambda path: next(made), max_wait_ms=1)


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
    client = make_client(max_wait_ms=2, api_key=KEY)
    files = [("files", (png_files[0].name, png_files[0].read_bytes(), "image/png"))]
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            response = client.post("/v1/models/shapes/predict", files=files, headers={"X-API-Key": KEY})
            statuses.append(response.status_code)
            versions.add(response.json().get("version", "?"))

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for w in workers:
        w.start()
    reloads = [client.post("/v1/models/shapes/reload", headers={"X-API-Key": KEY}) for _ in range(4)]
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


def test_a_failed_model_does_not_block_its_siblings_and_reload_recovers_it(make_client, shapes_run,
                                                                           tmp_path, png_files):
    broken = tmp_path / "broken"
    (broken / "model").mkdir(parents=True)
    (broken / "model" / "model.json").write_text("{not json")
    client = make_client([str(broken), f"shapes={shapes_run}"], wait=False, api_key=KEY)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "failed"
    assert ready.json()["models"] == {"broken": "failed", "shapes": "loaded"}
    listing = client.get("/v1/models").json()
    assert [m["name"] for m in listing["models"]] == ["shapes"] and set(listing["errors"]) == {"broken"}
    files = [("files", ("a.png", png_files[0].read_bytes(), "image/png"))]
    headers = {"X-API-Key": KEY}
    assert client.post("/v1/models/shapes/predict", files=files, headers=headers).status_code == 200
    default = client.post("/v1/predict", files=files, headers=headers)  # 'broken' is the default
    assert default.status_code == 503 and default.json()["error"]["code"] == "load_failed"
    assert "failed to load" in default.json()["error"]["message"]
    assert "/v1/models/broken/reload" in default.json()["error"]["message"]
    assert client.get("/v1/models/broken").json()["error"]["code"] == "load_failed"

    still = client.post("/v1/models/broken/reload", headers=headers)
    assert still.status_code == 500 and still.json()["error"]["code"] == "reload_failed"
    assert "no version is loaded" in still.json()["error"]["message"]
    shutil.rmtree(broken)
    shutil.copytree(shapes_run, broken)  # fixed: a good run in its place
    fixed = client.post("/v1/models/broken/reload", headers=headers)
    assert fixed.status_code == 200 and fixed.json()["name"] == "broken"
    assert client.get("/readyz").json() == {"status": "ready", "models": {"broken": "loaded",
                                                                         "shapes": "loaded"}, "errors": {}}
    assert client.post("/v1/predict", files=files, headers=headers).json()["model"] == "broken"
    assert client.get("/v1/models").json()["errors"] == {}


def test_load_all_loads_each_model_on_its_own(tmp_path):
    calls = []

    def loader(path):
        calls.append(path.name)
        if path.name == "bad":
            raise OSError("half-written folder")
        return FakePredictor(path.name)

    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    store = ModelStore([ModelSource("bad", tmp_path / "bad"), ModelSource("good", tmp_path / "good")],
                       loader)
    assert store.load_all() == {"bad": "half-written folder"}
    assert calls == ["bad", "good"] and store.get("good").version == "good" and not store.ready
    with pytest.raises(NotLoaded, match="failed to load: half-written"):
        store.get("bad")


def test_reload_keeps_the_previous_version_and_drops_older_ones(tmp_path):
    store = fake_store(tmp_path, "v1", "v2", "v3", "v2")
    store.load_all()
    v1 = store.get("m")
    v2 = store.reload("m")
    assert [m.version for m in store.versions("m")] == ["v2", "v1"]
    assert store.get("m") is v2 and store.get("m", "v1") is v1 and not v1.batcher._closed
    v3 = store.reload("m")
    assert [m.version for m in store.versions("m")] == ["v3", "v2"]
    assert v1.batcher._closed and not v2.batcher._closed  # dropped: its queue drains, then stops
    with pytest.raises(UnknownVersion, match="no loaded version 'v1'; loaded: v3, v2"):
        store.get("m", "v1")
    v2_again = store.reload("m")  # the same version string replaces the loaded one
    assert [m for m in store.versions("m")] == [v2_again, v3] and v2.batcher._closed


def test_requests_on_a_dropped_version_still_finish(tmp_path):
    gate = threading.Event()
    store = fake_store(tmp_path, "v1", "v2", "v3", gate=gate)
    store.load_all()

    async def scenario():
        v1 = store.get("m")
        queued = asyncio.create_task(v1.batcher.predict(np.zeros((2, 4))))
        await asyncio.sleep(0.05)  # the worker has taken it and waits on the gate
        await asyncio.to_thread(store.reload, "m")
        await asyncio.to_thread(store.reload, "m")  # v1 is dropped while its request runs
        assert [m.version for m in store.versions("m")] == ["v3", "v2"] and v1.batcher._closed
        gate.set()
        first = await asyncio.wait_for(queued, 10)
        late = await asyncio.wait_for(v1.batcher.predict(np.zeros((1, 4))), 10)  # held v1 before the drop
        return first, late

    first, late = asyncio.run(scenario())
    assert first.shape == (2, 2) and late.shape == (1, 2)


def test_threads_are_shared_among_the_models(shapes_run, two_class_run, monkeypatch):
    from imgcls.config import ServeConfig
    from imgcls.deploy import predictors as inference
    from imgcls.serve import store as store_module

    monkeypatch.setattr(inference, "default_threads", lambda: 8)
    assert model_threads(None, 1) is None and model_threads(None, 3) == 2
    assert model_threads(None, 16) == 1 and model_threads(5, 3) == 5
    calls = []
    monkeypatch.setattr(store_module, "load_predictor", lambda path, **kw: calls.append(kw))
    three = [str(shapes_run), f"two={two_class_run}", f"three={shapes_run}"]
    ModelStore.from_config(ServeConfig(models=three, api_key=None, export=True)).loader(shapes_run)
    assert calls[-1] == {"backend": "auto", "precision": "fp32", "threads": 2, "export": True}
    ModelStore.from_config(ServeConfig(models=three[:1], api_key=None)).loader(shapes_run)
    assert calls[-1] == {"backend": "auto", "precision": "fp32", "threads": None, "export": False}
    ModelStore.from_config(ServeConfig(models=three, api_key=None, threads=3)).loader(shapes_run)
    assert calls[-1]["threads"] == 3
