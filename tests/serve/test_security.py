"""Hostile or broken input is a 4xx naming the problem, never a 5xx; the API key; CORS."""

from __future__ import annotations

import base64
import re

import pytest

from helpers import write_bomb_png, write_empty, write_solid, write_text_as_png, write_truncated_jpeg

KEY = "s3cret-key"


def upload(client, path, name=None, content_type="image/png", url="/v1/predict"):
    return client.post(url, files=[("files", (name or path.name, path.read_bytes(), content_type))])


def assert_error(response, status, code, *words):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    for word in words:
        assert word in error["message"], error["message"]


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("writer", "status", "code", "words"), [
    (lambda p: write_empty(p / "empty.png"), 422, "empty_file", ["empty.png", "empty"]),
    (lambda p: write_text_as_png(p / "notes.png"), 415, "not_an_image", ["notes.png", "text"]),
    (lambda p: write_truncated_jpeg(p / "cut.jpg"), 422, "truncated_image", ["cut.jpg", "truncated"]),
    (lambda p: write_bomb_png(p / "bomb.png", 9000, 5000), 413, "too_many_pixels",
     ["bomb.png", "45,000,000"]),
    # PostScript is never offered to Pillow's EPS reader, which would run Ghostscript on it
    (lambda p: _write(p / "figure.png", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\nshowpage\n"),
     415, "not_an_image", ["figure.png"]),
])
def test_bad_files_name_the_file_and_the_problem(client, tmp_path, writer, status, code, words):
    assert_error(upload(client, writer(tmp_path)), status, code, *words)


def test_corrupt_png_and_the_content_type_header_is_not_trusted(client, tmp_path, png_files):
    data = bytearray(png_files[0].read_bytes())
    data[40:80] = bytes(40)  # the header still says PNG, the data is damaged
    bad = tmp_path / "broken.png"
    bad.write_bytes(bytes(data))
    response = upload(client, bad)
    assert 400 <= response.status_code < 500 and "broken.png" in response.json()["error"]["message"]
    # a real PNG sent as text/plain with a .txt name is still read from its bytes
    ok = upload(client, png_files[0], name="image.txt", content_type="text/plain")
    assert ok.status_code == 200 and ok.json()["results"][0]["error"] is None


def test_pixel_limit_is_checked_before_decoding(make_client, tmp_path):
    client = make_client(max_pixels=10_000)
    big = write_solid(tmp_path / "big.png", (1, 2, 3), size=(200, 100))
    assert_error(upload(client, big), 413, "too_many_pixels", "big.png", "20,000")


def test_bad_base64_and_bad_json(client):
    assert_error(client.post("/v1/predict", json={"images": ["@@not base64@@"]}), 422, "bad_base64",
                 "images[0]", "base64")
    text = base64.b64encode(b"hello there").decode()
    assert_error(client.post("/v1/predict", json={"images": [text]}), 415, "not_an_image", "images[0]")
    assert_error(client.post("/v1/predict", json={"images": []}), 422, "invalid_request", "images")
    assert_error(client.post("/v1/predict", json={"pictures": ["x"]}), 422, "invalid_request")
    assert_error(client.post("/v1/predict", content=b"{oops", headers={"content-type": "application/json"}),
                 422, "invalid_json")


def test_missing_files_and_unsupported_bodies(client):
    assert_error(client.post("/v1/predict", data={"other": "x"}, files=[("upload", ("a.png", b"x"))]),
                 422, "no_images", "files")
    assert_error(client.post("/v1/predict", content=b"raw", headers={"content-type": "image/png"}),
                 415, "unsupported_media_type", "multipart/form-data")
    assert_error(client.post("/v1/predict"), 415, "unsupported_media_type")


def test_too_many_images(make_client, png_files):
    client = make_client(max_images_per_request=2)
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in png_files[:3]]
    assert_error(client.post("/v1/predict", files=files), 413, "too_many_images", "limit is 2")
    b64 = [base64.b64encode(p.read_bytes()).decode() for p in png_files[:3]]
    assert_error(client.post("/v1/predict", json={"images": b64}), 413, "too_many_images", "3 images")


def test_oversize_body_is_refused_before_and_while_reading(make_client, png_files):
    client = make_client(max_upload_bytes=20_000)
    assert_error(client.post("/v1/predict", files=[("files", ("big.png", bytes(50_000), "image/png"))]),
                 413, "payload_too_large", "20,000")

    def chunks():  # no Content-Length: the limit applies as the body streams in
        for _ in range(5):
            yield bytes(10_000)

    streamed = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert_error(streamed, 413, "payload_too_large", "20,000")
    small = [("files", ("s.png", png_files[0].read_bytes(), "image/png"))]
    assert client.post("/v1/predict", files=small).status_code == 200


