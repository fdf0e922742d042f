"""Fine-tuning: a timm backbone or the small CNN trained end to end with Lightning (see
:mod:`imgcls.models.deep.trainer`), early stopping on a validation split, resumable.

Saved as ``model.json`` + ``model.safetensors``, the normalisation inside the network, so
the weights never lose their mean and std; loading needs no training code.

Example:
    >>> model = FinetuneClassifier("small_cnn", image_size=32, train={"epochs": 2})  # doctest: +SKIP
    >>> model.fit(images, labels, val=(val_images, val_labels)).predict(images[:4])   # doctest: +SKIP
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..config import TrainConfig
from ..core.errors import ConfigError, ModelError
from ..core.io import atomic_dir, cached_rows
from ..core.log import info
from ..data.prepare import ImageSpec
from ..data.tasks import indicator
from .base import (
    EPOCHS,
    FORMAT_VERSION,
    GRADIENTS,
    ONNX,
    REPRESENTATION,
    RESUME,
    TEST_TIME_VIEWS,
    VALIDATION,
    Classifier,
    check_labels,
    check_multilabels,
    read_model_json,
    versions,
    write_model_json,
)
from .deep.augment import build_augment, parse_deep_augment, tta_flips
from .deep.catalog import BACKBONES, SMALL_CNN, auto_image_size, embedding_key
from .deep.pretrained import load_pretrained

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..data.facts import DataFacts

MODE = "finetune"
WEIGHTS = "model.safetensors"
PREDICT_BATCH = 64
# Chosen on ELPV and digits (docs/benchmarks.md); train.epochs / train.lr override them.
AUTO_EPOCHS = {"pretrained": 6, "scratch": 40}
AUTO_LR = {"pretrained": 5e-4, "scratch": 3e-3}


class FinetuneClassifier(Classifier):
    """A network and its classification head, trained end to end.

    Args:
        family: A backbone of :data:`imgcls.models.deep.catalog.BACKBONES`.
        pretrained: auto (offline weights), none, hub, or a weights file; small_cnn: none.
        params: ``C`` of the logistic regression that initialises the head (LP-FT).
        augment: Training transforms joined by '+', or auto.
        train: :class:`imgcls.config.TrainConfig` fields (epochs, lr, tta, ...).
        order: Ordered grades (class names, lowest first): the loss then spreads each target
            over the neighbouring grades (SORD), so a near miss costs less than a far one.
        multilabel: Any number of labels per image ('a|b'): one logit per label, a sigmoid
            each, binary cross-entropy (or ``train.multilabel_loss``).
    """

    school: ClassVar[str] = "deep"
    backend: ClassVar[str] = "torch"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {GRADIENTS, ONNX, VALIDATION, EPOCHS, RESUME, TEST_TIME_VIEWS, REPRESENTATION})
    representation_metric: ClassVar[str] = "cosine"  # embeddings: their direction (Sun et al., 2022)

    def __init__(self, family: str = "tf_efficientnet_lite0", image_size: int = 224,
                 resize: str = "squash", roi: str = "none", pretrained: str = "auto",
                 class_weight: str | None = None, params: dict[str, Any] | None = None,
                 augment: str = "auto", train: dict[str, Any] | None = None, seed: int = 0,
                 order: Sequence[str] | None = None, multilabel: bool = False,
                 window: str = "file") -> None:
        self.family = family
        self.multilabel = multilabel
        self.image_size = image_size
        self.resize = resize
        self.roi = roi
        self.window = window
        self.pretrained = pretrained
        self.class_weight = class_weight
        self.params = params
        self.augment = augment
        self.train = train
        self.seed = seed
        self.order = order

    @classmethod
    def from_config(cls, family: str, cfg: RunConfig, facts: DataFacts) -> FinetuneClassifier:
        m = cfg.model
        size = auto_image_size(family, facts.short_side) if m.image_size == "auto" else m.image_size
        return cls(family, int(size), m.resize, m.roi, m.pretrained, m.class_weight, dict(m.params),
                   m.augment, cfg.train.model_dump(exclude=set(TrainConfig.RUN_FIELDS)), cfg.split.seed,
                   list(cfg.task.order) if cfg.task.kind == "ordinal" and cfg.task.order else None,
                   cfg.task.kind == "multilabel", window=m.window)

    @property
    def source(self) -> str:
        """Where the starting weights come from: the small CNN always starts from scratch."""
        return "none" if self.family == SMALL_CNN else self.pretrained

    @property
    def train_options(self) -> dict[str, Any]:
        return TrainConfig.from_options(**(self.train or {})).model_dump()

    def validate(self) -> FinetuneClassifier:
        if self.family not in BACKBONES:
            raise ConfigError(f"'{self.family}' is not a deep model; use one of {list(BACKBONES)}.")
        if self.family == SMALL_CNN and self.pretrained not in ("auto", "none"):
            raise ConfigError("small_cnn trains from scratch; model.pretrained must be auto or none.")
        parse_deep_augment(self.augment, self.source != "none")
        self.train_options  # noqa: B018 - raises ConfigError on a bad train.* value
        return self

    @property
    def image_spec(self) -> ImageSpec:
        return ImageSpec(size=int(self.image_size), channels=3, resize=self.resize, roi=self.roi,
                         window=getattr(self, "window", "file"))

    @property
    def accepted_channels(self) -> tuple[int, ...]:
        return (1, 3)  # a grey stack stays one channel; the network expands it

    def resolved_options(self) -> dict[str, Any]:
        opts = self.train_options
        kind = "scratch" if self.source == "none" else "pretrained"
        if opts["epochs"] == "auto":
            opts["epochs"] = AUTO_EPOCHS[kind]
        if opts["lr"] == "auto":
            opts["lr"] = AUTO_LR[kind]
        if self.class_weight == "balanced" and opts["imbalance"] == "auto":
            opts["imbalance"] = "weights"  # model.class_weight means the same for both schools
        return opts

    def _build(self, n_classes: int, pretrained: bool = True):
        """The network wrapped with its normalisation; with ``pretrained`` its weights loaded."""
        import torch

        from .deep.networks import Preprocessed, build_network

        net, mean, std = build_network(self.family, n_classes, int(self.image_size))
        net = net.to(memory_format=torch.channels_last)  # weights too, not only the input
        if pretrained:
            self.weights_ = ("none (random initialisation)" if self.family == SMALL_CNN
                             else load_pretrained(net, self.family, self.source))
        return Preprocessed(net, mean, std)

    def fit(self, images, labels: Sequence[str], val: tuple | None = None) -> FinetuneClassifier:
        """Train on a prepared stack; ``val`` = (images, labels) enables early stopping."""
        import lightning as L
        import torch

        from .deep.networks import auto_freeze, batch_norms, freeze_groups, to_tensor
        from .deep.trainer import describe, fit_network

        self.validate()
        if self.multilabel:
            self.classes_, matrix = check_multilabels(labels)
        else:
            labels = check_labels(labels)
            self.classes_ = np.unique(labels).astype(object)
        index = {c: k for k, c in enumerate(self.classes_)}
        opts = self.resolved_options()
        opts["multilabel"] = self.multilabel
        if self.order:
            opts["grades"] = [list(self.order).index(c) for c in self.classes_]
        rt = self.runtime
        L.seed_everything(self.seed, verbose=False)
        self.net_ = self._build(len(self.classes_))
        freeze = opts["freeze"]
        if freeze == "auto":
            freeze = auto_freeze(self.net_.net) if self.source != "none" else 0
            info(f"train.freeze=auto -> {freeze} leading layer group(s) frozen")
        self.frozen_groups_ = int(freeze)
        frozen = freeze_groups(self.net_.net, self.frozen_groups_)
        if opts["freeze_bn"] == "auto":
            opts["freeze_bn"] = self.source != "none"
        if opts["freeze_bn"]:
            frozen += batch_norms(self.net_.net)
        prepared = self.check_input(images)
        x = to_tensor(prepared)
        y = torch.from_numpy(matrix.astype(np.float32)) if self.multilabel else _label_tensor(labels, index)
        val_pair = None
        if val is not None and len(val[1]):
            val_labels = np.asarray(val[1], dtype=object).astype(str)
            if self.multilabel:  # labels the model does not know are left out of the targets
                val_y = indicator(val_labels, self.classes_, strict=False).astype(np.float32)
                val_pair = (to_tensor(self.check_input(val[0])), torch.from_numpy(val_y))
            else:
                known = np.isin(val_labels, self.classes_)
                val_pair = (to_tensor(self.check_input(val[0])[known]),
                            _label_tensor(val_labels[known], index))
        head_seconds = self._init_head(opts, prepared, y)
        transform = build_augment(self.augment, int(self.image_size), x.shape[1], self.source != "none")
        with tempfile.TemporaryDirectory(prefix="imgcls-fit-") as tmp:
            work = Path(rt.work_dir) if rt.work_dir else Path(tmp)
            result = fit_network(self.net_, frozen, (x, y), val_pair, len(self.classes_), opts,
                                 transform, self.seed, work, rt.resume, rt.progress,
                                 rt.n_jobs, rt.callbacks, rt.loggers)
        self.fit_summary_ = {**describe(result), "head_init_seconds": head_seconds}
        self.global_rank_ = result.global_rank  # under DDP, only rank 0's results are written
        self.options_ = opts
        self.fit_timings_ = {"train_images_per_s": self.fit_summary_["train_images_per_s"],
                             "epochs": result.epochs}
        self.net_.eval()
        return self

    def _init_head(self, opts: dict, prepared: np.ndarray, y) -> float | None:
        """LP-FT (Kumar et al., 2022): fit the head on frozen embeddings first, so that
        fine-tuning starts from a good classifier instead of distorting the features to
        fit a random one. Measured on ELPV: see docs/benchmarks.md."""
        import time

        import torch
        from sklearn.linear_model import LogisticRegression

        from .deep.networks import set_linear_head, to_tensor

        method = opts["head_init"]
        if self.runtime.resume is not None:  # the checkpoint brings its own head
            return None
        if method == "auto":
            method = "random" if self.source == "none" else "probe"
            info(f"train.head_init=auto -> {method}")
        if method != "probe":
            return None
        if self.family == SMALL_CNN:
            raise ConfigError("train.head_init=probe needs a pretrained timm model, not small_cnn.")
        started = time.perf_counter()
        torch.set_num_threads(max(1, self.runtime.n_jobs))
        net = self.net_.eval()

        def embed(stack: np.ndarray) -> np.ndarray:
            x = to_tensor(stack)
            with torch.inference_mode():
                return torch.cat([net.embed(x[s:s + PREDICT_BATCH])
                                  for s in range(0, len(x), PREDICT_BATCH)]).float().numpy()

        # the same numbers as a linear probe's embeddings of these images: one cache for both
        feats = cached_rows(self.runtime.cache_dir, "embeddings", embedding_key(self.family, self.weights_),
                            prepared, embed)
        C = float((self.params or {}).get("C", 1.0))
        if self.multilabel:
            from sklearn.multiclass import OneVsRestClassifier

            probe = OneVsRestClassifier(LogisticRegression(C=C, max_iter=3000)).fit(feats, y.numpy())
            coef = np.concatenate([e.coef_ for e in probe.estimators_])
            intercept = np.concatenate([e.intercept_ for e in probe.estimators_])
            set_linear_head(net.net, coef, intercept, pair=False)
        else:
            probe = LogisticRegression(C=C, max_iter=3000).fit(feats, y.numpy())
            set_linear_head(net.net, probe.coef_, probe.intercept_)
        net.train()  # Lightning keeps the modes it finds; frozen groups go back to eval each epoch
        return round(time.perf_counter() - started, 2)

    def raw_proba(self, images) -> np.ndarray:
        import torch

        from .deep.networks import to_tensor

        self._check_fitted()
        prepared = self.check_input(images)
        torch.set_num_threads(max(1, self.runtime.n_jobs))
        net = self.net_.eval()
        flips = self.test_time_flips()
        out = []
        with torch.inference_mode():
            for start in range(0, len(prepared), PREDICT_BATCH):
                x = to_tensor(prepared[start:start + PREDICT_BATCH])
                activation = torch.sigmoid if self.multilabel else (lambda z: z.softmax(1))
                proba = activation(net(x).float())
                for dims in flips:
                    proba = proba + activation(net(x.flip(dims)).float())
                out.append((proba / (1 + len(flips))).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)), np.float32)

    def representation(self, images) -> np.ndarray:
        """REPRESENTATION: the network's pooled features before its classifier (plain view)."""
        import torch

        from .deep.networks import to_tensor

        self._check_fitted()
        prepared = self.check_input(images)
        torch.set_num_threads(max(1, self.runtime.n_jobs))
        net = self.net_.eval()
        with torch.inference_mode():
            out = [net.logits_and_embedding(to_tensor(prepared[s:s + PREDICT_BATCH]))[1].float().numpy()
                   for s in range(0, len(prepared), PREDICT_BATCH)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def network(self):
        self._check_fitted()
        return self.net_.eval()

    @property
    def tta(self) -> str:
        return self.train_options["tta"]

    def set_tta(self, tta: str) -> FinetuneClassifier:
        self.train = {**self.train_options, "tta": tta}
        self.validate()
        return self

    def test_time_flips(self) -> tuple[tuple[int, ...], ...]:
        return tta_flips(self.tta)

    def to_json(self) -> dict:
        import timm
        import torch

        return {
            "format_version": FORMAT_VERSION, "school": self.school, "family": self.family,
            "mode": MODE, "classes": [str(c) for c in self.classes_],
            "image_spec": self.image_spec.to_dict(), "input": "uint8 (N, C, H, W), C = 1 or 3",
            "mean": [round(v, 6) for v in (self.net_.mean.flatten() / 255).tolist()],
            "std": [round(v, 6) for v in (self.net_.std.flatten() / 255).tolist()],
            "pretrained": self.weights_, "pretrained_option": self.pretrained,
            "class_weight": self.class_weight, "params": self.params or {},
            "augment": self.augment, "train": self.train_options, "seed": self.seed, "order": self.order,
            "multilabel": self.multilabel,
            "weights": [WEIGHTS],
            "versions": {**versions(), "torch": torch.__version__, "timm": timm.__version__},
            "frozen_groups": self.frozen_groups_, "resolved": _jsonable(self.options_),
            "fit": _jsonable(self.fit_summary_), **self.tuned_json(),
        }

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        meta = self.to_json()
        with atomic_dir(path) as tmp:
            state = {k: v.detach().contiguous() for k, v in self.net_.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS))
            self.save_tuned(tmp)
            write_model_json(tmp, meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> FinetuneClassifier:
        from safetensors.torch import load_file

        folder = Path(path)
        meta = read_model_json(folder)
        spec = meta["image_spec"]
        model = cls(meta["family"], spec["size"], spec["resize"], spec.get("roi", "none"),
                    meta.get("pretrained_option", "auto"), meta["class_weight"], meta["params"],
                    meta.get("augment", "auto"), meta.get("train"), meta.get("seed", 0), meta.get("order"),
                    meta.get("multilabel", False), window=spec.get("window", "file"))
        model.weights_ = meta["pretrained"]
        model.classes_ = np.asarray(meta["classes"], dtype=object)
        try:
            state = load_file(str(folder / WEIGHTS))
            model.net_ = model._build(len(model.classes_), pretrained=False)
            model.net_.load_state_dict(state)
        except (OSError, RuntimeError, KeyError) as exc:
            raise ModelError(f"'{folder}': {WEIGHTS} cannot be loaded: {exc}") from None
        model.net_.eval()
        model.frozen_groups_ = meta.get("frozen_groups", 0)
        model.options_, model.fit_summary_ = meta.get("resolved", {}), meta.get("fit", {})
        return model


def _label_tensor(labels: np.ndarray, index: dict):
    import torch

    return torch.tensor([index[v] for v in labels], dtype=torch.long)


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
