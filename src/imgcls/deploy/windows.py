"""Long videos with a sequence model: a label per sliding window, and a streaming predictor
that answers for every new frame (a camera).

``predict_windows(run, "shift.mp4", window=2.0, stride=1.0)`` cuts the video into windows of
``window`` seconds every ``stride`` seconds, samples the model's ``data.frames`` frames from each
(as training sampled whole clips) and returns one row per window: start, end, the label and its
probability, the top-k. Every frame any window needs is decoded once, in one pass, and resized
as it is read, so a long video never sits in memory at full size.

:class:`FrameStream` keeps the embeddings of the last ``frames`` frames; each ``push(frame)``
embeds one frame (the backbone's cost, once per frame) and runs the temporal head over the
window (microseconds), so the latency per frame is one backbone pass.

Example:
    >>> table = predict_windows("runs/gestures", "session.mp4", window=2.0)   # doctest: +SKIP
    >>> stream = FrameStream(imgcls.load_model("runs/gestures"))              # doctest: +SKIP
    >>> for frame in camera: print(stream.push(frame))                        # doctest: +SKIP
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import ConfigError, ModelError
from ..data.prepare import resize_image, to_channels
from ..data.video import VideoClip, clip_span, sample_indices
from ..models import SEQUENCE, Classifier
from ..runs import Run


def _sequence_model(model) -> Classifier:
    clf = model if isinstance(model, Classifier) else Run.open(model).model
    if not clf.supports(SEQUENCE):
        raise ModelError(f"Windows over a video need a sequence model (model.name=sequence); this is a "
                         f"{clf.family} model, which reads still images.")
    return clf


def predict_windows(model, video: str | Path, *, window: float = 2.0, stride: float | None = None,
                    top_k: int = 3) -> pd.DataFrame:
    """One row per window of ``window`` seconds, every ``stride`` seconds (default: window / 2)."""
    clf = _sequence_model(model)
    stride = window / 2 if stride is None else stride
    if window <= 0 or stride <= 0:
        raise ConfigError(f"--window and --stride must be positive seconds. Got {window} and {stride}.")
    clip = VideoClip(video)
    total, rate = clip.frame_count, clip.fps or 25.0
    span, step = max(1, round(window * rate)), max(1, round(stride * rate))
    starts = list(range(0, max(1, total - span + 1), step))
    plans = [sample_indices(total, clf.image_spec.frames, s, s + span, clf.image_spec.frame_stride)
             for s in starts]
    needed = np.unique(np.concatenate(plans)) if plans and total else np.zeros(0, np.int64)
    if not len(needed):
        raise ModelError(f"'{video}' holds no frame that decodes.")
    spec = clf.image_spec
    frames = dict(zip(needed.tolist(), clip.read(needed, lambda f: to_channels(
        resize_image(f, spec.size, spec.resize), 3)), strict=True))
    clips = np.stack([np.stack([frames[int(i)] for i in plan]) for plan in plans])
    proba = clf.predict_proba(clips)
    classes = np.asarray(clf.classes_, dtype=object)
    order = np.argsort(-proba, axis=1)[:, :min(top_k, len(classes))]
    rows = []
    for s, p, ranked in zip(starts, proba, order, strict=True):
        row = {"path": str(video), "start_s": round(s / rate, 3),
               "end_s": round(min(s + span, total) / rate, 3), "prediction": classes[ranked[0]],
               "confidence": float(p[ranked[0]])}
        for r, c in enumerate(ranked, 1):
            row[f"top{r}"], row[f"p{r}"] = classes[c], float(p[c])
        rows.append(row)
    return pd.DataFrame(rows)


class FrameStream:
    """A label for every new frame, from the last ``frames`` frames (a camera, a live feed)."""

    def __init__(self, model) -> None:
        self.clf = _sequence_model(model)
        self.spec = self.clf.image_spec
        self.step = max(1, self.spec.frame_stride)  # every step-th of the last frames is read
        self.window: deque[np.ndarray] = deque(maxlen=clip_span(self.spec.frames, self.spec.frame_stride))

    def push(self, frame: np.ndarray) -> dict | None:
        """Add one RGB (or grey) frame of any size; the answer once the window is full (None
        before), with the label, its probability and every class's."""
        prepared = to_channels(resize_image(np.asarray(frame), self.spec.size, self.spec.resize), 3)
        self.window.append(self.clf.frame_embeddings(prepared[None])[0])
        if len(self.window) < self.window.maxlen:
            return None
        proba = self.clf.proba_from_clip_embeddings(np.stack(list(self.window)[::self.step])[None])[0]
        best = int(proba.argmax())
        return {"label": str(self.clf.classes_[best]), "probability": float(proba[best]),
                "probabilities": {str(c): float(p) for c, p in zip(self.clf.classes_, proba, strict=True)}}

    def reset(self) -> None:
        self.window.clear()
