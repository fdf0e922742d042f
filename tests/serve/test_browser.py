"""The web page in a real browser: upload images, see the top-k bars, the predicted label and
the heat maps."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from helpers import CHROMIUM, chromium_page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium "
                                "(`make test` installs it with tools/ensure-debian-package.sh)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server_url(shapes_run):
    import uvicorn

    from imgcls.config import ServeConfig
    from imgcls.serve import create_app

    port = free_port()
    app = create_app(ServeConfig(models=[str(shapes_run)], port=port, api_key=None))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_upload_shows_top_k_bars(server_url, png_files, tmp_path):
    import httpx
    from playwright.sync_api import expect

    image = png_files[0]
    deadline = time.monotonic() + 20
    while httpx.get(f"{server_url}/readyz").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    answer = httpx.post(f"{server_url}/v1/predict", files=[("files", (image.name, image.read_bytes()))])
    expected = answer.json()["results"][0]["predictions"][0]["label"]
    shot = Path(os.environ.get("IMGCLS_SCREENSHOT") or tmp_path / "serve-page.png")

    with chromium_page() as (page, errors):
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(server_url + "/")
        expect(page.locator("#model option[value=shapes]")).to_have_count(1, timeout=15_000)
        expect(page.locator("#model-info")).to_contain_text("3 classes")
        page.set_input_files("#files", [str(p) for p in png_files[:3]])
        top = page.locator(".card").first.locator(".pred.top .label")
        expect(top).to_have_text(expected, timeout=15_000)
        expect(page.locator(".card .bars").first.locator(".pred")).to_have_count(3)
        expect(page.locator("#status")).to_contain_text("Done")
        page.get_by_label("Heat map").check()
        expect(page.locator(".card img.heat")).to_have_count(3, timeout=20_000)
        expect(page.locator(".card img.heat").first).to_be_visible()
        expect(page.locator(".heat-note").first).to_contain_text("occlusion")
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        page.get_by_role("tab", name="Camera").click()
        expect(page.locator("#camera-toggle")).to_be_visible()
        assert errors == [], errors  # no CSP violations, no script errors
    assert shot.stat().st_size > 1000
