"""Trials report at tenths of their own schedules, so a long schedule is compared with a short
one at the same point of its course, not at the same epoch number."""

from types import SimpleNamespace

import pytest

from imgcls.searching.pruning import STEPS, EpochReporter, schedule_steps


@pytest.mark.parametrize("epochs, reached", [(4, [2, 5, 7, 10]), (8, [1, 2, 3, 5, 6, 7, 8, 10]),
                                             (10, list(range(1, 11))), (3, [3, 6, 10])])
def test_each_epoch_reaches_its_tenth_of_the_schedule(epochs, reached):
    assert [schedule_steps(e, epochs) for e in range(epochs)] == reached


class _Trial:
    def __init__(self, prune_at=None):
        self.reports, self.prune_at = [], prune_at

    def report(self, value, step):
        assert step not in [s for _, s in self.reports], "a step reported twice"
        self.reports.append((value, step))

    def should_prune(self):
        return self.prune_at is not None and self.reports[-1][1] >= self.prune_at


def _run(reporter, scores, epochs):
    trainer = SimpleNamespace(max_epochs=epochs, sanity_checking=False, should_stop=False,
                              callback_metrics={})
    for epoch, score in enumerate(scores):
        trainer.current_epoch = epoch
        trainer.callback_metrics = {"val_accuracy": score}
        reporter.on_validation_epoch_end(trainer, None)
        if trainer.should_stop:
            break
    return trainer


def test_every_tenth_is_reported_once_with_the_epoch_that_reached_it():
    trial = _Trial()
    _run(EpochReporter(trial, "val_accuracy", float("inf")), [0.5, 0.6, 0.7, 0.8], epochs=4)
    assert [s for _, s in trial.reports] == list(range(1, STEPS + 1))
    assert dict((s, v) for v, s in trial.reports)[3] == 0.6  # tenths 3-5 come from epoch 2 of 4


def test_the_pruner_stops_the_fit_and_says_so():
    trial = _Trial(prune_at=5)
    reporter = EpochReporter(trial, "val_accuracy", float("inf"))
    trainer = _run(reporter, [0.5, 0.6, 0.7, 0.8], epochs=4)
    assert trainer.should_stop and reporter.stopped == "pruner" and reporter.epochs == 2
