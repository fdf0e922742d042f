"""The Lightning callback that connects a fine-tuning trial to Optuna and to the budget."""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import Callback


class EpochReporter(Callback):
    """Report each epoch's validation score to the trial; stop the fit when the pruner says
    so, or when the budget's deadline (``time.monotonic()``) passes, checked every batch."""

    def __init__(self, trial, monitor: str, deadline: float) -> None:
        self.trial, self.monitor, self.deadline = trial, monitor, deadline
        self.pruned = self.out_of_time = False
        self.last: float | None = None
        self.epochs = 0

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or trainer.sanity_checking:
            return
        self.last = float(value)
        self.epochs += 1
        self.trial.report(self.last, trainer.current_epoch)
        if self.trial.should_prune():
            self.pruned, trainer.should_stop = True, True

    def on_train_batch_end(self, trainer, *args) -> None:
        if time.monotonic() > self.deadline:
            self.out_of_time, trainer.should_stop = True, True

    @property
    def stopped(self) -> str | None:
        return "pruner" if self.pruned else "budget" if self.out_of_time else None
