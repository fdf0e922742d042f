"""Health, metrics, the web page, the OpenAPI document and the `imgcls serve` command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest


def test_metrics_after_requests(client, png_files):
    client.post("/v1/predict", files=[("files", (png_files[0].name, png_files[0].read_bytes()))])
    client.post("/v1/predict", files=[("files", ("x.png", b"text"))])
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'imgcls_http_requests_total{method="POST",route="/v1/predict",status="200"} 1.0' in text
    assert 'imgcls_http_requests_total{method="POST",route="/v1/predict",status="415"} 1.0' in text
    assert 'imgcls_http_request_duration_seconds_bucket{le="0.5",route="/v1/predict"}' in text
    assert 'imgcls_batch_size_count{model="shapes"} 1.0' in text
    assert 'imgcls_errors_total{code="not_an_image"} 1.0' in text
    assert 'imgcls_images_predicted_total{model="shapes"} 1.0' in text
    assert 'imgcls_model_info{backend="sklearn",model="shapes"' in text
    client.get("/no/such/page")
    assert 'route="unmatched"' in client.get("/metrics").text


def test_metric_labels_stay_bounded_whatever_the_client_sends(client):
    for method in ("FOO", "BAR1", "PROPFIND", "X-" + "A" * 40):  # uvicorn/h11 accept any token
        client.request(method, "/healthz")
    for i in range(3):
        client.get(f"/made/up/{i}")
        client.post(f"/v1/models/name{i}/predict", json={"images": ["AAAA"]})
    text = client.get("/metrics").text
    series = [line for line in text.splitlines() if line.startswith("imgcls_http_requests_total{")]
    methods = set(re.findall(r'method="([^"]*)"', "\n".join(series)))
    routes = set(re.findall(r'route="([^"]*)"', "\n".join(series)))
    assert methods == {"GET", "POST", "other"}
    assert 'imgcls_http_requests_total{method="other",route="/healthz",status="405"} 4.0' in text
    assert "FOO" not in text and "made" not in text and "name0" not in text
    assert routes == {"/healthz", "/readyz", "unmatched", "/v1/models/{name}/predict"}
    assert 'route="unmatched",status="404"} 3.0' in text


def test_non_finite_test_metrics_are_left_out(make_client, shapes_run, tmp_path):
    import json

    from imgcls.serve.store import run_test_metrics

    run = tmp_path / "nan-run"
    shutil.copytree(shapes_run, run)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["test"].update(accuracy=float("nan"), loss=float("inf"), flag=True)
    metrics["test"]["macro"]["f1"] = float("-inf")
    (run / "metrics.json").write_text(json.dumps(metrics))  # json writes NaN / Infinity, and reads them
    flat = run_test_metrics(run)
    assert flat and not {"accuracy", "loss", "flag", "macro_f1"} & set(flat) and "macro_precision" in flat
    client = make_client([str(run)])
    listing = client.get("/v1/models")
    assert listing.status_code == 200 and "accuracy" not in listing.json()["models"][0]["test_metrics"]


def test_non_finite_probabilities_are_a_clear_model_error(client, png_files):
    import numpy as np

    model = client.app.state.imgcls.store.get("shapes")
    model.batcher.predict_fn = lambda images: np.full((len(images), 3), np.nan)
    answer = client.post("/v1/predict", files=[("files", (png_files[0].name, png_files[0].read_bytes()))])
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error["code"] == "model_error"
    assert "non-finite" in error["message"] and "shapes" in error["message"]


def test_each_app_has_its_own_registry(make_client):
    first, second = make_client(), make_client()
    first.get("/healthz")
    assert 'route="/healthz"' in first.get("/metrics").text
    assert 'route="/healthz"' not in second.get("/metrics").text


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["models"] == {"shapes": "loaded"}


def test_web_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200 and "<title>imgcls" in response.text
    csp = response.headers["content-security-policy"]
    assert "script-src 'self' 'wasm-unsafe-eval' 'sha256-" in csp and "connect-src 'self'" in csp
    external = r"""(src|href)=["']?(https?:)?//|url\(|@import"""
    assert not re.search(external, response.text)
    for hook in ('id="files"', 'id="camera-toggle"', 'id="api-key"', 'id="model"', "openCamera"):
        assert hook in response.text
    assert re.findall(r'<script src="([^"]+)"', response.text) == ["/web/imgcls-web.js"]  # its own origin
    assert "getUserMedia" in client.get("/web/imgcls-web.js").text


def test_openapi_documents_routes_and_errors(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"/v1/predict", "/v1/models", "/v1/models/{name}", "/v1/models/{name}/predict",
            "/v1/models/{name}/reload", "/healthz", "/readyz", "/metrics"} <= set(paths)
    predict = paths["/v1/predict"]["post"]
    assert set(predict["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert {"404", "413", "415", "422", "500"} <= set(predict["responses"])
    assert predict["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse")
    assert "/" not in paths


def test_serve_command_fails_clearly_on_a_missing_run(tmp_path):
    out = subprocess.run([sys.executable, "-m", "imgcls", "serve", str(tmp_path / "missing")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "does not exist" in out.stderr


def test_run_server_warns_when_exposed_without_a_key(shapes_run, monkeypatch, capsys):
    import uvicorn

    from imgcls.config import ServeConfig
    from imgcls.serve import run_server
    from imgcls.serve.server import is_loopback

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    run_server(ServeConfig(models=[str(shapes_run)], host="0.0.0.0", port=9, api_key=None))
    assert calls == [{"host": "0.0.0.0", "port": 9, "log_level": "info", "server_header": False,
                      "timeout_graceful_shutdown": 10}]
    assert "without an API key" in capsys.readouterr().err
    run_server(ServeConfig(models=[str(shapes_run)], host="127.0.0.1", api_key=None))
    assert "without an API key" not in capsys.readouterr().err
    assert is_loopback("localhost") and is_loopback("::1") and not is_loopback("0.0.0.0")


def test_run_server_refuses_to_start_when_a_model_fails(shapes_run, tmp_path, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    from imgcls.cli import app
    from imgcls.config import ServeConfig
    from imgcls.core.errors import ModelError
    from imgcls.serve import run_server

    broken = tmp_path / "broken"
    (broken / "model").mkdir(parents=True)
    (broken / "model" / "model.json").write_text("{not json")
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    with pytest.raises(ModelError, match=r"1 of 2 models failed to load, not serving: 'broken'"):
        run_server(ServeConfig(models=[str(broken), str(shapes_run)], api_key=None))
    result = CliRunner().invoke(app, ["serve", str(shapes_run), str(broken)])
    assert result.exit_code == 1 and "failed to load" in result.output and "broken" in result.output
    assert calls == []


def test_serve_command_passes_every_option(monkeypatch):
    from typer.testing import CliRunner

    import imgcls.serve
    from imgcls.cli import app

    seen = []
    monkeypatch.setattr(imgcls.serve, "run_server", seen.append)
    monkeypatch.delenv("IMGCLS_API_KEY", raising=False)
    result = CliRunner().invoke(app, [
        "serve", "a=runs/a", "--threads", "3", "--export", "--cors-origin", "https://a.example",
        "--cors-origin", "https://b.example", "--max-upload-bytes", "1000", "--max-pixels", "5000",
        "--max-images", "4", "--api-key", "k"])
    assert result.exit_code == 0, result.output
    config = seen[-1]
    assert (config.threads, config.export, config.cors_origins) == (3, True, ["https://a.example",
                                                                             "https://b.example"])
    assert (config.max_upload_bytes, config.max_pixels, config.max_images_per_request) == (1000, 5000, 4)
    assert config.api_key.get_secret_value() == "k"
    assert CliRunner().invoke(app, ["serve", "a", "--max-pixels", "0"]).exit_code == 0
    assert seen[-1].max_pixels is None  # 0 turns the pixel check off
    assert CliRunner().invoke(app, ["serve", "a"]).exit_code == 0
    defaults = seen[-1]
    assert (defaults.threads, defaults.export, defaults.cors_origins, defaults.max_pixels,
            defaults.max_upload_bytes, defaults.max_images_per_request) == (None, False, [], 40_000_000,
                                                                            20 * 1024 * 1024, 64)


@pytest.mark.parametrize("bad", [{"max_batch": 0}, {"backend": "tpu"}, {"models": []}])
def test_bad_settings_are_config_errors(bad):
    from imgcls.config import ServeConfig
    from imgcls.core.errors import ConfigError

    with pytest.raises(ConfigError, match="parameter"):
        ServeConfig.from_options(**({"models": ["x"]} | bad))


def test_nothing_is_kept_by_default_and_keeping_is_bounded(make_client, png_files, tmp_path, monkeypatch):
    import json as _json

    monkeypatch.chdir(tmp_path)
    plain = make_client()
    assert plain.post("/v1/predict", files=[("files", (png_files[0].name, png_files[0].read_bytes()))]
                      ).status_code == 200
    assert not (tmp_path / "served-images").exists()  # off by default: no image is stored

    keep = tmp_path / "kept"
    client = make_client(keep_requests=3, keep_dir=str(keep))
    for path in png_files[:5]:
        answer = client.post("/v1/predict", files=[("files", (path.name, path.read_bytes()))])
        assert answer.status_code == 200
    client.app.state.imgcls.keeper.close()  # wait for the background writes
    images = sorted((keep / "shapes").glob("*.png"))
    assert len(images) == 3  # the last three, the oldest deleted
    assert [p.read_bytes() for p in images] == [p.read_bytes() for p in png_files[2:5]]
    answers = [_json.loads(p.with_suffix(".json").read_text()) for p in images]
    assert [a["filename"] for a in answers] == [p.name for p in png_files[2:5]]
    assert all(a["model"] == "shapes" and a["label"] in ("circle", "square", "triangle") for a in answers)
    assert len(list((keep / "shapes").glob("*.json"))) == 3
