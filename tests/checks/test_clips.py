"""`imgcls check` on video clips: length, rate and size per clip, short and broken clips,
near-duplicate clips."""

import shutil

from helpers import write_clip
from imgcls.checks import check


def test_clips_are_checked_like_images(tmp_path):
    root = tmp_path / "clips"
    write_clip(root / "grow" / "a.avi", step=2, frames=12)
    write_clip(root / "grow" / "short.avi", step=2, frames=4)
    write_clip(root / "shrink" / "b.avi", step=-2, frames=12, centre=(20, 28))
    shutil.copy(root / "grow" / "a.avi", root / "shrink" / "copy.avi")  # the same clip in both classes
    (root / "shrink" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    report = check(str(root), out=tmp_path / "out", progress=False, overrides=["data.frames=8"])
    found = {(f.path, f.check): f for f in report.issues}
    assert found[("shrink/broken.mp4", "unreadable")].severity == "error"
    assert "4 frames" in found[("grow/short.avi", "short_clip")].detail
    assert "12 frames at 10 fps (1.2 s), 48x48" in found[("grow/a.avi", "video")].detail
    assert ("grow/a.avi", "short_clip") not in found
    conflicts = {path for path, c in found if c == "label_conflict"}
    assert {"grow/a.avi", "shrink/copy.avi"} <= conflicts  # one clip, two labels


def test_folders_of_frames_are_checked_as_clips(tmp_path):
    from helpers import write_frame_folder

    root = tmp_path / "clips"
    write_frame_folder(root / "grow" / "a", step=2, frames=10)
    write_frame_folder(root / "grow" / "short", step=2, frames=3)
    shutil.copytree(root / "grow" / "a", root / "shrink" / "same")  # the same frames under two labels
    write_frame_folder(root / "shrink" / "b", step=-2, frames=10, centre=(20, 28))
    (root / "shrink" / "b" / "f5.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    report = check(str(root), out=tmp_path / "out", progress=False,
                   overrides=["data.frames=8", "data.frame_folders=true"])
    found = {(f.path, f.check): f for f in report.issues}
    assert "a folder of 10 frames, 48x48" in found[("grow/a", "video")].detail
    assert "3 frames" in found[("grow/short", "short_clip")].detail
    assert "f5.png" in found[("shrink/b", "unreadable")].detail  # the frame that broke the clip
    assert {"grow/a", "shrink/same"} <= {path for path, c in found if c == "label_conflict"}
    assert before == {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
