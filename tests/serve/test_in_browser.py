"""The page's in-browser mode: the server hands out the ONNX graph and onnxruntime-web, the
page classifies on the device, with the server's answers, without uploading the image."""

from __future__ import annotations

import hashlib
import shutil
import socket
import threading
import time

import pytest

from helpers import CHROMIUM, chromium_page, web_runtime_vendored


def test_only_an_onnx_export_is_offered_to_the_browser(make_client, shapes_run, onnx_run):
    client = make_client([f"shapes={shapes_run}", f"cnn={onnx_run}"])
    listed = {m["name"]: m["browser"] for m in client.get("/v1/models").json()["models"]}
    assert listed == {"shapes": False, "cnn": True}
    refused = client.get("/v1/models/shapes/browser")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "no_browser_model"
    assert "imgcls export" in refused.json()["error"]["message"]
    info = client.get("/v1/models/cnn/browser").json()
    assert info["metadata"]["classes"] == ["circle", "square", "triangle"] and info["runtime_url"] == "/web/"
    graph = client.get(info["model_url"])
    assert graph.status_code == 200 and graph.headers["content-type"] == "application/octet-stream"
    assert hashlib.sha256(graph.content).hexdigest() == info["sha256"] and len(graph.content) == info["bytes"]
    assert client.get("/v1/models/nope/browser").status_code == 404


def test_a_graph_changed_on_disk_is_not_handed_out(make_client, onnx_run, tmp_path):
    run = shutil.copytree(onnx_run, tmp_path / "cnn")
    client = make_client([f"cnn={run}"])
    url = client.get("/v1/models/cnn/browser").json()["model_url"]
    (run / "export" / "model.onnx").write_bytes(b"not the graph that was loaded")
    changed = client.get(url)
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "graph_changed"


def test_the_graph_is_as_private_as_predict(make_client, onnx_run):
    client = make_client([f"cnn={onnx_run}"], api_key="s3cret-key-for-tests")
    assert client.get("/v1/models/cnn/browser").status_code == 401
    assert client.get("/v1/models/cnn/model.onnx").status_code == 401
    headers = {"Authorization": "Bearer s3cret-key-for-tests"}
    assert client.get("/v1/models/cnn/model.onnx", headers=headers).status_code == 200


def test_runtime_files_are_served_and_nothing_else(client):
    script = client.get("/web/imgcls-web.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "ImgclsWeb" in script.text
    assert client.get("/web/secrets.txt").status_code == 404
    assert client.get("/web/..%2Fapp.py").status_code == 404
    if web_runtime_vendored():
        wasm = client.get("/web/ort-wasm-simd-threaded.wasm")
        assert wasm.status_code == 200 and wasm.headers["content-type"] == "application/wasm"
        assert wasm.content[:4] == b"\0asm"
    csp = client.get("/").headers["content-security-policy"]
    assert "'wasm-unsafe-eval'" in csp and "connect-src 'self'" in csp


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not CHROMIUM.exists() or not web_runtime_vendored(), reason="needs /usr/bin/chromium and "
                    "the vendored onnxruntime-web (`make test` installs both)")
def test_the_page_classifies_in_the_browser_as_the_server_does(onnx_run, png_files):
    import httpx
    import uvicorn
    from playwright.sync_api import expect

    from imgcls.config import ServeConfig
    from imgcls.serve import create_app

    port = _free_port()
    app = create_app(ServeConfig(models=[f"cnn={onnx_run}"], port=port, api_key=None))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started or httpx.get(f"{url}/readyz").status_code != 200:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        uploads = [("files", (p.name, p.read_bytes())) for p in png_files]
        answers = httpx.post(f"{url}/v1/predict", files=uploads)
        expected = [r["predictions"][0]["label"] for r in answers.json()["results"]]
        posts: list[str] = []
        with chromium_page() as (page, errors):
            page.on("request", lambda req: posts.append(req.url) if req.method == "POST" else None)
            page.goto(url + "/")
            expect(page.locator("#model option[value=cnn]")).to_have_count(1, timeout=15_000)
            page.select_option("#where", "browser")
            expect(page.locator("#status")).to_contain_text("in this browser", timeout=30_000)
            expect(page.locator("#heatmap")).to_be_disabled()
            page.set_input_files("#files", [str(p) for p in png_files])
            expect(page.locator("#status")).to_contain_text("this browser", timeout=30_000)
            tops = page.locator(".card .pred.top .label")
            expect(tops).to_have_count(len(png_files), timeout=30_000)
            got = [tops.nth(i).inner_text() for i in range(len(png_files))]
            page.click("#tab-camera")
            page.select_option("#fps", "8")
            page.click("#camera-toggle")
            deadline = time.monotonic() + 30  # polled: the page's CSP forbids wait_for_function's eval
            while page.evaluate("() => window.imgclsStats.frames") < 4:
                assert time.monotonic() < deadline, "the camera classified no frames"
                time.sleep(0.1)
            assert not errors, errors
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert got == expected
    assert not posts, posts  # no image went to the server
