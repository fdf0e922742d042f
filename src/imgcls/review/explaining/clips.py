"""Explaining a clip model (``SEQUENCE``): which frames mattered, then why, inside the key frame.

1. **Temporal occlusion**: each frame's score is the drop in the explained class's
   probability when that frame's vector is replaced by the clip's mean
   (``model.frame_scores``). Its faithfulness is a deletion curve over frames: hide the
   highest-scored frames first, one more at each step, and track the probability; the same
   curve for random frame orders (averaged) is the bar to clear.
2. **The key frame** (the highest-scored one) is explained pixel by pixel with the image
   methods (Grad-CAM, Integrated Gradients, occlusion, LIME, SHAP, the random baseline)
   through :class:`KeyFrameView`: each perturbed frame is put back in its clip and the clip is
   scored, so a map shows what in that frame the clip's answer rests on. Gradient methods run
   where the family can differentiate from a frame's pixels to the clip's answer
   (``FRAME_GRADIENTS``: the CNN + temporal-head models); the classical school gets the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...config import ExplainConfig
from ...data.prepare import ImageSpec
from ...models import FRAME_GRADIENTS, GRADIENTS
from ...report.plots import frame_strip
from .faithfulness import area
from .gallery import write_png
from .view import ModelView

RANDOM_ORDERS = 8  # random frame orders averaged for the temporal baseline


def frame_capabilities(clf) -> frozenset[str]:
    """What the image methods may ask of a clip model's key frame."""
    return frozenset({GRADIENTS}) if clf.supports(FRAME_GRADIENTS) else frozenset()


@dataclass
class KeyFrameView(ModelView):
    """A :class:`ModelView` of one frame of one clip: ``proba`` scores frames by putting each in
    place of frame ``t`` of ``clip`` and scoring the clip; ``logits_module`` is the same path
    as a network (``model.frame_network``)."""

    clip: np.ndarray | None = None
    t: int = 0

    @property
    def capabilities(self) -> frozenset[str]:
        return frame_capabilities(self.clf)

    @property
    def spec(self) -> ImageSpec:
        clip_spec = self.predictor.spec
        return ImageSpec(size=clip_spec.size, channels=3, resize=clip_spec.resize)

    def proba(self, images: np.ndarray) -> np.ndarray:
        frames = np.clip(np.rint(np.asarray(images, dtype=np.float32)), 0, 255).astype(np.uint8)
        if frames.ndim == 3:
            frames = frames[None]
        out = [self.clf.swapped_frame_proba(self.clip, self.t, frames[s:s + self.batch_size])
               for s in range(0, len(frames), self.batch_size)]
        return np.concatenate(out).astype(np.float64)

    def logits_module(self):
        if not self.supports(GRADIENTS):
            return super().logits_module()  # the refusal, worded once
        if self._logits is None:
            self._logits = self.clf.frame_network(self.clip, self.t).eval()
        return self._logits


def temporal_faithfulness(clf, clip: np.ndarray, scores: np.ndarray, target: int, seed: int = 0) -> dict:
    """Deletion over frames: the ``target`` probability as the highest-scored frames are hidden
    one by one (their vectors become the clip's mean), against random frame orders."""
    X = clf.clip_embeddings(clip[None])
    mean = X[0].mean(0)

    def curve(order: np.ndarray) -> np.ndarray:
        steps = np.repeat(X, len(order) + 1, axis=0)
        for j in range(1, len(order) + 1):
            steps[j, order[:j]] = mean
        return clf.proba_from_clip_embeddings(steps)[:, target]

    tiebreak = np.random.default_rng(seed).random(len(scores))
    deletion = curve(np.lexsort((tiebreak, -np.asarray(scores, np.float64))))
    rng = np.random.default_rng(seed)
    random = np.mean([curve(rng.permutation(len(scores))) for _ in range(RANDOM_ORDERS)], axis=0)
    return {"deletion": deletion.round(5).tolist(), "random_deletion": random.round(5).tolist(),
            "deletion_auc": area(deletion), "random_deletion_auc": area(random)}


def explain_clip(view: ModelView, clip: np.ndarray, methods: list, target: str | None, cfg: ExplainConfig,
                 folder: Path | None, explain_image, advance=None) -> dict:
    """One prepared clip (T, S, S, 3): its frame scores and their faithfulness, a strip of its
    frames, and ``explain_image``'s entry for its key frame (every method's map of it)."""
    clf = view.clf
    proba = clf.predict_proba(clip[None])[0]
    k = view.target_index(target, proba)
    scores = clf.frame_scores(clip[None], target=k)[0]
    key = int(np.argmax(scores))
    frame_view = KeyFrameView(clf, view.predictor, view.batch_size, clip=clip, t=key)
    entry = explain_image(frame_view, clip[key], methods, view.classes[k], cfg, folder, advance)
    entry["frames"] = {"scores": np.round(scores, 5).tolist(), "key_frame": key,
                       **temporal_faithfulness(clf, clip, scores, k, cfg.seed)}
    if folder is not None:
        entry["frames"]["strip"] = str(write_png(folder / "frames.png", frame_strip(clip, scores))
                                       .relative_to(folder.parent))
    return entry


def temporal_summary(images: list[dict]) -> dict | None:
    """Over the explained clips: the mean frame-deletion area against random orders, and the
    share of clips where the frame scores beat random."""
    frames = [img["frames"] for img in images if "frames" in img]
    if not frames:
        return None
    ours = np.array([f["deletion_auc"] for f in frames])
    random = np.array([f["random_deletion_auc"] for f in frames])
    return {"n": len(frames), "deletion_auc": float(ours.mean()), "random_deletion_auc": float(random.mean()),
            "beats_random": float(np.mean(ours < random))}
