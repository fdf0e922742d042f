"""The network that an export writes: uint8 (N, H, W, 3) in, class probabilities and the
decided label out.

Everything between a prepared image and the answer is inside the graph: layout change,
normalisation (inside the model's network), the test-time-augmentation views the model was
saved with, the softmax, and the model's decision rule (a tuned threshold or grade cut
points; the most probable class by default), as an int64 class index.
"""

from __future__ import annotations

import torch
from torch import nn


class DecisionHead(nn.Module):
    """Probabilities (N, K) -> the decided class index (N,), as :class:`Decision` decides."""

    def __init__(self, decision, classes) -> None:
        super().__init__()
        classes = [str(c) for c in classes]
        self.kind = decision.kind if decision is not None else "argmax"
        if self.kind == "weights":
            self.register_buffer("weights", torch.tensor(decision.weights, dtype=torch.float32))
        elif self.kind == "threshold":
            self.positive, self.threshold = classes.index(decision.positive), float(decision.threshold)
        elif self.kind == "ordinal":
            columns = [classes.index(c) for c in decision.order]
            self.register_buffer("columns", torch.tensor(columns, dtype=torch.long))
            self.register_buffer("cuts", torch.tensor(decision.cuts, dtype=torch.float32))

    def forward(self, proba: torch.Tensor) -> torch.Tensor:
        if self.kind == "weights":
            return (proba * self.weights).argmax(dim=1)
        if self.kind == "threshold":
            chosen = proba[:, self.positive] >= self.threshold
            others = proba.clone()
            others[:, self.positive] = -1.0
            return torch.where(chosen, torch.full_like(chosen, self.positive, dtype=torch.long),
                               others.argmax(dim=1))
        if self.kind == "ordinal":
            grades = proba[:, self.columns] @ torch.arange(len(self.columns), dtype=proba.dtype)
            grade = (grades[:, None] >= self.cuts[None, :]).sum(dim=1)
            return self.columns[grade]
        return proba.argmax(dim=1)


class ImagesToProbabilities(nn.Module):
    """uint8 (N, H, W, C) -> (probabilities, label); ``logits`` maps uint8 (N, C, H, W) to logits."""

    def __init__(self, logits: nn.Module, flips: tuple[tuple[int, ...], ...] = (),
                 decide: nn.Module | None = None) -> None:
        super().__init__()
        self.logits = logits
        self.flips = flips
        self.decide = decide if decide is not None else DecisionHead(None, [])

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.permute(0, 3, 1, 2)
        proba = self.logits(x).softmax(dim=1)
        for dims in self.flips:
            proba = proba + self.logits(x.flip(dims)).softmax(dim=1)
        proba = proba / (1 + len(self.flips))
        return proba, self.decide(proba)


def inference_module(clf) -> ImagesToProbabilities:
    """The whole prediction of a fitted model with a network (the ONNX capability) as one
    eval-mode module."""
    return ImagesToProbabilities(clf.network(), clf.test_time_flips(),
                                 DecisionHead(clf.decision_, clf.classes_)).eval()
