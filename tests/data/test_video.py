"""Video clips as samples: decoding with OpenCV, uniform frame sampling, short and broken clips."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import write_clip, write_frame_folder
from imgcls.config import DataConfig
from imgcls.core.errors import ImageDecodeError
from imgcls.data import load_dataset
from imgcls.data.decode import decode_with_info
from imgcls.data.facts import describe
from imgcls.data.prepare import ImageSpec, prepare_image, read_prepared
from imgcls.data.video import CLIP, VideoClip, clip_facts, frames_of, sample_indices


def test_frames_are_sampled_evenly_and_a_short_clip_repeats_frames():
    assert sample_indices(12, 4).tolist() == [1, 4, 7, 10]
    assert sample_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]  # fewer frames than asked: repeats
    assert sample_indices(100, 2, start=10, end=20).tolist() == [12, 17]
    assert sample_indices(0, 4).tolist() == []


def test_a_fixed_stride_takes_consecutive_frames_from_the_middle():
    assert sample_indices(20, 4, stride=3).tolist() == [5, 8, 11, 14]  # 10 frames wide, centred in 20
    assert sample_indices(20, 4, 10, 20, stride=2).tolist() == [11, 13, 15, 17]
    assert sample_indices(5, 4, stride=2).tolist() == [0, 2, 4, 4]  # too short: the last repeats
    assert sample_indices(20, 4, stride=1).tolist() == [8, 9, 10, 11]


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


def test_a_folder_of_frames_is_one_clip_read_in_natural_order(tmp_path):
    folder = write_frame_folder(tmp_path / "grow" / "c1", step=3, frames=12)
    clip, info = decode_with_info(folder, draft_size=CLIP)
    assert info["format"] == "FRAMES" and info["frames"] == 12 and (info["width"], info["height"]) == (48, 48)
    assert [f.name for f in clip.files[:3]] == ["f1.png", "f2.png", "f3.png"]  # not f1, f10, f11
    frames = frames_of(clip, 4)
    area = [int((f[..., 1] > 150).sum()) for f in frames]
    assert area == sorted(area) and area[0] < area[-1]  # growing, in the files' order
    with pytest.raises(ImageDecodeError, match="sequence model"):  # an image model is told what it is
        decode_with_info(folder)
    with pytest.raises(ImageDecodeError, match="no frame rate"):
        frames_of(clip, 4, start_s=0.5)


def test_a_bad_frame_names_itself_and_an_empty_folder_is_a_reason(tmp_path):
    folder = write_frame_folder(tmp_path / "c", frames=6)
    (folder / "f3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    spec = ImageSpec(size=32, channels=3, frames=6)
    reason = read_prepared(lambda draft, window: decode_with_info(folder, draft_size=draft)[0], spec)
    assert isinstance(reason, str) and "f3.png" in reason
    (tmp_path / "empty").mkdir()
    reason = read_prepared(lambda draft, window: decode_with_info(tmp_path / "empty", draft_size=draft)[0],
                           spec)
    assert isinstance(reason, str) and "no image files" in reason


def test_class_folders_of_frame_folders_are_a_dataset_only_when_asked(tmp_path):
    for label, step in (("grow", 2), ("shrink", -2)):
        for i in range(2):
            write_frame_folder(tmp_path / "clips" / label / f"c{i}", step=step, frames=5)
    write_frame_folder(tmp_path / "clips" / "grow", frames=1)  # a stray image beside the clips
    ds = load_dataset(DataConfig(source=str(tmp_path / "clips"), frame_folders=True))
    assert sorted(ds.paths) == ["grow/c0", "grow/c1", "shrink/c0", "shrink/c1"]
    assert ds.ignored == {"image_outside_frame_folder": 1}
    assert describe(ds).videos == 4
    before = ds.fingerprint(0)
    (tmp_path / "clips" / "grow" / "c0" / "f2.png").write_bytes((tmp_path / "clips" / "grow" / "c0" /
                                                                 "f4.png").read_bytes())
    assert ds.fingerprint(0) != before  # a frame edited in place is a new clip to the caches
    as_images = load_dataset(str(tmp_path / "clips"))  # without the switch: every frame an image
    assert len(as_images) == 21 and describe(as_images).videos == 0
