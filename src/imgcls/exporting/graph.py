"""The network that an export writes: uint8 (N, H, W, 3) in, class probabilities out.

Everything between a decoded, resized image and the probabilities is inside the graph:
layout change, normalisation, the test-time-augmentation views the model was saved with,
and the softmax. A linear-probe model's scikit-learn head becomes a linear layer.
"""

from __future__ import annotations

import torch
from torch import nn


class ImagesToProbabilities(nn.Module):
    """uint8 (N, H, W, C) -> probabilities; ``logits`` maps uint8 (N, C, H, W) to logits."""

    def __init__(self, logits: nn.Module, flips: tuple[tuple[int, ...], ...] = ()) -> None:
        super().__init__()
        self.logits = logits
        self.flips = flips

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2)
        proba = self.logits(x).softmax(dim=1)
        for dims in self.flips:
            proba = proba + self.logits(x.flip(dims)).softmax(dim=1)
        return proba / (1 + len(self.flips))


class ProbeNetwork(nn.Module):
    """A normalising backbone followed by a linear layer copied from a logistic regression."""

    def __init__(self, backbone: nn.Module, coef, intercept) -> None:
        super().__init__()
        self.backbone = backbone
        coef = torch.as_tensor(coef, dtype=torch.float32)
        intercept = torch.as_tensor(intercept, dtype=torch.float32)
        if coef.shape[0] == 1:  # binary: the logit z becomes (-z/2, z/2); softmax = sigmoid
            coef, intercept = torch.cat([-coef, coef]) / 2, torch.cat([-intercept, intercept]) / 2
        self.head = nn.Linear(coef.shape[1], coef.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(coef)
            self.head.bias.copy_(intercept)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def inference_module(clf) -> ImagesToProbabilities:
    """The whole prediction of a fitted deep ``TorchClassifier`` as one eval-mode module."""
    from ..errors import ModelError
    from ..models.networks import Preprocessed

    if clf.school != "deep":
        raise ModelError(f"'{clf.family}' is a classical model: its features are computed by "
                         "scikit-image and OpenCV, not a network, so it cannot be exported to ONNX. "
                         "`imgcls predict` and `imgcls serve` run it directly.")
    if clf.mode == "linear-probe":
        backbone = clf._backbone()
        cfg = backbone.pretrained_cfg
        head = clf.head_
        order = [list(head.classes_).index(c) for c in clf.classes_]
        coef, intercept = head.coef_, head.intercept_
        if coef.shape[0] > 1:
            coef, intercept = coef[order], intercept[order]
        logits = ProbeNetwork(Preprocessed(backbone, cfg["mean"], cfg["std"]), coef, intercept)
    else:
        logits = clf.net_
    tta = clf.train_options.get("tta", "none") if clf.mode == "finetune" else "none"
    flips = tuple(dims for name, dims in (("hflip", (3,)), ("vflip", (2,))) if name in tta)
    return ImagesToProbabilities(logits, flips).eval()
