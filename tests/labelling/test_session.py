"""A labelling session end to end through its API: answers, undo, restart, near-duplicates,
several labellers, unreadable files, and no path outside the dataset."""

import io
import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from imgcls.core.errors import ConfigError
from imgcls.labelling import label
from imgcls.labelling.app import create_label_app, run_label_server


def _session(photos, tmp_path, **kwargs):
    return label(photos, "circle,square,triangle", tmp_path / "out" / "labels.csv", serve=False,
                 backbone="features", progress=False, refit_every=3, **kwargs)


def _client(session, **kwargs):
    return TestClient(create_label_app(session, **kwargs))


def test_labels_undo_and_restart_leave_exactly_the_right_manifest(photos, tmp_path):
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    session = _session(photos, tmp_path)
    client = _client(session)
    state = client.get("/api/state").json()
    assert state["images"] == len(before) - 1 and state["skipped"][0]["path"] == "broken.png"
    given = {}
    for k in range(4):
        item = client.get("/api/next", params={"labeller": "ann"}).json()["item"]
        assert item["path"] not in given
        assert client.get(f"/api/image/{item['id']}").status_code == 200
        name = "circle" if k % 2 else "square"
        r = client.post("/api/answer", json={"labeller": "ann", "id": item["id"], "label": name, "group": []})
        assert r.status_code == 200
        given[item["path"]] = name
    undone = client.post("/api/undo", json={"labeller": "ann"}).json()
    assert undone["undone"]
    del given[undone["item"]["path"]]
    session.wait()
    session.store.close()
    again = _session(photos, tmp_path)  # a restart: the same store, nothing repeated
    client = _client(again)
    item = client.get("/api/next", params={"labeller": "ann"}).json()["item"]
    assert item["path"] not in given
    client.post("/api/answer", json={"labeller": "ann", "id": item["id"], "label": "triangle"})
    given[item["path"]] = "triangle"
    manifest = pd.read_csv(tmp_path / "out" / "labels.csv", keep_default_na=False)
    found = {p.split("/")[-1]: lab for p, lab in zip(manifest["path"], manifest["label"], strict=True)}
    assert found == given
    assert all((tmp_path / "out" / p).resolve().is_file() for p in manifest["path"])  # paths resolve
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before  # nothing under DATA changed


def test_near_duplicates_are_offered_together_and_can_be_split(photos, tmp_path):
    session = _session(photos, tmp_path)
    original = session.index["img000.png"]
    item = session.describe(original)
    assert [g["path"] for g in item["group"]] == ["copy_of_img000.png"]
    client = _client(session)
    r = client.post("/api/answer", json={"labeller": "ann", "id": original, "label": "square",
                                         "group": [item["group"][0]["id"]]})
    assert r.json()["recorded"] == 2
    assert client.post("/api/undo", json={"labeller": "ann"}).json()["item"]["path"] == "img000.png"
    assert session.answered("ann").empty  # the whole answer, both images, is undone
    r = client.post("/api/answer", json={"labeller": "bob", "id": original, "label": "square", "group": []})
    assert r.json()["recorded"] == 1  # split: only the one image


def test_two_labellers_with_a_disagreement_give_kappa_and_the_rule_decides(photos, tmp_path):
    session = _session(photos, tmp_path, overlap=2)
    client = _client(session)
    seen = []
    for k in range(4):
        item = client.get("/api/next", params={"labeller": "ann"}).json()["item"]
        client.post("/api/answer", json={"labeller": "ann", "id": item["id"],
                                         "label": ["circle", "square"][k % 2]})
        seen.append(item)
    for k in range(4):  # bob is asked ann's images first (overlap 2), and disagrees once
        item = client.get("/api/next", params={"labeller": "bob"}).json()["item"]
        assert item["id"] in [s["id"] for s in seen]
        mine = ["circle", "square"][[s["id"] for s in seen].index(item["id"]) % 2]
        client.post("/api/answer", json={"labeller": "bob", "id": item["id"],
                                         "label": "triangle" if k == 0 else mine})
    pair = client.get("/api/state").json()["agreement"]["pairs"][0]
    assert pair["images"] == 4 and pair["agreement"] == 0.75
    answer = client.get("/api/manifest")
    table = pd.read_csv(io.StringIO(answer.text), keep_default_na=False)
    assert answer.status_code == 200 and len(table) == 3  # the tie dropped
    assert {"vote_ann", "vote_bob", "agreed"} <= set(table.columns)
    assert len(session.export()) == 3
    session.rule = "reviewer:bob"
    assert len(session.export()) == 4


