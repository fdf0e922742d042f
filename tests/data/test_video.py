"""Video clips as samples: decoding with OpenCV, uniform frame sampling, short and broken clips."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import write_clip
from imgcls.core.errors import ImageDecodeError
from imgcls.data import load_dataset
from imgcls.data.decode import decode_with_info
from imgcls.data.prepare import ImageSpec, prepare_image, read_prepared
from imgcls.data.video import CLIP, VideoClip, clip_facts, frames_of, sample_indices


def test_frames_are_sampled_evenly_and_a_short_clip_repeats_frames():
    assert sample_indices(12, 4).tolist() == [1, 4, 7, 10]
    assert sample_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]  # fewer frames than asked: repeats
    assert sample_indices(100, 2, start=10, end=20).tolist() == [12, 17]
    assert sample_indices(0, 4).tolist() == []


def test_a_clip_decodes_in_order_with_its_facts(tmp_path):
    path = write_clip(tmp_path / "grow.avi", step=2, frames=12)
    clip = VideoClip(path)
    facts = clip_facts(clip)
    assert facts["frames"] == 12 and facts["fps"] == 10.0 and (facts["width"], facts["height"]) == (48, 48)
    frames = frames_of(clip, 6)
    assert frames.shape == (6, 48, 48, 3) and frames.dtype == np.uint8
    areas = [int((f[..., 1] > 150).sum()) for f in frames]  # the square's area, frame by frame
    assert areas == sorted(areas) and areas[-1] > 2 * areas[0]  # it grows, in order
    window = frames_of(clip, 2, start_s=0.0, end_s=0.4)  # the first four frames only
    assert int((window[-1][..., 1] > 150).sum()) <= areas[1]


def test_prepared_clips_have_the_models_shape(tmp_path):
    path = write_clip(tmp_path / "shrink.avi", step=-2)
    spec = ImageSpec(size=32, channels=3, frames=8)
    clip, info = decode_with_info(path, draft_size=CLIP)
    assert info["format"] == "VIDEO" and info["frames"] == 12
    assert prepare_image(clip, spec).shape == (8, 32, 32, 3)
    still = prepare_image(np.zeros((40, 50), np.uint8), spec)  # a still image: a clip that does not move
    assert still.shape == (8, 32, 32, 3)


def test_a_broken_or_missing_video_is_a_reason_not_a_crash(tmp_path):
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"RIFF\0\0\0\0AVI not really a video")
    with pytest.raises(ImageDecodeError, match="cannot open as a video"):
        VideoClip(broken)
    spec = ImageSpec(size=32, channels=3, frames=4)
    reason = read_prepared(lambda draft, window: decode_with_info(broken, draft_size=draft)[0], spec)
    assert isinstance(reason, str) and "video" in reason
    with pytest.raises(ImageDecodeError, match="no such file"):
        VideoClip(tmp_path / "gone.mp4")


def test_class_folders_of_videos_are_a_dataset(tmp_path):
    for label, step in (("grow", 2), ("shrink", -2)):
        write_clip(tmp_path / "clips" / label / "a.avi", step=step)
    (tmp_path / "clips" / "grow" / "notes.txt").write_text("not a sample")
    ds = load_dataset(str(tmp_path / "clips"))
    assert sorted(ds.paths) == ["grow/a.avi", "shrink/a.avi"] and ds.ignored == {"not_image": 1}


def test_a_manifest_picks_seconds_of_a_clip(tmp_path):
    import pandas as pd

    write_clip(tmp_path / "g.avi", step=2, frames=20)  # 2 s at 10 fps, growing
    pd.DataFrame({"path": ["g.avi", "g.avi", "g.avi"], "label": ["early", "late", "all"],
                  "start": [0.0, 1.0, ""], "end": [1.0, 2.0, ""]}).to_csv(tmp_path / "m.csv", index=False)
    ds = load_dataset(str(tmp_path / "m.csv"))
    spec = ImageSpec(size=32, channels=3, frames=4)
    early, late, whole = (read_prepared(lambda d, w, i=i: ds.read_sample(i, d, w), spec) for i in range(3))
    area = [int((c[..., 1] > 150).sum()) for c in (early, late, whole)]
    assert area[0] < area[2] < area[1]  # the first second is the smaller square, the last the larger
    assert ds.fingerprint(0) != ds.fingerprint(1)  # cached apart
