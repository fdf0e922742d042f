"""Training images/s per epoch, and with ``train.profile`` what each of data loading, forward
and backward alone would allow."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from lightning.pytorch.callbacks import Callback

from ...core.log import info


@dataclass
class StepTimes:
    data: float = 0.0
    forward: float = 0.0
    backward: float = 0.0
    total: float = 0.0
    images: int = 0


class Throughput(Callback):
    """Training images/s per epoch (progress bar, logs); with ``profile`` also the images/s
    each of data loading, forward and backward alone would allow. With several processes
    the epoch figures are summed over them (the progress bar shows this process's)."""

    def __init__(self, profile: bool) -> None:
        self.profile = profile
        self.history: list[dict] = []
        self._t = StepTimes()
        self._last_end = self._start = self._fwd_end = self._bwd_start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t = StepTimes()
        self._last_end = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()
        self._t.data += self._start - self._last_end
        self._t.images += len(batch[1])

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self._bwd_start = time.perf_counter()
        self._t.forward += self._bwd_start - self._start

    def on_after_backward(self, trainer, pl_module) -> None:
        self._t.backward += time.perf_counter() - self._bwd_start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        self._t.total += now - self._last_end
        self._last_end = now
        if self._t.total > 0:
            pl_module.log("img_s", self._t.images / self._t.total, prog_bar=True, on_step=True,
                          on_epoch=False, batch_size=1)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        t = self._t
        mine = [t.images] + [t.images / s if s > 0 else 0.0 for s in (t.total, t.data, t.forward, t.backward)]
        summed = trainer.strategy.reduce(torch.tensor(mine, device=pl_module.device),
                                         reduce_op="sum").tolist()
        rate = lambda k: round(summed[k], 1) if summed[k] > 0 else None  # noqa: E731
        row = {"epoch": trainer.current_epoch, "images": int(summed[0]), "images_per_s": rate(1)}
        if self.profile:
            row.update(data_images_per_s=rate(2), forward_images_per_s=rate(3), backward_images_per_s=rate(4))
            info(f"epoch {trainer.current_epoch}: {row['images_per_s']} img/s; alone, data "
                 f"{row['data_images_per_s']}, forward {row['forward_images_per_s']}, backward "
                 f"{row['backward_images_per_s']} img/s")
        pl_module.log("train_img_s", float(row["images_per_s"] or 0), on_epoch=True, sync_dist=True)
        self.history.append(row)