def test_bad_requests_are_4xx_and_no_path_can_be_requested(photos, tmp_path):
    session = _session(photos, tmp_path)
    client = _client(session, api_key="s3cret")
    assert client.get("/api/state").status_code == 401
    headers = {"X-API-Key": "s3cret"}
    assert client.get("/api/state", headers=headers).status_code == 200
    assert client.get("/api/image/9999", headers=headers).status_code == 422
    for sneaky in ("..%2F..%2Fetc%2Fpasswd", "-1", "img000.png"):
        assert client.get(f"/api/image/{sneaky}", headers=headers).status_code in (404, 422)
    bad = client.post("/api/answer", headers=headers, json={"labeller": "ann", "id": 0, "label": "horse"})
    assert bad.status_code == 422 and "horse" in bad.json()["error"]["message"]
    assert client.post("/api/answer", headers=headers,
                       json={"labeller": "a b", "id": 0, "label": "circle"}).status_code == 422
    assert client.post("/api/upload", headers=headers).status_code in (404, 405)
    with pytest.raises(ConfigError, match="needs --api-key"):
        run_label_server(session, host="0.0.0.0")
    with pytest.raises(ConfigError, match="'classes'"):
        label(photos, "circle", tmp_path / "x.csv", serve=False, backbone="features", progress=False)


def test_an_existing_partial_manifest_is_continued(photos, tmp_path):
    out = tmp_path / "out" / "labels.csv"
    out.parent.mkdir()
    out.write_text("path,label\n../photos/img002.png,circle\n../photos/img004.png,horse\n")
    session = _session(photos, tmp_path)
    assert session.labelled() == {session.index["img002.png"]: "circle"}  # an unknown class is not taken
    assert session.next("ann")["path"] != "img002.png"


def test_the_manifest_trains_and_votes_are_not_taken_for_groups(photos, photo_truth, tmp_path):
    import imgcls

    session = _session(photos, tmp_path)
    for name, truth in photo_truth.items():
        session.answer("ann", session.index[name], truth)
        session.answer("bob", session.index[name], truth)
    session.wait()
    run = imgcls.train(str(session.out), model="logistic_regression", features="hist", out=tmp_path / "run",
                       progress=False)
    assert run.metrics["dataset"]["images"] == len(photo_truth)
    assert not [c for c in run.metrics["checks"] if c["check"] == "group_representation"]


def test_a_multi_label_session_takes_label_sets_and_its_manifest_trains(photos, photo_truth, tmp_path):
    import imgcls

    session = _session(photos, tmp_path, task="multilabel")
    client = _client(session)
    names = sorted(photo_truth)
    for k, name in enumerate(names):
        labels = "" if k % 5 == 0 else photo_truth[name] + ("|square" if k % 3 == 0 else "")
        r = client.post("/api/answer", json={"labeller": "ann", "id": session.index[name], "label": labels})
        assert r.status_code == 200
    bad = client.post("/api/answer", json={"labeller": "ann", "id": 0, "label": "circle|horse"})
    assert bad.status_code == 422 and "horse" in bad.json()["error"]["message"]
    session.wait()
    state = client.get("/api/state").json()
    assert state["task"] == "multilabel" and state["labelled"] == len(names)
    estimate = state["estimate"]
    assert estimate["metric"] == "micro-F1" and 0 <= estimate["low"] <= estimate["score"] <= estimate["high"]
    guess = session.describe(session.index[names[1]])["guess"]
    assert guess is not None and set(guess["label"].split("|")) <= {"circle", "square", "triangle", ""}
    manifest = pd.read_csv(session.out, keep_default_na=False)
    assert len(manifest) == len(names) and (manifest["label"] == "").sum() == len(names[::5])
    assert manifest["label"].str.contains("|", regex=False).any()
    run = imgcls.train(str(session.out), model="logistic_regression", features="hist", out=tmp_path / "run",
                       overrides=["task.kind=multilabel"], progress=False)
    assert run.metrics["test"]["task"] == "multilabel"


