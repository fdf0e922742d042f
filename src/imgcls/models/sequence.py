"""Sequences of frames (video clips): a frozen pretrained CNN embeds each frame (cached by
frame content, so training the temporal head takes seconds on a CPU), and a temporal head
reads the sequence of embeddings.

Temporal heads (``model.params.temporal``):

- ``frames``: the frame baseline, one classifier applied to every frame and its
  probabilities averaged over the clip; it cannot see order, direction or speed;
- ``mean``: the clip's mean embedding, then a linear classifier (order-less too);
- ``gru`` / ``lstm``: a recurrent network over the frames (``model.params.bidirectional``);
- ``attention``: a small transformer encoder (``model.params.layers``, 4 heads, learnt
  positions) over the frame embeddings, mean-pooled.

:meth:`SequenceClassifier.frame_scores` says which frames mattered: temporal occlusion, the
drop in the predicted class's probability when a frame's embedding is replaced by the clip's
mean embedding.

Example:
    >>> model = SequenceClassifier(image_size=160, frames=8, params={"temporal": "gru"})  # doctest: +SKIP
    >>> model.fit(clips, labels).frame_scores(clips[:1])                    # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.errors import ConfigError, ModelError
from ..core.io import cached_rows
from ..core.progress import progress_bar
from .base import FRAME_GRADIENTS, SEQUENCE, check_labels, read_model_json
from .clips import ClipModel
from .deep.catalog import BACKBONES, SMALL_CNN, embedding_key
from .frozen_head import (
    class_weights,
    frozen_head_json,
    load_backbone_and_head,
    save_backbone_and_head,
    train_head,
)
from .probe import ProbeClassifier

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..data.facts import DataFacts

TEMPORAL = ("frames", "mean", "gru", "lstm", "attention")
DEFAULTS = {"temporal": "gru", "backbone": "tf_efficientnet_lite0", "epochs": 60, "lr": 1e-3,
            "weight_decay": 1e-4, "hidden": 128, "dropout": 0.2, "bidirectional": False, "layers": 1,
            "finetune_epochs": 0, "finetune_lr": 1e-4, "finetune_batch": 4}


class SequenceClassifier(ClipModel, ProbeClassifier):
    """Clips (N, T, H, W, 3) -> labels: frame embeddings (the CNN frozen, or fine-tuned after) read
    by a temporal head."""

    school: ClassVar[str] = "deep"
    backend: ClassVar[str] = "torch"
    capabilities: ClassVar[frozenset[str]] = frozenset({SEQUENCE, FRAME_GRADIENTS})

    def __init__(self, family: str = "sequence", image_size: int = 224, resize: str = "squash",
                 pretrained: str = "auto", class_weight: str | None = "balanced",
                 params: dict[str, Any] | None = None, seed: int = 0, batch_size: int = 32,
                 frames: int = 8, frame_stride: int = 0) -> None:
        self.family = family
        self.image_size = image_size
        self.resize = resize
        self.roi = "none"
        self.pretrained = pretrained
        self.class_weight = class_weight
        self.params = params
        self.seed = seed
        self.batch_size = batch_size
        self.frames = frames
        self.frame_stride = frame_stride
        self.multilabel = False

    @property
    def backbone_name(self) -> str:
        return self.options["backbone"]

    @property
    def options(self) -> dict[str, Any]:
        return {**DEFAULTS, **(self.params or {})}

    @classmethod
    def from_config(cls, family: str, cfg: RunConfig, facts: DataFacts) -> SequenceClassifier:
        m = cfg.model
        if cfg.task.kind == "multilabel":
            raise ConfigError("model.name=sequence learns one label per clip; multi-label clips are not "
                              "supported.")
        if m.roi != "none":
            raise ConfigError("model.roi does not apply to clips; set model.roi=none.")
        size = 224 if m.image_size == "auto" else m.image_size
        return cls(family, int(size), m.resize, m.pretrained, m.class_weight or "balanced", dict(m.params),
                   cfg.split.seed, cfg.train.batch_size, cfg.data.frames, cfg.data.frame_stride)

    def validate(self) -> SequenceClassifier:
        opts = self.options
        if opts["temporal"] not in TEMPORAL:
            raise ConfigError(f"The 'model.params.temporal' parameter must be one of {TEMPORAL}. "
                              f"Got {opts['temporal']!r}.")
        if opts["backbone"] not in BACKBONES or opts["backbone"] == SMALL_CNN:
            raise ConfigError(f"model.params.backbone must be a pretrained backbone of `imgcls models`, "
                              f"not {opts['backbone']!r}.")
        if int(self.frames) < 1:
            raise ConfigError(f"The 'data.frames' parameter must be at least 1. Got {self.frames!r}.")
        return self

    def frame_embeddings(self, frames: np.ndarray) -> np.ndarray:
        """(N, D) embeddings of prepared frames (N, size, size, 3), cached by content."""
        self._backbone()
        key = embedding_key(self.backbone_name, self.weights_)
        flat = (cached_rows(self.runtime.cache_dir, "embeddings", key, frames, self._run_backbone)
                if len(frames) else np.zeros((0, 1), np.float32))
        return np.asarray(flat, np.float32)

    # ----- learning and predicting --------------------------------------------------------
    def fit(self, images, labels: Sequence[str], val: tuple | None = None) -> SequenceClassifier:
        import torch

        self.validate()
        targets = check_labels(labels)
        started = time.perf_counter()
        X = self.clip_embeddings(images)
        embedded = time.perf_counter()
        self.classes_ = np.asarray(sorted(set(targets.tolist()), key=str), dtype=object)
        index = {c: i for i, c in enumerate(self.classes_)}
        y = np.asarray([index[t] for t in targets])
        torch.manual_seed(self.seed)
        self.head_ = TemporalHead(X.shape[2], len(self.classes_), self.frames, self.options)
        train_head(self.head_, (X,), y, self.options, self.class_weight, self.seed)
        self.fit_timings_ = {"features_seconds": round(embedded - started, 3),
                             "estimator_seconds": round(time.perf_counter() - embedded, 3)}
        if int(self.options["finetune_epochs"]):  # then the CNN and the head together, end to end
            tuned = time.perf_counter()
            self._finetune(self.check_input(images), y)
            self.fit_timings_["finetune_seconds"] = round(time.perf_counter() - tuned, 3)
        return self

    def _finetune(self, clips: np.ndarray, y: np.ndarray) -> None:
        """``finetune_epochs`` epochs of AdamW on the backbone (``finetune_lr``) and the head
        (``lr`` / 10) over whole clips, ``finetune_batch`` clips a step, the head warm-started on
        the frozen embeddings; batch-norm statistics stay frozen (a few clips a step)."""
        import torch

        opts = self.options
        torch.set_num_threads(max(1, self.runtime.n_jobs))
        net, head = self._normalising_backbone().train(), self.head_.train()
        for module in net.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
        loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights(y, len(self.classes_), self.class_weight))
        optimiser = torch.optim.AdamW([{"params": net.parameters(), "lr": float(opts["finetune_lr"])},
                                       {"params": head.parameters(), "lr": float(opts["lr"]) / 10}],
                                      weight_decay=float(opts["weight_decay"]))
        generator = torch.Generator().manual_seed(self.seed)
        batch, yt = int(opts["finetune_batch"]), torch.from_numpy(y).long()
        with progress_bar(int(opts["finetune_epochs"]) * len(clips), "Fine-tuning on clips",
                          self.runtime.progress) as advance:
            for _ in range(int(opts["finetune_epochs"])):
                for idx in torch.randperm(len(clips), generator=generator).split(batch):
                    x = torch.from_numpy(clips[idx.numpy()])  # (B, T, S, S, 3) uint8
                    frames = x.reshape(-1, *x.shape[2:]).permute(0, 3, 1, 2)
                    logits = head(net(frames).float().reshape(len(idx), x.shape[1], -1))
                    loss = loss_fn(logits, yt[idx])
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    advance(len(idx))
        net.eval()
        head.eval()
        digest = hashlib.sha256()
        for tensor in self.backbone_.state_dict().values():
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        self.weights_ = f"{self.weights_}+finetuned-{digest.hexdigest()[:16]}"  # new embeddings, new key

    def proba_from_clip_embeddings(self, X: np.ndarray) -> np.ndarray:
        import torch

        self._check_fitted()
        with torch.inference_mode():
            return torch.softmax(self.head_.eval()(torch.from_numpy(np.asarray(X, np.float32))), 1).numpy()

    def _check_fitted(self) -> None:
        if getattr(self, "head_", None) is None:
            raise ModelError("This sequence model is not fitted; call fit() or load a saved one.")

    def network(self):
        raise ModelError("A sequence model cannot be exported as one network: a backbone runs on each "
                         "frame, a temporal head over the clip. `imgcls export RUN` writes the two as "
                         "encoder.onnx and temporal.onnx (sequence_networks()); predict and serve run it "
                         "in-process.")

    def sequence_networks(self):
        """(encoder, temporal) eval-mode modules: uint8 frames (N, H, W, 3) -> embeddings (N, D)
        with the backbone's normalisation inside, and embeddings (N, T, D) -> probabilities."""
        import torch
        from torch import nn

        self._check_fitted()
        backbone, head = self._normalising_backbone(), self.head_.eval()

        class Encoder(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = backbone

            def forward(self, frames):
                return self.net(frames.permute(0, 3, 1, 2))

        class Temporal(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.head = head

            def forward(self, embeddings):
                return torch.softmax(self.head(embeddings), dim=1)

        contiguous = torch.contiguous_format
        return Encoder().eval().to(memory_format=contiguous), Temporal().eval()

    def frame_network(self, clip: np.ndarray, t: int):
        """For explaining one frame: a module from float (N, 3, H, W) frames in 0-255, each put in
        place of frame ``t`` of ``clip`` (T, H, W, 3), to the clip's logits, the other frames'
        embeddings held fixed (eval mode; gradients reach the frame through the backbone)."""
        import torch
        from torch import nn

        self._check_fitted()
        context = torch.from_numpy(self.clip_embeddings(np.asarray(clip)[None])[0])
        backbone, head = self._normalising_backbone().eval(), self.head_.eval()

        class FrameInClip(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.backbone, self.head = backbone, head

            def forward(self, frames):
                z = self.backbone(frames).float()[:, None]
                rest = context[None].expand(len(z), -1, -1)
                return self.head(torch.cat([rest[:, :t], z, rest[:, t + 1:]], 1))

        return FrameInClip().eval()

    def embedding_id(self) -> tuple:
        raise ModelError("A sequence model embeds frames, not images; it shares no image embeddings.")

    # ----- saving -------------------------------------------------------------------------
    def to_json(self) -> dict:
        return frozen_head_json(self, "sequence", "uint8 (N, T, H, W, 3) clips of frames")

    def save(self, path: str | Path) -> Path:
        return save_backbone_and_head(self, path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> SequenceClassifier:
        folder = Path(path)
        meta = read_model_json(folder)
        spec = meta["image_spec"]
        model = cls(meta["family"], spec["size"], spec["resize"], meta.get("pretrained_option", "auto"),
                    meta["class_weight"], meta["params"], meta.get("seed", 0), 32, spec["frames"],
                    spec.get("frame_stride", 0))
        model.weights_ = meta["pretrained"]
        model.classes_ = np.asarray(meta["classes"], dtype=object)
        model.backbone_, model.head_ = load_backbone_and_head(
            folder, meta["backbone"], spec["size"], lambda: TemporalHead(
                int(meta["embedding_dim"]), len(model.classes_), model.frames, model.options),
            "sequence model's")
        return model.validate()


def _sinusoids(length: int, width: int):
    """(1, length, width) sine / cosine positions (Vaswani et al. 2017), the attention head's start."""
    import torch

    position = torch.arange(length, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-np.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: width // 2])
    return table[None]


def TemporalHead(dim: int, n_classes: int, frames: int, opts: dict):  # noqa: N802
    """The temporal head (a torch module): (N, T, D) frame embeddings -> (N, classes) logits."""
    import torch
    from torch import nn

    kind, hidden = opts["temporal"], int(opts["hidden"])
    both = bool(opts["bidirectional"])

    class _Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dim, self.kind = dim, kind
            self.drop = nn.Dropout(float(opts["dropout"]))
            if kind in ("gru", "lstm"):
                rnn = nn.GRU if kind == "gru" else nn.LSTM
                self.rnn = rnn(dim, hidden, num_layers=int(opts["layers"]), batch_first=True,
                               bidirectional=both)
                self.classifier = nn.Linear(hidden * (2 if both else 1), n_classes)
            elif kind == "attention":
                self.project = nn.Linear(dim, hidden)
                self.position = nn.Parameter(_sinusoids(frames, hidden))  # order from the start, then learnt
                layer = nn.TransformerEncoderLayer(hidden, 4, hidden * 2, float(opts["dropout"]),
                                                   batch_first=True)
                self.encoder = nn.TransformerEncoder(layer, int(opts["layers"]), enable_nested_tensor=False)
                self.classifier = nn.Linear(hidden, n_classes)
            else:
                self.classifier = nn.Linear(dim, n_classes)

        def forward(self, x):
            x = self.drop(x)
            if self.kind == "frames":  # each frame alone; the clip's answer is their mean probability
                return torch.log(torch.softmax(self.classifier(x), -1).mean(1).clamp_min(1e-12))
            if self.kind == "mean":
                return self.classifier(x.mean(1))
            if self.kind == "attention":
                return self.classifier(self.encoder(self.project(x) + self.position[:, :x.shape[1]]).mean(1))
            out, state = self.rnn(x)
            last = state[0] if self.kind == "lstm" else state  # (layers * directions, N, hidden)
            last = torch.cat([last[-2], last[-1]], 1) if both else last[-1]
            return self.classifier(last)

    return _Head()
