"""Health, metrics, the web page, the OpenAPI document and the `imgcls serve` command."""

from __future__ import annotations

import re
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
    assert "script-src 'sha256-" in csp and "connect-src 'self'" in csp
    external = r"""(src|href)=["']?(https?:)?//|url\(|@import"""
    assert not re.search(external, response.text)
    for hook in ('id="files"', 'id="camera-toggle"', 'id="api-key"', 'id="model"', "getUserMedia"):
        assert hook in response.text


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


@pytest.mark.parametrize("bad", [{"max_batch": 0}, {"backend": "tpu"}, {"models": []}])
def test_bad_settings_are_config_errors(bad):
    from imgcls.config import ServeConfig
    from imgcls.errors import ConfigError

    with pytest.raises(ConfigError, match="parameter"):
        ServeConfig.from_options(**({"models": ["x"]} | bad))