def test_random_draws_are_asked_first_and_counted_only_once_answered(photos, photo_truth, tmp_path):
    session = _session(photos, tmp_path, random_share=0.5)
    client = _client(session)
    for _ in range(9):
        item = client.get("/api/next", params={"labeller": "ann"}).json()["item"]
        client.post("/api/answer", json={"labeller": "ann", "id": item["id"],
                                         "label": photo_truth[item["path"]]})
        session.wait()
    drawn = set(json.loads(session.store.meta("random_draws")))
    answered = set(session.answered("ann")["path"])
    assert drawn and drawn <= answered  # asked at random, and answered
    waiting = {session.keys[r] for r in session.learner.offered} - answered
    assert not waiting & drawn  # drawn at random but not answered yet: not in the sample
    session.store.close()
    again = _session(photos, tmp_path, random_share=0.5)  # a restart keeps the estimate's sample
    assert again._drawn == drawn


def test_two_labellers_on_one_server_are_shown_different_images(photos, tmp_path):
    session = _session(photos, tmp_path)
    ann, bob = session.next("ann"), session.next("bob")
    assert ann["path"] != bob["path"]  # ann's image is leased to her
    assert session.next("ann")["path"] == ann["path"]  # a reload shows her the same one
    with pytest.raises(ConfigError, match="reserved"):
        session.next("imported")
    with pytest.raises(ConfigError, match="reserved"):
        session.undo("imported")


def test_the_data_manifest_is_never_the_output_and_hosts_are_checked(photos, tmp_path):
    manifest = tmp_path / "images.csv"
    manifest.write_text("path\n" + "".join(f"photos/{p.name}\n" for p in sorted(photos.glob("img*.png"))))
    with pytest.raises(ConfigError, match="never written"):
        label(manifest, "circle,square", manifest, serve=False, backbone="features", progress=False)
    session = _session(photos, tmp_path)
    client = TestClient(create_label_app(session, allowed_hosts=["127.0.0.1", "localhost"]),
                        base_url="http://127.0.0.1")
    assert client.get("/api/state").status_code == 200
    assert client.get("/api/state", headers={"host": "evil.example"}).status_code == 400
    image = client.get("/api/image/0")
    assert image.headers["x-content-type-options"] == "nosniff"
    assert image.headers["content-type"] == "image/png"


def test_a_partial_multi_label_manifest_keeps_its_empty_labels_only_when_counted(photos, tmp_path):
    out = tmp_path / "out" / "labels.csv"
    out.parent.mkdir()
    out.write_text("path,label\n../photos/img002.png,circle|square\n../photos/img004.png,\n")
    session = _session(photos, tmp_path, task="multilabel")
    assert session.labelled() == {session.index["img002.png"]: "circle|square"}
    session.store.close()
    ours = tmp_path / "ours" / "labels.csv"
    ours.parent.mkdir()
    ours.write_text("path,label,votes,agreed\n../photos/img004.png,,1,True\n")
    again = label(photos, "circle,square,triangle", ours, serve=False, backbone="features", progress=False,
                  task="multilabel")
    assert again.labelled() == {again.index["img004.png"]: ""}  # our manifest's "none of them"


def test_every_error_answers_in_the_servers_shape(photos, tmp_path):
    client = _client(_session(photos, tmp_path), api_key="s3cret")
    missing = client.post("/api/answer", params={"key": "s3cret"}, json={"labeller": "ann"})
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "invalid_request"
    assert client.get("/api/state").json()["error"]["code"] == "unauthorized"
    assert client.get("/api/state", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_files_no_browser_shows_are_sent_as_png(tmp_path):
    """DICOM (windowed as the file says) and TIFF reach the labelling page as PNG."""
    import numpy as np
    from PIL import Image

    from helpers import write_dicom

    folder = tmp_path / "scans"
    rng = np.random.default_rng(0)
    for n in range(6):
        write_dicom(folder / f"s{n}.dcm", rng.integers(0, 4095, (40, 48)), window=(2048, 4096))
    Image.fromarray(rng.integers(0, 255, (40, 48, 3)).astype(np.uint8)).save(folder / "photo.tif")
    session = label(folder, "a,b", tmp_path / "out" / "labels.csv", serve=False, backbone="features",
                    progress=False)
    client = _client(session)
    for item in range(len(session.files)):
        image = client.get(f"/api/image/{item}")
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(image.content)).size == (48, 40)
