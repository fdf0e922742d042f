"""What every explanation method needs to know of a model, whatever its school.

Methods see one image form: the model's prepared input as uint8 (H, W, 3), grey images
repeated to three channels, so that overlays, superpixels and perturbations look the same
for both schools. ``proba`` scores a stack of that form through the fastest way the model
can run (ONNX Runtime when the run has an up-to-date export); deep models also expose a
PyTorch module for the gradient methods (models with the GRADIENTS capability).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ...core.errors import ConfigError
from ...data.prepare import ImageSpec, to_channels
from ...models import GRADIENTS


@dataclass
class ModelView:
    """The Predictor used for black-box scoring, plus the loaded Classifier (``clf``) when there
    is one: gradient methods need its network. A bare ``.onnx`` file has none (``clf=None``)
    and is explained as a black box, like a classical model."""

    clf: object | None
    predictor: object
    batch_size: int = 32
    _logits: object = field(default=None, repr=False)

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.predictor.classes]

    @property
    def capabilities(self) -> frozenset[str]:
        return self.clf.capabilities if self.clf is not None else frozenset()

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    @property
    def school(self) -> str:
        """For people reading explain.json; never branched on."""
        return self.clf.school if self.clf is not None else "onnx"

    @property
    def family(self) -> str:
        return self.clf.family if self.clf is not None else getattr(self.predictor, "name", "model")

    @property
    def spec(self) -> ImageSpec:
        return self.predictor.spec

    @staticmethod
    def from_model_input(image: np.ndarray) -> np.ndarray:
        """An image prepared for the model (resized, ROI-cropped, by the one prepare step) ->
        the (H, W, 3) form every method works on."""
        return to_channels(np.asarray(image), 3)

    def proba(self, images: np.ndarray) -> np.ndarray:
        """Probabilities (N, K) for a stack of prepared (H, W, 3) images of any dtype."""
        images = np.clip(np.rint(np.asarray(images, dtype=np.float32)), 0, 255).astype(np.uint8)
        if images.ndim == 3:
            images = images[None]
        if self.spec.channels == 1:
            images = np.stack([to_channels(img, 1) for img in images])
        out = [self.predictor.predict_proba(images[s : s + self.batch_size])
               for s in range(0, len(images), self.batch_size)]
        return np.concatenate(out).astype(np.float64)

    def target_index(self, target: str | None, proba: np.ndarray) -> int:
        """The class to explain: ``target`` when given, else the predicted class."""
        if target is None:
            return int(np.argmax(proba))
        if target not in self.classes:
            raise ConfigError(f"--target '{target}' is not one of the model's classes {self.classes}.")
        return self.classes.index(target)

    def logits_module(self):
        """Models with a network: float (N, 3, H, W) in 0-255 -> logits, in eval mode (one view,
        no TTA)."""
        if not self.supports(GRADIENTS):
            raise ConfigError(f"'{self.family}' is explained as a black box: gradient methods need a "
                              "network (a deep run folder, not a classical model or a bare .onnx file).")
        if self._logits is None:
            self._logits = self.clf.network().eval()
        return self._logits


def image_tensor(image: np.ndarray):
    """uint8 (H, W, 3) -> float (1, 3, H, W) in 0-255."""
    import torch

    return torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)[None]


def gradcam_layer(module, size: int):
    """The layer Grad-CAM reads: the last one with a spatial map (N, C, h, w), h and w > 1,
    before pooling; for a vision transformer, the patch tokens entering its last block as a
    grid (see :func:`token_grid`)."""
    import torch

    net = _innermost(module)
    if hasattr(net, "patch_embed") and hasattr(net, "blocks"):
        return None
    seen: list = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, o)))
             for m in module.modules() if m is not module]
    try:
        with torch.no_grad():
            module(torch.full((1, 3, size, size), 128.0))
    finally:
        for h in hooks:
            h.remove()
    spatial = [m for m, o in seen if isinstance(o, torch.Tensor) and o.ndim == 4
               and o.shape[2] > 1 and o.shape[3] > 1]
    if not spatial:
        raise ConfigError("Grad-CAM found no convolutional feature map in this network.")
    return spatial[-1]


def _innermost(module):
    while True:
        inner = getattr(module, "net", None) or getattr(module, "backbone", None)
        if inner is None:
            return module
        module = inner


@contextlib.contextmanager
def token_grid(module) -> Iterator[object]:
    """Vision transformers: expose the patch tokens entering the last block as an (N, D, h, w)
    map, by routing them through an identity layer that Grad-CAM can hook. The cls token's
    gradient flows back through that block's attention to every patch."""
    import torch
    from torch import nn

    net = _innermost(module)
    grid_layer = nn.Identity()
    prefix = getattr(net, "num_prefix_tokens", 1)

    def reshape(_mod, _inp, out):
        n, t, d = out.shape
        side = int(round((t - prefix) ** 0.5))
        grid = out[:, prefix:].transpose(1, 2).reshape(n, d, side, side)
        grid = grid_layer(grid)
        return torch.cat([out[:, :prefix], grid.flatten(2).transpose(1, 2)], dim=1)

    handle = net.blocks[-1].norm1.register_forward_hook(reshape)
    try:
        yield grid_layer
    finally:
        handle.remove()
