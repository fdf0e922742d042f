"""Multiple-instance learning on tiles of large images: a frozen pretrained backbone embeds
every tile of a bag (cached by tile content), and a small head pools the embeddings into the
image's label.

Pooling (``model.params.pooling``): ``attention`` (gated attention, Ilse et al. 2018: a
learnt weight per tile, softmax over the bag's tiles), ``mean`` or ``max`` of the tile
embeddings (the baselines). The tile weights (attention) or per-tile scores of the
predicted class (mean, max) are the tile heat map (:meth:`MilClassifier.tile_scores`).

Example:
    >>> model = MilClassifier(image_size=160, tiles=256, max_tiles=64)      # doctest: +SKIP
    >>> model.fit(bags, labels).tile_scores(bags[:1])                      # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.errors import ConfigError, ModelError
from ..core.io import cached_rows
from ..data.prepare import ImageSpec
from ..data.tiles import bag_mask
from .base import TILES, Classifier, check_labels, read_model_json
from .deep.catalog import BACKBONES, SMALL_CNN, embedding_key
from .frozen_head import frozen_head_json, load_backbone_and_head, save_backbone_and_head, train_head
from .probe import ProbeClassifier

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..data.facts import DataFacts

POOLINGS = ("attention", "mean", "max")
DEFAULTS = {"pooling": "attention", "backbone": "tf_efficientnet_lite0", "epochs": 40, "lr": 1e-3,
            "weight_decay": 1e-4, "hidden": 128, "dropout": 0.25}


class MilClassifier(ProbeClassifier):
    """Bags of tiles -> labels: a frozen backbone's tile embeddings, pooled by a trained head."""

    school: ClassVar[str] = "deep"
    backend: ClassVar[str] = "torch"
    capabilities: ClassVar[frozenset[str]] = frozenset({TILES})

    def __init__(self, family: str = "mil", image_size: int = 224, resize: str = "squash",
                 pretrained: str = "auto", class_weight: str | None = "balanced",
                 params: dict[str, Any] | None = None, seed: int = 0, batch_size: int = 32,
                 tiles: int = 256, tile_stride: int = 0, max_tiles: int = 64, tile_foreground: float = 0.1,
                 window: str = "file") -> None:
        self.family = family
        self.image_size = image_size
        self.resize = resize
        self.roi = "none"
        self.pretrained = pretrained
        self.class_weight = class_weight
        self.params = params
        self.seed = seed
        self.batch_size = batch_size
        self.tiles = tiles
        self.tile_stride = tile_stride
        self.max_tiles = max_tiles
        self.tile_foreground = tile_foreground
        self.window = window
        self.multilabel = False

    @property
    def backbone_name(self) -> str:
        return self.options["backbone"]

    @property
    def options(self) -> dict[str, Any]:
        return {**DEFAULTS, **(self.params or {})}

    @classmethod
    def from_config(cls, family: str, cfg: RunConfig, facts: DataFacts) -> MilClassifier:
        d, m = cfg.data, cfg.model
        if cfg.task.kind == "multilabel":
            raise ConfigError("model.name=mil learns one label per image; multi-label bags are not "
                              "supported.")
        if m.roi != "none":
            raise ConfigError("model.roi and data.tiles do not combine: tiles skip the background themselves "
                              "(data.tile_foreground); set model.roi=none.")
        size = 224 if m.image_size == "auto" else m.image_size
        return cls(family, int(size), m.resize, m.pretrained, m.class_weight or "balanced", dict(m.params),
                   cfg.split.seed, cfg.train.batch_size, d.tiles or 256, d.tile_stride, d.max_tiles,
                   d.tile_foreground, m.window)

    def validate(self) -> MilClassifier:
        opts = self.options
        if opts["pooling"] not in POOLINGS:
            raise ConfigError(f"The 'model.params.pooling' parameter must be one of {POOLINGS}. "
                              f"Got {opts['pooling']!r}.")
        if opts["backbone"] not in BACKBONES or opts["backbone"] == SMALL_CNN:
            raise ConfigError(f"model.params.backbone must be a pretrained backbone of `imgcls models`, "
                              f"not {opts['backbone']!r}.")
        return self

    @property
    def image_spec(self) -> ImageSpec:
        return ImageSpec(size=int(self.image_size), channels=3, resize=self.resize, window=self.window,
                         tiles=int(self.tiles), tile_stride=int(self.tile_stride),
                         max_tiles=int(self.max_tiles), tile_foreground=float(self.tile_foreground))

    @property
    def accepted_channels(self) -> tuple[int, ...]:
        return (3,)

    def check_input(self, images) -> np.ndarray:
        bags = images if isinstance(images, np.ndarray) else np.stack([np.asarray(i) for i in images])
        want = (self.max_tiles, self.image_size, self.image_size, 3)
        if len(bags) and (bags.dtype != np.uint8 or bags.shape[1:] != want):
            shape = ", ".join(map(str, want))
            raise ModelError(f"Bags must be prepared for this model first: uint8 (N, {shape});"
                             f" got {bags.dtype} {bags.shape}. Use imgcls.prepare_images(images, "
                             "model.image_spec).")
        return bags

    # ----- embeddings ---------------------------------------------------------------------
    def bag_embeddings(self, bags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings (N, T, D) with zeros at padding, mask (N, T))."""
        bags = self.check_input(bags)
        mask = bag_mask(bags)
        self._backbone()
        tiles = bags[mask]
        key = embedding_key(self.backbone_name, self.weights_)
        cache = self.runtime.cache_dir
        flat = (cached_rows(cache, "embeddings", key, tiles, self._run_backbone) if len(tiles)
                else np.zeros((0, 1), np.float32))
        out = np.zeros((*mask.shape, flat.shape[1]), np.float32)
        out[mask] = flat
        return out, mask

    # ----- learning and predicting --------------------------------------------------------
    def fit(self, images, labels: Sequence[str], val: tuple | None = None) -> MilClassifier:
        import torch

        self.validate()
        targets = check_labels(labels)
        started = time.perf_counter()
        X, mask = self.bag_embeddings(images)
        embedded = time.perf_counter()
        self.classes_ = np.asarray(sorted(set(targets.tolist()), key=str), dtype=object)
        index = {c: i for i, c in enumerate(self.classes_)}
        y = np.asarray([index[t] for t in targets])
        torch.manual_seed(self.seed)
        opts = self.options
        self.head_ = MilHead(X.shape[2], len(self.classes_), opts["pooling"], int(opts["hidden"]),
                             float(opts["dropout"]))
        train_head(self.head_, (X, mask), y, opts, self.class_weight, self.seed)
        self.fit_timings_ = {"features_seconds": round(embedded - started, 3),
                             "estimator_seconds": round(time.perf_counter() - embedded, 3)}
        return self

    def raw_proba(self, images) -> np.ndarray:
        return self._forward(images)[0]

    def tile_scores(self, images) -> np.ndarray:
        """(N, max_tiles): each tile's share of the decision (attention weights; for mean and
        max pooling the tile's own probability of the predicted class); 0 at padding."""
        return self._forward(images)[1]

    def _forward(self, images) -> tuple[np.ndarray, np.ndarray]:
        import torch

        self._check_fitted()
        X, mask = self.bag_embeddings(images)
        with torch.inference_mode():
            logits, scores = self.head_.eval()(torch.from_numpy(X), torch.from_numpy(mask))
        return torch.softmax(logits, 1).numpy(), scores.numpy()

    def _check_fitted(self) -> None:
        if getattr(self, "head_", None) is None:
            raise ModelError("This MIL model is not fitted; call fit() or load a saved one.")

    def network(self):
        raise ModelError("A MIL model cannot be exported: it has no single-image network (a backbone "
                         "runs on each tile, a pooling head over the bag). Predict and serve run it "
                         "in-process (imgcls predict / imgcls serve on the run folder).")

    def representation(self, images) -> np.ndarray:
        return Classifier.representation(self, images)  # bags have none: the unknown score is msp

    def embedding_id(self) -> tuple:
        raise ModelError("A MIL model embeds tiles, not images; it shares no image embeddings.")

    # ----- saving -------------------------------------------------------------------------
    def to_json(self) -> dict:
        return frozen_head_json(self, "mil", "uint8 (N, T, H, W, 3) bags of tiles")

    def save(self, path: str | Path) -> Path:
        return save_backbone_and_head(self, path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> MilClassifier:
        folder = Path(path)
        meta = read_model_json(folder)
        spec = meta["image_spec"]
        model = cls(meta["family"], spec["size"], spec["resize"], meta.get("pretrained_option", "auto"),
                    meta["class_weight"], meta["params"], meta.get("seed", 0), 32, spec["tiles"],
                    spec["tile_stride"], spec["max_tiles"], spec["tile_foreground"],
                    spec.get("window", "file"))
        model.weights_ = meta["pretrained"]
        model.classes_ = np.asarray(meta["classes"], dtype=object)
        opts = model.options
        model.backbone_, model.head_ = load_backbone_and_head(
            folder, meta["backbone"], spec["size"], lambda: MilHead(
                int(meta["embedding_dim"]), len(model.classes_), opts["pooling"], int(opts["hidden"]),
                float(opts["dropout"])), "MIL")
        return model.validate()


def MilHead(dim: int, n_classes: int, pooling: str, hidden: int = 128, dropout: float = 0.25):  # noqa: N802
    """The pooling head (a torch module): (N, T, D) embeddings and (N, T) mask -> (logits, tile scores)."""
    import torch
    from torch import nn

    class _Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dim, self.pooling = dim, pooling
            self.drop = nn.Dropout(dropout)
            self.classifier = nn.Linear(dim, n_classes)
            if pooling == "attention":
                self.V, self.U, self.w = nn.Linear(dim, hidden), nn.Linear(dim, hidden), nn.Linear(hidden, 1)

        def forward(self, x, mask):
            x = self.drop(x)
            if self.pooling == "attention":
                a = self.w(torch.tanh(self.V(x)) * torch.sigmoid(self.U(x))).squeeze(-1)
                a = torch.softmax(a.masked_fill(~mask, float("-inf")), dim=1)
                return self.classifier((a.unsqueeze(-1) * x).sum(1)), a
            tile_logits = self.classifier(x)
            if self.pooling == "mean":
                pooled = (x * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
            else:
                pooled = x.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(1).values
            logits = self.classifier(pooled)
            chosen = logits.argmax(1)
            index = chosen[:, None, None].expand(-1, x.shape[1], 1)
            scores = torch.softmax(tile_logits, -1).gather(-1, index)
            return logits, scores.squeeze(-1) * mask

    return _Head()
