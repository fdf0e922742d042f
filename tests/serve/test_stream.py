"""Live video for a sequence model: one frame per request, a window of frames per session."""

from __future__ import annotations

import io
import socket
import threading
import time

import numpy as np
import pytest

from helpers import CHROMIUM, chromium_page, train_clip_run, write_clip
from imgcls.data.video import VideoClip

FRAMES = 4


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    return train_clip_run(tmp_path_factory, FRAMES, 10)


def _png(frame: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_session_answers_once_its_window_is_full(make_client, clip_run, shapes_run, tmp_path):
    client = make_client([f"clips={clip_run}", f"shapes={shapes_run}"])
    info = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert info["clips"]["frames"] == FRAMES and info["shapes"]["frames"] is None
    frames = VideoClip(write_clip(tmp_path / "g.avi", step=2, frames=12)).read(np.arange(12))
    answers = []
    for frame in frames[:FRAMES + 2]:
        got = client.post("/v1/models/clips/stream?session=camera-one",
                          files=[("files", ("f.png", _png(frame)))])
        assert got.status_code == 200, got.text
        answers.append(got.json())
    assert [a["ready"] for a in answers] == [False] * (FRAMES - 1) + [True] * 3
    assert answers[0]["frames"] == 1 and answers[-1]["frames"] == FRAMES and answers[-1]["needed"] == FRAMES
    assert answers[-1]["label"] == "grow" and len(answers[-1]["predictions"]) == 2
    one = [("files", ("f.png", _png(frames[0])))]
    assert client.post("/v1/models/clips/stream?session=camera-two", files=one).json()["frames"] == 1  # apart
    refused = client.post("/v1/models/shapes/stream?session=camera-one", files=one)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_a_sequence_model"
    assert client.post("/v1/models/clips/stream?session=x", files=one).status_code == 400
    junk = client.post("/v1/models/clips/stream?session=camera-one",
                       files=[("files", ("f.png", b"not an image"))])
    assert junk.status_code in (415, 422)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_the_page_camera_streams_to_a_video_model(clip_run):
    import uvicorn
    from playwright.sync_api import expect

    from imgcls.config import ServeConfig
    from imgcls.serve import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ServeConfig(models=[f"clips={clip_run}"], port=port,
                                                                   api_key=None)),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        import httpx

        deadline = time.monotonic() + 30
        while not server.started or httpx.get(f"http://127.0.0.1:{port}/readyz").status_code != 200:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.05)
        with chromium_page() as (page, errors):
            page.goto(f"http://127.0.0.1:{port}/")
            expect(page.locator("#model-info")).to_contain_text("frames per clip", timeout=15_000)
            page.click("#tab-camera")
            page.select_option("#fps", "8")
            page.click("#camera-toggle")
            deadline = time.monotonic() + 30
            while page.evaluate("() => window.imgclsStats.frames") < FRAMES + 2:
                assert time.monotonic() < deadline, "the camera sent no frames"
                time.sleep(0.1)
            expect(page.locator("#camera-bars .pred")).to_have_count(2)
            assert not errors, errors
    finally:
        server.should_exit = True
        thread.join(timeout=10)
