"""The network that an export writes: uint8 (N, H, W, 3) in, class probabilities and the
decided label out.

Everything between a prepared image and the answer is inside the graph: layout change,
normalisation (inside the model's network), the test-time-augmentation views the model was
saved with, the softmax, the model's calibration (a temperature), its decision rule (a tuned
threshold or grade cut points; the most probable class by default) as an int64 class index,
and, for a model with an unknown detector, its unknown score as a third output.
"""

from __future__ import annotations

import torch
from torch import nn

from ...models.decision import Decision


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
        elif self.kind == "multilabel":
            self.register_buffer("thresholds", torch.tensor(decision.thresholds, dtype=torch.float32))

    def forward(self, proba: torch.Tensor) -> torch.Tensor:
        if self.kind == "multilabel":  # (N, labels) 0/1: each label at or above its threshold
            return (proba >= self.thresholds).to(torch.long)
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


class UnknownHead(nn.Module):
    """The model's unknown score, as :class:`imgcls.models.unknown.Unknown` computes it: from
    the calibrated probabilities (msp), the plain view's logits (energy) or its pooled features
    against the training vectors kept with the model (knn)."""

    def __init__(self, unknown) -> None:
        super().__init__()
        self.method = unknown.method
        self.k = int(unknown.k)
        self.metric = unknown.metric
        if self.method == "knn":
            self.register_buffer("bank", torch.as_tensor(unknown.bank, dtype=torch.float32))

    @property
    def needs_network_outputs(self) -> bool:
        return self.method in ("knn", "energy")

    def forward(self, proba: torch.Tensor, logits: torch.Tensor,
                embedding: torch.Tensor | None) -> torch.Tensor:
        if self.method == "msp":
            return 1.0 - proba.max(dim=1).values
        if self.method == "energy":
            return -torch.logsumexp(logits, dim=1)
        if self.metric == "cosine":
            e = embedding / embedding.norm(dim=1, keepdim=True).clamp_min(1e-12)
            return 1.0 - (e @ self.bank.T).topk(self.k, dim=1).values[:, -1]
        d2 = ((embedding ** 2).sum(dim=1, keepdim=True) - 2 * embedding @ self.bank.T
              + (self.bank ** 2).sum(dim=1))
        return d2.topk(self.k, dim=1, largest=False).values[:, -1].clamp_min(0.0).sqrt()


class ImagesToProbabilities(nn.Module):
    """uint8 (N, H, W, C) -> (probabilities, label[, unknown score]); ``logits`` maps uint8
    (N, C, H, W) to logits. ``temperature`` is the model's calibration."""

    def __init__(self, logits: nn.Module, flips: tuple[tuple[int, ...], ...] = (),
                 decide: nn.Module | None = None, temperature: float = 1.0,
                 unknown: UnknownHead | None = None, multilabel: bool = False) -> None:
        super().__init__()
        self.multilabel = multilabel  # a sigmoid per label instead of the softmax
        self.logits = logits
        self.flips = flips
        self.decide = decide if decide is not None else DecisionHead(None, [])
        self.temperature = float(temperature)
        self.unknown = unknown

    def forward(self, images: torch.Tensor):
        x = images.permute(0, 3, 1, 2)
        embedding = None
        if self.unknown is not None and self.unknown.needs_network_outputs:
            logits, embedding = self.logits.logits_and_embedding(x)
        else:
            logits = self.logits(x)
        activate = torch.sigmoid if self.multilabel else (lambda z: z.softmax(dim=1))
        proba = activate(logits)
        for dims in self.flips:
            proba = proba + activate(self.logits(x.flip(dims)))
        proba = proba / (1 + len(self.flips))
        if self.temperature != 1.0:
            proba = (proba.clamp_min(1e-12).log() / self.temperature).softmax(dim=1)
        label = self.decide(proba)
        if self.unknown is None:
            return proba, label
        return proba, label, self.unknown(proba, logits, embedding)


def inference_module(clf) -> ImagesToProbabilities:
    """The whole prediction of a fitted model with a network (the ONNX capability) as one
    eval-mode module: calibration, decision rule and unknown score included."""
    calibration = clf.calibration_
    rule = clf.decision_ or (Decision.multilabel(len(clf.classes_)) if clf.is_multilabel else None)
    return ImagesToProbabilities(clf.network(), clf.test_time_flips(), DecisionHead(rule, clf.classes_),
                                 calibration.temperature if calibration is not None else 1.0,
                                 UnknownHead(clf.unknown_) if clf.unknown_ is not None else None,
                                 clf.is_multilabel).eval()
