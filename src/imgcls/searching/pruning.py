"""The Lightning callback that connects a fine-tuning trial to Optuna and to the budget.

Trials are compared at equal fractions of their own schedules, not at equal epoch numbers:
a 4-epoch trial's second epoch ends half its schedule (its learning rate already low), an
8-epoch trial's second epoch a quarter (still warming up), and comparing the two at "epoch
2" prunes the longer schedules unfairly. So a trial reports at steps 1..10, the tenths of
its schedule: after each epoch, every tenth it has passed gets that epoch's score.
"""

from __future__ import annotations

import math
import time

from lightning.pytorch.callbacks import Callback

STEPS = 10  # reports at each tenth of a trial's schedule
WARMUP_STEPS = 3  # no pruning before 30 % of a schedule: warm-up and LP-FT's first epochs wobble


def schedule_steps(epoch: int, epochs: int) -> int:
    """The last tenth of an ``epochs``-long schedule that epoch ``epoch`` (0-based) completes."""
    return min(STEPS, math.floor(STEPS * (epoch + 1) / max(1, epochs) + 1e-9))


class Deadline(Callback):
    """Stop a fit (a refit, with no trial to report to) when ``deadline`` passes."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.out_of_time = False

    def on_train_batch_end(self, trainer, *args) -> None:
        if time.monotonic() > self.deadline:
            self.out_of_time, trainer.should_stop = True, True

    @property
    def stopped(self) -> str | None:
        return "budget" if self.out_of_time else None


class EpochReporter(Deadline):
    """Report each epoch's validation score to the trial at the tenths of the schedule it
    completes; stop the fit when the pruner says so, or when the deadline
    (``time.monotonic()``) passes, checked every batch."""

    def __init__(self, trial, monitor: str, deadline: float) -> None:
        super().__init__(deadline)
        self.trial, self.monitor = trial, monitor
        self.pruned = False
        self.last: float | None = None
        self.epochs = 0
        self.reported = 0  # tenths reported so far

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or trainer.sanity_checking:
            return
        self.last = float(value)
        self.epochs += 1
        reached = schedule_steps(trainer.current_epoch, trainer.max_epochs or 1)
        for step in range(self.reported + 1, reached + 1):
            self.trial.report(self.last, step)
        self.reported = max(self.reported, reached)
        if reached and self.trial.should_prune():
            self.pruned, trainer.should_stop = True, True

    @property
    def stopped(self) -> str | None:
        return "pruner" if self.pruned else super().stopped
