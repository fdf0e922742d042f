"""A long video labelled window by window, a live feed frame by frame, clips through the
CLI and the server."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import imgcls
from helpers import train_clip_run, write_clip, write_frame_folder
from imgcls.core.errors import ModelError
from imgcls.data.video import VideoClip
from imgcls.deploy.windows import FrameStream, predict_windows

FRAMES = 6


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    return train_clip_run(tmp_path_factory, FRAMES, 16)


def _long_video(path):
    """Growing for 2.4 s, then shrinking for 2.4 s (24 frames each at 10 fps)."""
    import cv2

    grow, shrink = write_clip(path.with_name("a.avi"), step=1, frames=24, start=16), \
        write_clip(path.with_name("b.avi"), step=-1, frames=24, start=16)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 48))
    for part in (grow, shrink):
        for frame in VideoClip(part).read(np.arange(24)):
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_each_window_of_a_long_video_gets_its_label(clip_run, tmp_path):
    video = _long_video(tmp_path / "long.avi")
    table = predict_windows(clip_run, video, window=1.2, stride=0.6)
    assert list(table.columns[:5]) == ["path", "start_s", "end_s", "prediction", "confidence"]
    assert table["start_s"].tolist() == sorted(table["start_s"]) and table["start_s"].iloc[0] == 0.0
    first, last = table.iloc[0], table.iloc[-1]
    assert first["prediction"] == "grow" and last["prediction"] == "shrink", table
    assert np.allclose(table["p1"] + table["p2"], 1, atol=1e-4)


def test_the_stream_answers_once_its_window_is_full(clip_run, tmp_path):
    stream = FrameStream(clip_run)
    frames = VideoClip(write_clip(tmp_path / "g.avi", step=2, frames=12)).read(np.arange(12))
    answers = [stream.push(f) for f in frames]
    assert answers[:FRAMES - 1] == [None] * (FRAMES - 1)
    assert all(a is not None and set(a["probabilities"]) == {"grow", "shrink"} for a in answers[FRAMES - 1:])
    assert answers[-1]["label"] == "grow"
    stream.reset()
    assert stream.push(frames[0]) is None


def test_a_strided_stream_reads_every_other_frame_of_a_longer_window(clip_run, tmp_path):
    from imgcls.data.prepare import ImageSpec
    from imgcls.runs import load_run_model

    model = load_run_model(clip_run)
    model.frame_stride = 2
    stream = FrameStream(model)
    frames = VideoClip(write_clip(tmp_path / "g.avi", step=2, frames=14)).read(np.arange(14))
    need = (FRAMES - 1) * 2 + 1
    answers = [stream.push(f) for f in frames[:need]]
    assert answers[:need - 1] == [None] * (need - 1) and answers[-1] is not None
    clip = imgcls.prepare_images(frames[:need:2], ImageSpec(size=32, channels=3))[None]
    expected = model.predict_proba(clip)[0]
    assert np.allclose([answers[-1]["probabilities"][c] for c in model.classes_], expected, atol=1e-5)


def test_image_models_are_refused_for_windows(tmp_path):
    run = imgcls.train("shapes", model="logistic_regression", features="edges", out=tmp_path / "r",
                       progress=False, overrides=["model.image_size=32"])
    with pytest.raises(ModelError, match="sequence model"):
        FrameStream(run.path)


def test_clips_and_windows_from_python_and_the_cli(clip_run, tmp_path):
    video = _long_video(tmp_path / "long.avi")
    clip = write_clip(tmp_path / "c.avi", step=-2)
    cli = [sys.executable, "-c", "from imgcls.cli import main; main()", "predict", str(clip_run)]
    import pandas as pd

    assert imgcls.predict(clip_run, [str(clip)], progress=False)["prediction"].tolist() == ["shrink"]
    frames = tmp_path / "frames"
    for name, step in (("up", 3), ("down", -3)):
        write_frame_folder(frames / name, step=step, frames=10)
    listed = subprocess.run([*cli, str(frames), "-o", str(tmp_path / "folders.csv")], capture_output=True,
                            text=True)
    assert listed.returncode == 0, listed.stderr
    table = pd.read_csv(tmp_path / "folders.csv").sort_values("path")  # each folder one clip, one row
    assert [p.rsplit("/", 1)[-1] for p in table["path"]] == ["down", "up"]
    assert table["prediction"].tolist() == ["shrink", "grow"]
    out = tmp_path / "windows.csv"
    windows = subprocess.run([*cli, str(video), "--window", "1.2", "-o", str(out)], capture_output=True,
                             text=True)
    assert windows.returncode == 0, windows.stderr
    table = pd.read_csv(out)
    assert len(table) >= 5 and {"start_s", "end_s", "prediction"} <= set(table.columns)


def test_the_ray_engine_sends_clip_models_to_the_local_one(clip_run, tmp_path):
    from imgcls.core.errors import ConfigError

    with pytest.raises(ConfigError, match="local engine"):
        imgcls.predict(clip_run, [str(write_clip(tmp_path / "c.avi"))], engine="ray", progress=False)


def test_the_server_answers_a_clip_upload(clip_run, tmp_path):
    from fastapi.testclient import TestClient

    from helpers import wait_ready
    from imgcls.config import ServeConfig
    from imgcls.serve import create_app

    clip = write_clip(tmp_path / "up.avi", step=2)
    with TestClient(create_app(ServeConfig(models=[f"clips={clip_run}"], api_key=None))) as client:
        wait_ready(client)
        answer = client.post("/v1/predict", files=[("files", ("up.avi", clip.read_bytes()))])
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"][0]["label"] == "grow"
        broken = client.post("/v1/predict", files=[("files", ("x.avi", b"RIFF\0\0\0\0AVI junk"))])
        assert broken.status_code == 422 and "video" in broken.json()["error"]["message"]
