"""What the sequence models of both schools share (:mod:`imgcls.models.sequence`,
:mod:`imgcls.models.sequence_classical`): clips in, (N, frames, size, size, 3) uint8; a vector
per frame (``frame_embeddings``) read over the clip (``proba_from_clip_embeddings``); which
frames mattered, by temporal occlusion; and the clip's answer with one frame swapped for
others (``swapped_frame_proba``), which lets every image explanation method read a key frame."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..core.errors import ModelError
from ..data.prepare import ImageSpec
from .base import Classifier


class ClipModel:
    """A mixin for a Classifier of clips; the class gives ``frame_embeddings(frames)`` (N, D)
    and ``proba_from_clip_embeddings(X)`` for X (N, T, D)."""

    @property
    def image_spec(self) -> ImageSpec:
        return ImageSpec(size=int(self.image_size), channels=3, resize=self.resize, frames=int(self.frames),
                         frame_stride=int(self.frame_stride))

    @property
    def accepted_channels(self) -> tuple[int, ...]:
        return (3,)

    def check_input(self, images) -> np.ndarray:
        clips = images if isinstance(images, np.ndarray) else np.stack([np.asarray(i) for i in images])
        want = (self.frames, self.image_size, self.image_size, 3)
        if len(clips) and (clips.dtype != np.uint8 or clips.shape[1:] != want):
            shape = ", ".join(map(str, want))
            raise ModelError(f"Clips must be prepared for this model first: uint8 (N, {shape}); got "
                             f"{clips.dtype} {clips.shape}. Use imgcls.prepare_images(clips, "
                             "model.image_spec).")
        return clips

    def clip_embeddings(self, clips: np.ndarray) -> np.ndarray:
        """(N, T, D): every frame's vector, cached by frame content."""
        clips = self.check_input(clips)
        flat = self.frame_embeddings(clips.reshape(-1, *clips.shape[2:]))
        return np.asarray(flat, np.float32).reshape(len(clips), clips.shape[1], -1)

    def raw_proba(self, images) -> np.ndarray:
        return self.proba_from_clip_embeddings(self.clip_embeddings(images))

    def frame_scores(self, images, target: int | None = None) -> np.ndarray:
        """(N, T): how much each frame holds up the predicted class (or class index ``target``)
        (temporal occlusion: the drop in its probability when the frame's vector becomes the
        clip's mean), clipped at 0."""
        X = self.clip_embeddings(images)
        base = self.proba_from_clip_embeddings(X)
        rows = np.arange(len(X))
        chosen = base.argmax(1) if target is None else np.full(len(X), int(target))
        scores = np.zeros(X.shape[:2], np.float32)
        for t in range(X.shape[1]):
            hidden = X.copy()
            hidden[:, t] = X.mean(1)
            scores[:, t] = base[rows, chosen] - self.proba_from_clip_embeddings(hidden)[rows, chosen]
        return np.clip(scores, 0, None)

    def swapped_frame_proba(self, clip: np.ndarray, t: int, frames: np.ndarray) -> np.ndarray:
        """(N, K): the answer for ``clip`` (T, S, S, 3) with its frame ``t`` replaced by each of
        ``frames`` (N, S, S, 3) in turn. The other frames' vectors come from the cache; the new
        frames' are computed without caching them (an explanation's perturbed frames are many
        and never seen again)."""
        context = self.clip_embeddings(clip[None])[0]
        with self._uncached():
            fresh = np.asarray(self.frame_embeddings(np.asarray(frames, np.uint8)), np.float32)
        X = np.repeat(context[None], len(fresh), axis=0)
        X[:, t] = fresh
        return self.proba_from_clip_embeddings(X)

    @contextmanager
    def _uncached(self):
        runtime = self.runtime
        self.set_runtime(cache_dir=None, progress=False)
        try:
            yield
        finally:
            self.runtime = runtime

    def tile_scores(self, images) -> np.ndarray:  # the report's per-part heat map
        return self.frame_scores(images)

    def representation(self, images) -> np.ndarray:
        return Classifier.representation(self, images)  # clips: the unknown score is msp