def test_api_key_protects_predict_and_reload_only(make_client, png_files):
    client = make_client(api_key=KEY)
    files = [("files", ("a.png", png_files[0].read_bytes(), "image/png"))]
    assert_error(client.post("/v1/predict", files=files), 401, "unauthorized", "X-API-Key")
    assert client.post("/v1/predict", files=files).headers["www-authenticate"] == "Bearer"
    for headers, status in [({"X-API-Key": "wrong"}, 401), ({"Authorization": "Bearer wrong"}, 401),
                            ({"Authorization": f"Bearer {KEY}"}, 200), ({"X-API-Key": KEY}, 200)]:
        assert client.post("/v1/predict", files=files, headers=headers).status_code == status, headers
    assert client.post("/v1/models/shapes/reload").status_code == 401
    assert client.post("/v1/models/shapes/reload", headers={"X-API-Key": KEY}).status_code == 200
    for path in ("/healthz", "/readyz", "/metrics", "/", "/v1/models"):
        assert client.get(path).status_code == 200, path
    assert client.get("/v1/models").json()["auth_required"] is True


def test_api_key_comes_from_the_environment(monkeypatch):
    from imgcls.config import ServeConfig

    monkeypatch.setenv("IMGCLS_API_KEY", KEY)
    assert ServeConfig(models=["x"]).api_key.get_secret_value() == KEY
    assert KEY not in repr(ServeConfig(models=["x"]))
    monkeypatch.delenv("IMGCLS_API_KEY")
    assert ServeConfig(models=["x"]).api_key is None


def test_cors_is_off_by_default_and_on_for_listed_origins(make_client):
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    closed = make_client()
    assert "access-control-allow-origin" not in closed.get("/healthz", headers={"Origin": "https://x"}).headers
    assert closed.options("/v1/predict", headers=preflight).status_code in (404, 405)
    opened = make_client(cors_origins=["https://app.example"])
    answer = opened.options("/v1/predict", headers=preflight)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in opened.get("/healthz", headers={"Origin": "https://evil"}).headers


def test_no_bad_input_caused_a_server_error(client, tmp_path):
    for writer in (write_empty, write_text_as_png, write_truncated_jpeg):
        upload(client, writer(tmp_path / "f.png"))
    client.post("/v1/predict", json={"images": ["%%%"]})
    client.post("/v1/models/missing/predict", json={"images": ["AAAA"]})
    metrics = client.get("/metrics").text
    server_errors = [line for line in metrics.splitlines() if line.startswith("imgcls_http_requests_total{")
                     and re.search(r'status="5\d\d"', line) and 'route="/readyz"' not in line]
    assert not server_errors  # /readyz answers 503 while loading, by design
    assert 'imgcls_errors_total{code="not_an_image"}' in metrics
    assert 'imgcls_errors_total{code="unknown_model"} 1.0' in metrics


def test_reload_is_off_without_a_configured_key(client, png_files):
    cross_site = {"Origin": "https://evil.example"}  # a bodyless POST: no CORS preflight protects it
    for name in ("shapes", "missing"):
        assert_error(client.post(f"/v1/models/{name}/reload", headers=cross_site), 403, "reload_disabled",
                     "IMGCLS_API_KEY", "enable reload")
    before = client.get("/v1/models/shapes").json()["loaded_at"]
    assert client.get("/v1/models/shapes").json()["loaded_at"] == before  # nothing was reloaded
    files = [("files", ("a.png", png_files[0].read_bytes(), "image/png"))]
    assert client.post("/v1/predict", files=files).status_code == 200  # predict stays open
    reload = client.get("/openapi.json").json()["paths"]["/v1/models/{name}/reload"]["post"]
    assert "403" in reload["responses"]


def test_reload_failing_in_any_way_is_reload_failed_and_the_old_version_serves(make_client, png_files):
    client = make_client(api_key=KEY)
    headers = {"X-API-Key": KEY}
    store = client.app.state.imgcls.store
    version = store.get("shapes").version

    def half_written(path):
        raise OSError(f"[Errno 2] No such file or directory: '{path}/model/model.skops'")

    store.loader = half_written
    answer = client.post("/v1/models/shapes/reload", headers=headers)
    assert_error(answer, 500, "reload_failed", "Reloading 'shapes' failed",
                 f"still serving version {version}", "No such file")
    files = [("files", ("a.png", png_files[0].read_bytes(), "image/png"))]
    served = client.post("/v1/predict", files=files, headers=headers)
    assert served.status_code == 200 and served.json()["version"] == version
    assert client.get("/readyz").status_code == 200
