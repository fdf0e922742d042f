"""Networks of the deep school: a timm model or the small CNN, with the preprocessing inside.

``Preprocessed`` takes what the data layer produces, uint8 (N, C, H, W) with C = 1 or 3,
and normalises it as the backbone was trained; saved weights therefore always travel
with their normalisation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .catalog import SMALL_CNN, timm_options

SMALL_CNN_MEAN, SMALL_CNN_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> (N, C, H, W) without copying more than once."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)


class Preprocessed(nn.Module):
    """uint8 or 0-255 float images (N, C, H, W), C in {1, 3} -> logits of ``net``."""

    def __init__(self, net: nn.Module, mean, std) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[1] == 1:  # grey: one channel decoded and stored, expanded only here
            x = x.expand(-1, 3, -1, -1)
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalise(images))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled features just before the classifier (timm models)."""
        return self.net.forward_head(self.net.forward_features(self.normalise(images)), pre_logits=True)

    def logits_and_embedding(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, pooled features before the classifier) in one pass (eval mode)."""
        x = self.normalise(images)
        if isinstance(self.net, SmallCNN):
            pooled = self.net.pool(self.net.features(x))
            return self.net.head(pooled), pooled
        pooled = self.net.forward_head(self.net.forward_features(x), pre_logits=True)
        return self.net.get_classifier()(pooled), pooled


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """Six 3x3 convolutions in three stages (32, 64, 128 channels) for tiny images (digits,
    thumbnails); trained from scratch in seconds on a CPU."""

    def __init__(self, num_classes: int, width: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(*_block(3, w), *_block(w, w), nn.MaxPool2d(2),
                                      *_block(w, 2 * w), *_block(2 * w, 2 * w), nn.MaxPool2d(2),
                                      *_block(2 * w, 4 * w), *_block(4 * w, 4 * w))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * w, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


class ProbeNetwork(nn.Module):
    """A normalising backbone followed by a linear layer copied from a logistic regression.
    A binary model's single logit z becomes the pair (-z/2, z/2), whose softmax equals its sigmoid."""

    def __init__(self, backbone: nn.Module, coef, intercept, pair: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        if pair:
            coef, intercept = binary_as_pair(coef, intercept)
        coef = torch.as_tensor(coef, dtype=torch.float32)
        intercept = torch.as_tensor(intercept, dtype=torch.float32)
        self.head = nn.Linear(coef.shape[1], coef.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(coef)
            self.head.bias.copy_(intercept)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    def logits_and_embedding(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.backbone(images)
        return self.head(embedding), embedding


class WeightedEnsemble(nn.Module):
    """Members' networks (uint8 NCHW -> logits) averaged as probabilities, each with its own
    test-time flips, columns reordered to the ensemble's classes; returns the log of the
    average, whose softmax is the average itself. ``multilabel``: each member's sigmoids are
    averaged and the logit of the average returned, whose sigmoid is the average itself."""

    def __init__(self, members: list[nn.Module], flips: list[tuple], weights,
                 orders: list[list[int]], temperatures: list[float] | None = None,
                 multilabel: bool = False) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.flips = flips
        self.multilabel = multilabel
        self.temperatures = [float(t) for t in (temperatures or [1.0] * len(members))]
        self.register_buffer("weights", torch.as_tensor(np.asarray(weights), dtype=torch.float32))
        for k, order in enumerate(orders):
            self.register_buffer(f"order{k}", torch.as_tensor(order, dtype=torch.long))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        activate = torch.sigmoid if self.multilabel else (lambda z: z.softmax(dim=1))
        total = None
        for k, net in enumerate(self.members):
            proba = activate(net(images))
            for dims in self.flips[k]:
                proba = proba + activate(net(images.flip(dims)))
            proba = proba[:, getattr(self, f"order{k}")] / (1 + len(self.flips[k]))
            if self.temperatures[k] != 1.0:  # the member's calibration, as predict_proba applies it
                proba = (proba.clamp_min(1e-12).log() / self.temperatures[k]).softmax(dim=1)
            total = self.weights[k] * proba if total is None else total + self.weights[k] * proba
        if self.multilabel:
            total = total.clamp(1e-7, 1 - 1e-7)
            return total.log() - (1 - total).log()
        return total.clamp_min(1e-12).log()


def binary_as_pair(coef, intercept) -> tuple[torch.Tensor, torch.Tensor]:
    """A scikit-learn linear model's weights as torch tensors with one row per class."""
    coef = torch.as_tensor(coef, dtype=torch.float32)
    intercept = torch.as_tensor(intercept, dtype=torch.float32)
    if coef.shape[0] == 1:
        coef, intercept = torch.cat([-coef, coef]) / 2, torch.cat([-intercept, intercept]) / 2
    return coef, intercept


def build_network(family: str, n_classes: int, image_size: int | None = None
                  ) -> tuple[nn.Module, tuple, tuple]:
    """An untrained network with an ``n_classes`` head, and its normalisation (mean, std)."""
    if family == SMALL_CNN:
        return SmallCNN(n_classes), SMALL_CNN_MEAN, SMALL_CNN_STD
    import timm

    net = timm.create_model(family, pretrained=False, num_classes=n_classes,
                            **timm_options(family, image_size))
    cfg = net.pretrained_cfg
    return net, tuple(cfg["mean"]), tuple(cfg["std"])


def layer_groups(net: nn.Module) -> list[list[str]]:
    """Module names in order, grouped stem / stage 1 / ... / head (timm's coarse groups)."""
    if not hasattr(net, "group_matcher"):
        return []
    from timm.models import group_modules

    groups = group_modules(net, net.group_matcher(coarse=True))
    return [groups[k] for k in sorted(groups)]


def auto_freeze(net: nn.Module) -> int:
    """Groups up to the last stage at output stride <= 8: cheap in weights, dear in compute.

    Measured for tf_efficientnet_lite0 at 224 px on 2 cores (benchmarks/finetune_speed.py):
    16.6 training images/s channels-last with nothing frozen, 39.0 with these stages frozen.
    """
    info = getattr(net, "feature_info", None)
    groups = layer_groups(net)
    if not info or not groups:
        return 0
    shallow = [f["module"] for f in info if f["reduction"] <= 8]
    if not shallow:
        return 0
    last = shallow[-1]
    for k, names in enumerate(groups):
        if any(n == last or n.startswith(last + ".") for n in names):
            return k + 1
    return 0


def freeze_groups(net: nn.Module, count: int) -> list[nn.Module]:
    """Stop gradients through the first ``count`` groups; returns their modules, which the
    training loop keeps in eval mode (batch-norm statistics frozen too)."""
    names = {n for group in layer_groups(net)[:count] for n in group}
    modules = [m for n, m in net.named_modules() if n in names]
    for module in modules:
        for p in module.parameters():
            p.requires_grad = False
    return modules


def set_linear_head(net: nn.Module, coef, intercept, pair: bool = True) -> None:
    """Copy a scikit-learn linear model into the timm classifier (see :func:`binary_as_pair`;
    ``pair=False``: one row per output as given, e.g. one binary model per label)."""
    if pair:
        coef, intercept = binary_as_pair(coef, intercept)
    coef = torch.as_tensor(coef, dtype=torch.float32)
    intercept = torch.as_tensor(intercept, dtype=torch.float32)
    classifier = net.get_classifier()
    with torch.no_grad():
        classifier.weight.copy_(coef)
        classifier.bias.copy_(intercept)


def batch_norms(net: nn.Module) -> list[nn.Module]:
    """Every batch-norm layer: kept in eval mode, they normalise with the pretrained
    statistics (their scale and shift still train)."""
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
