"""Fine-tuning with Lightning: AdamW, warm-up + cosine, label smoothing, MixUp/CutMix, EMA,
early stopping, a checkpoint every epoch, resumable, on any Lightning device.

Images stay decoded and resized in memory as uint8 (grey as one channel); each epoch only
augments and runs the network. Shuffling and augmentation are seeded per epoch, so a run
resumed from a checkpoint continues exactly as the uninterrupted run would have.

Several processes (``train.strategy=ddp``, torchrun, SLURM): every process runs this with
all the images in memory; the samplers of :mod:`imgcls.models.sampling` give each one its
own shard of every epoch, and validation metrics are computed from counts summed over all
processes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from ...core.errors import ConfigError
from .augment import build_mix
from .losses import (
    multilabel_loss,
    ordinal_targets,
    resolve_imbalance,
    resolve_multilabel_imbalance,
)
from .sampling import EpochSampler, Shard, TensorImages
from .throughput import Throughput

CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"


def warmup_cosine(warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor



class FinetuneModule(L.LightningModule):
    def __init__(self, net: torch.nn.Module, frozen: Sequence[torch.nn.Module], opts: dict,
                 n_classes: int, class_weights: torch.Tensor | None, steps_per_epoch: int,
                 seed: int) -> None:
        super().__init__()
        self.net, self.frozen, self.opts, self.seed = net, list(frozen), opts, seed
        self.n_classes, self.steps_per_epoch = n_classes, steps_per_epoch
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.register_buffer("soft_targets", ordinal_targets(opts.get("grades")), persistent=False)
        self.multilabel = bool(opts.get("multilabel"))
        if self.multilabel and (opts["mixup"] > 0 or opts["cutmix"] > 0):
            raise ConfigError("train.mixup / train.cutmix mix one label per image; set them to 0 for a "
                              "multi-label task.")
        self.mix = build_mix(opts["mixup"], opts["cutmix"], n_classes)
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def on_train_epoch_start(self) -> None:
        # mixing, dropout: drawn from (seed, epoch), and apart on each process
        torch.manual_seed(self.seed * 100_003 + self.current_epoch + 7_919 * self.global_rank)
        for module in self.frozen:  # Lightning may set modes itself; frozen BN stays frozen
            module.eval()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        x, target = x.float(), y
        if self.mix is not None:
            x, target = self.mix(x, y)
        if self.multilabel:
            loss = multilabel_loss(self.net(x), target, self.opts["multilabel_loss"], self.class_weights)
        elif self.soft_targets is not None:  # ordered grades: near grades share the target (SORD)
            target = self.soft_targets[target] if target.ndim == 1 else target @ self.soft_targets
            loss = F.cross_entropy(self.net(x), target, weight=self.class_weights)
        else:
            loss = F.cross_entropy(self.net(x), target, weight=self.class_weights,
                                   label_smoothing=self.opts["label_smoothing"])
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(y),
                 sync_dist=True)  # the epoch mean over every process
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        keep = y >= 0 if y.ndim == 1 else (y >= 0).all(1)  # -1: padding that evens out the shards
        self._val_outputs.append((self.net(x.float()).float()[keep], y[keep]))

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        logits = torch.cat([o[0] for o in self._val_outputs])
        y = torch.cat([o[1] for o in self._val_outputs])
        self._val_outputs.clear()
        if self.multilabel:
            return self._multilabel_validation(logits, y)
        # sums over every process's shard, so the metrics are those of the whole split
        loss = F.cross_entropy(logits, y, reduction="sum") if len(y) else logits.new_zeros(())
        confusion = torch.bincount(y * self.n_classes + logits.argmax(1),
                                   minlength=self.n_classes**2).reshape(self.n_classes, -1)
        totals = self.trainer.strategy.reduce(torch.cat([loss.reshape(1), confusion.flatten().float()]),
                                              reduce_op="sum")
        confusion = totals[1:].reshape(self.n_classes, -1)
        n = confusion.sum().clamp(min=1)
        for name, value in (("val_loss", totals[0] / n), ("val_accuracy", confusion.diagonal().sum() / n),
                            ("val_macro_f1", macro_f1(confusion))):
            # the same on every process; sync_dist only says so to Lightning
            self.log(name, value, prog_bar=name == "val_accuracy", sync_dist=True)

    def _multilabel_validation(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        """val_loss (summed over labels, per image), val_accuracy (labels right, 1 - Hamming loss)
        and val_macro_f1 (per label at 0.5), over every process's shard."""
        chosen, truth = logits > 0, y > 0
        loss = multilabel_loss(logits, y, "bce", reduction="sum") if len(y) else logits.new_zeros(())
        tp, fp = (chosen & truth).sum(0).float(), (chosen & ~truth).sum(0).float()
        fn = (~chosen & truth).sum(0).float()
        totals = self.trainer.strategy.reduce(torch.cat([loss.reshape(1), logits.new_tensor([len(y)]),
                                                         tp, fp, fn]), reduce_op="sum")
        k = y.shape[1]
        n = totals[1].clamp(min=1)
        tp, fp, fn = totals[2:2 + k], totals[2 + k:2 + 2 * k], totals[2 + 2 * k:]
        f1 = 2 * tp / (2 * tp + fp + fn).clamp(min=1)
        for name, value in (("val_loss", totals[0] / n), ("val_accuracy", 1 - (fp + fn).sum() / (n * k)),
                            ("val_macro_f1", f1.mean())):
            self.log(name, value, prog_bar=name == "val_accuracy", sync_dist=True)

    def configure_optimizers(self):
        decay, no_decay = [], []
        for p in self.net.parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)  # no decay on biases and norms
        groups = [{"params": decay, "weight_decay": self.opts["weight_decay"]},
                  {"params": no_decay, "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=self.opts["lr"])
        # per device: Lightning splits the loader across devices (DDP)
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, total // self.opts["epochs"])
        warmup = max(1, round(self.opts["warmup_epochs"] * per_epoch))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def macro_f1(confusion: torch.Tensor) -> torch.Tensor:
    """Macro F1 over the classes that occur in the labels or predictions (as scikit-learn's
    ``f1_score(average="macro", zero_division=0)``); rows are labels, columns predictions."""
    tp = confusion.diagonal()
    support, predicted = confusion.sum(1), confusion.sum(0)
    present = (support + predicted) > 0
    f1 = 2 * tp / (support + predicted).clamp(min=1)
    return f1[present].mean() if present.any() else f1.new_zeros(())


@dataclass
class FitResult:
    epochs: int
    best_epoch: int | None
    history: list[dict] = field(default_factory=list)
    imbalance: str = "none"
    precision: str = "32-true"
    stopped_early: bool = False
    world_size: int = 1  # processes that trained together (DDP)
    global_rank: int = 0  # this process's; only rank 0 writes results


def resolve_precision(precision: str, accelerator: str) -> str:
    """auto: bf16 mixed on a GPU that has it, fp16 mixed on an older GPU, fp32 elsewhere (on
    CPUs bf16 autocast measured slower: 31.4 against 39.0 img/s, benchmarks/finetune_speed.py)."""
    if precision != "auto":
        return precision
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def fit_network(net: torch.nn.Module, frozen: Sequence[torch.nn.Module], train: tuple,
                val: tuple | None, n_classes: int, opts: dict, transform, seed: int,
                work_dir: Path, resume: Path | None = None, progress: bool = False,
                n_jobs: int = 1, callbacks: Sequence[Callback] = (), loggers: Sequence = ()) -> FitResult:
    """Train ``net`` in place on (uint8 NCHW tensor, int labels) pairs; returns what happened.

    Under DDP every process calls this; the result says which process it was.
    """
    x_train, y_train = train
    imbalance = (resolve_multilabel_imbalance(opts["imbalance"], y_train) if opts.get("multilabel")
                 else resolve_imbalance(opts["imbalance"], y_train, n_classes))
    monitor = opts["monitor"] if val is not None and len(val[1]) else None
    throughput = Throughput(opts["profile"])
    extra, checkpoint = _callbacks(opts, work_dir, monitor, throughput, progress)
    batch_size = min(opts["batch_size"], len(y_train))
    precision = resolve_precision(opts["precision"], opts["accelerator"])
    trainer = _trainer(opts, [*extra, *callbacks], work_dir, precision, progress,
                       log_every=max(1, min(10, len(y_train) // batch_size)), loggers=loggers)
    rank, world = trainer.global_rank, trainer.world_size  # known before the processes start
    if not torch.cuda.is_available() or opts["accelerator"] == "cpu":  # share the cores
        torch.set_num_threads(max(1, n_jobs // max(1, trainer.num_devices)))
    sampler = EpochSampler(len(y_train), seed, imbalance.sample_weights, rank, world)
    batch_size = min(batch_size, len(sampler))
    train_loader = DataLoader(TensorImages(x_train, y_train, transform), batch_size=batch_size,
                              sampler=sampler, drop_last=len(sampler) > batch_size,
                              generator=torch.Generator().manual_seed(seed))  # not the global RNG
    val_loader = None
    if monitor:
        val_loader = DataLoader(TensorImages(*val), batch_size=max(64, batch_size),
                                sampler=Shard(len(val[1]), rank, world))
    module = FinetuneModule(net, frozen, opts, n_classes, imbalance.class_weights,
                            len(train_loader), seed)
    if resume is not None and not resume.is_file():
        raise ConfigError(f"Cannot resume: checkpoint '{resume}' does not exist.")
    with _quiet_lightning():
        trainer.fit(module, train_loader, val_loader, ckpt_path=str(resume) if resume else None,
                    weights_only=True)  # a checkpoint is data; never unpickle code from it
    # rank 0 saved best.ckpt (possibly on its own machine); only its weights are written out
    best_epoch = _restore_best(net, checkpoint) if checkpoint and trainer.is_global_zero else None
    stopped = trainer.current_epoch < opts["epochs"]
    return FitResult(trainer.current_epoch, best_epoch, throughput.history, imbalance.method,
                     precision, stopped, trainer.world_size, trainer.global_rank)


def _callbacks(opts: dict, work_dir: Path, monitor: str | None, throughput: Throughput,
               progress: bool) -> tuple[list[Callback], Any]:
    """Throughput, checkpoints, early stopping, EMA, progress bar; and the best checkpoint."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    ckpt_dir = work_dir / CHECKPOINTS
    mode = "min" if monitor == "val_loss" else "max"
    # every epoch: last.ckpt (what --resume reads); with a validation split also best.ckpt.
    # Under DDP only rank 0 writes them (Lightning); all ranks agree on the best epoch.
    last = ModelCheckpoint(dirpath=ckpt_dir, filename=LAST_CHECKPOINT.removesuffix(".ckpt"),
                           save_top_k=1, every_n_epochs=1, enable_version_counter=False)
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode,
                                 save_top_k=1, enable_version_counter=False) if monitor else None
    extra: list[Callback] = [throughput, last, *([checkpoint] if checkpoint else [])]
    if monitor and opts["patience"] > 0:
        extra.append(EarlyStopping(monitor=monitor, mode=mode, patience=opts["patience"]))
    if opts["ema"]:
        from lightning.pytorch.callbacks import EMAWeightAveraging

        extra.append(EMAWeightAveraging(decay=opts["ema_decay"]))
    if progress:
        extra.append(_progress_bar())
    return extra, checkpoint


def _trainer(opts: dict, callbacks: list[Callback], work_dir: Path, precision: str, progress: bool,
             log_every: int, loggers: Sequence = ()) -> L.Trainer:
    from lightning.pytorch.loggers import CSVLogger

    with _quiet_lightning():
        return L.Trainer(
            max_epochs=opts["epochs"], accelerator=opts["accelerator"], devices=opts["devices"],
            num_nodes=opts["num_nodes"], strategy=opts["strategy"], precision=precision,
            callbacks=callbacks, logger=[CSVLogger(work_dir, name="logs"), *loggers],
            default_root_dir=work_dir,
            enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
            log_every_n_steps=log_every, gradient_clip_val=opts["clip_grad"] or None,
            use_distributed_sampler=False,  # EpochSampler and Shard split the data themselves
        )


@contextlib.contextmanager
def _quiet_lightning():
    """Lightning's banner lines (devices found, tips) and a deprecation warning it raises
    itself add nothing for a user of imgcls; real warnings and errors still show."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")  # resuming
        # several processes: each runs fewer steps per epoch than the interval set for one
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        try:
            yield
        finally:
            logger.setLevel(level)


def _progress_bar():
    from lightning.pytorch.callbacks import RichProgressBar

    shown = ("train_loss_step", "img_s", "val_accuracy", "val_macro_f1")

    class Bar(RichProgressBar):
        def get_metrics(self, trainer, pl_module):
            metrics = super().get_metrics(trainer, pl_module)
            return {k.removesuffix("_step"): v for k, v in metrics.items() if k in shown}

    return Bar(leave=True)


def _restore_best(net: torch.nn.Module, checkpoint) -> int | None:
    """Load the best validation checkpoint's weights into ``net`` (only tensors are read)."""
    path = checkpoint.best_model_path
    if not path or not Path(path).is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "net."
    net.load_state_dict({k[len(prefix):]: v for k, v in state["state_dict"].items()
                         if k.startswith(prefix)})
    return int(state.get("epoch", -1))


def describe(result: FitResult) -> dict[str, Any]:
    rates = [h["images_per_s"] for h in result.history if h.get("images_per_s")]
    return {"epochs": result.epochs, "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early, "imbalance": result.imbalance,
            "precision": result.precision, "world_size": result.world_size,
            "train_images_per_s": round(float(np.median(rates)), 1) if rates else None,
            "history": result.history}
