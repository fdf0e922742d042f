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
