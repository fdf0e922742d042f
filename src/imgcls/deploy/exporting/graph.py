"""The network that an export writes: uint8 (N, H, W, 3) in, class probabilities out.

Everything between a prepared image and the probabilities is inside the graph: layout
change, normalisation (inside the model's network), the test-time-augmentation views the
model was saved with, and the softmax.
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


def inference_module(clf) -> ImagesToProbabilities:
    """The whole prediction of a fitted model with a network (the ONNX capability) as one
    eval-mode module."""
    return ImagesToProbabilities(clf.network(), clf.test_time_flips()).eval()
