"""One trial of a search: train on the train split, score on the validation split.

The test split is never read here. Fine-tuning trials report their validation score at
each tenth of their schedule, so Optuna's pruner can stop a poor one early, and a callback
stops any trial in flight when the budget runs out. A worker keeps its leading trials on
disk (:mod:`.kept`): models and validation probabilities, for the ensemble and the refit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import RunConfig, cache_root, config_to_yaml, resolve_config, resolve_n_jobs
from ..data import Dataset, ImageSpec, LoadedImages, load_images
from ..data.tasks import indicator
from ..evaluation.metrics import quick_score
from ..models import EPOCHS, Runtime
from ..models.label_scores import quick_multilabel_score
from ..training import fit, fit_ready_model
from .kept import KeptTrial, keep_trial, would_keep
from .space import stoppable, suggest, to_overrides

MONITOR = {"accuracy": "val_accuracy", "macro_f1": "val_macro_f1", "balanced_accuracy": "val_accuracy",
           "kappa": "val_accuracy", "map": "val_macro_f1"}  # multi-label epochs: macro-F1 at 0.5
MIN_SECONDS_LEFT = 3.0


def scorer(metric: str, classes, order=None, multilabel: bool = False):
    """``score(labels, proba)``: ``metric`` of the most probable class (no intervals: fast);
    of the per-label probabilities against the label sets ('a|b') for a ``multilabel`` task."""
    names = [str(c) for c in classes]
    if multilabel:
        def score_sets(labels, proba) -> float:
            return quick_multilabel_score(metric, indicator(labels, names, strict=False), proba)
        return score_sets
    grades = np.array([list(order).index(c) for c in names]) if order else None

    def score(labels, proba) -> float:
        true_idx = np.array([names.index(str(v)) for v in labels])
        return quick_score(metric, true_idx, np.asarray(proba), grades)
    return score


@dataclass
class TrialRunner:
    """The objective Optuna calls; holds the data and keeps each worker's leading trials.

    ``deadline`` is when the whole search must end; ``reserve`` (seconds, updated after each
    trial by the search) is held back from the trials for refitting and evaluating the winner.
    """

    ds: Dataset
    base: RunConfig
    out: Path
    worker: str
    metric: str
    deadline: float  # time.monotonic() at which the budget ends
    families: tuple[str, ...]
    facts: object
    progress: bool = False
    order: tuple[str, ...] | None = None  # grade order, for ordered grades
    multilabel: bool = False  # label sets per image: per-label probabilities scored
    reserve: float = 0.0
    study: str = ""  # the study's name, recorded with each kept trial
    _images: dict = field(default_factory=dict)
    _durations: dict = field(default_factory=dict)

    @property
    def trial_deadline(self) -> float:
        return self.deadline - self.reserve

    def __call__(self, trial) -> float:
        import optuna

        params = suggest(trial, self.families, self.facts)
        family = params["family"]
        overrides = to_overrides(params, self.facts)
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("overrides", overrides)
        left = self.trial_deadline - time.monotonic()
        expected = min(self._durations.get(family, [0.0]))  # later trials reuse cached images
        if left < MIN_SECONDS_LEFT:
            trial.study.stop()  # the budget is spent: no more trials from this worker
        if left < MIN_SECONDS_LEFT or (not stoppable(family, self.facts) and expected > left):
            trial.set_user_attr("stopped", "budget")  # would not finish: give the time back
            raise optuna.TrialPruned("not enough budget left")
        started = time.monotonic()
        try:
            return self._fit_and_score(trial, family, overrides)
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded on the trial; the search goes on
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            raise
        finally:
            self._durations.setdefault(family, []).append(time.monotonic() - started)
            trial.set_user_attr("seconds", round(time.monotonic() - started, 2))

    def _fit_and_score(self, trial, family: str, overrides: dict) -> float:
        import optuna

        cfg = resolve_config(self.base, overrides)
        clf, loaded, reporter, fit_seconds = self.fit(cfg, trial, self.trial_deadline)
        if reporter is not None and reporter.stopped:
            trial.set_user_attr("stopped", reporter.stopped)
            trial.set_user_attr("epochs_done", reporter.epochs)
            if reporter.stopped == "pruner" or reporter.last is None:
                raise optuna.TrialPruned(f"stopped by the {reporter.stopped}")
            # stopped by the budget after some epochs: its best epoch so far is a real model
            # (restored by the trainer), so it competes on its validation score
        rows, proba, predict_seconds = self.validation_proba(clf, loaded)
        score = self.score(self.ds.labels[rows], proba, clf.classes_)
        kept = self.record(trial.number, score, family, overrides, clf, loaded, len(rows), fit_seconds,
                           predict_seconds)
        trial.set_user_attr("fit_seconds", kept.fit_seconds)
        if kept.best_epoch is not None:
            trial.set_user_attr("best_epoch", kept.best_epoch)
        if would_keep(self.out, self.worker, family, score):
            keep_trial(self.out, self.worker, kept, clf, config_to_yaml(cfg), rows, proba)
        return score

    def record(self, number: int, score: float, family: str, overrides: dict, clf, loaded, n_val: int,
               fit_seconds: float, predict_seconds: float) -> KeptTrial:
        """What the end of the search needs to know of a trial (see :class:`.kept.KeptTrial`)."""
        summary = (getattr(clf, "fit_summary_", None) or {}) if clf.supports(EPOCHS) else {}
        return KeptTrial(number, score, family, overrides, round(fit_seconds, 3), round(predict_seconds, 3),
                         len(loaded.split_rows(self.ds, "train")), n_val, summary.get("epochs"),
                         summary.get("best_epoch"), [str(c) for c in clf.classes_],
                         clf.fit_timings.get("features_seconds"), cache_root(self.base) is not None,
                         self.study)

    def score(self, labels, proba, classes) -> float:
        return scorer(self.metric, classes, self.order, self.multilabel)(labels, proba)

    def fit(self, cfg: RunConfig, trial=None, deadline: float | None = None, ds: Dataset | None = None
            ) -> tuple:
        """Train ``cfg``'s model on the train split of ``ds`` (default the search's; a model that
        uses a validation split also watches val); returns the model, the loaded images, the
        reporter that told a ``trial`` each epoch's score (models that train in epochs), and
        the seconds fitting took (decoding excluded). ``deadline`` stops epochs in flight."""
        ds = ds if ds is not None else self.ds
        # early stopping and the best epoch follow the searched metric
        cfg = resolve_config(cfg, {"train.monitor": MONITOR[self.metric]})
        runtime = Runtime(resolve_n_jobs(self.base.n_jobs), cache_root(self.base), False)
        clf = fit_ready_model(cfg, ds, runtime, quiet=True)
        reporter = None
        if clf.supports(EPOCHS) and (trial is not None or deadline is not None):
            from .pruning import Deadline, EpochReporter

            reporter = (EpochReporter(trial, MONITOR[self.metric], deadline or self.deadline)
                        if trial is not None else Deadline(deadline))
            clf.set_runtime(callbacks=(reporter,))
        loaded = self.images(clf.image_spec.with_channels(None))
        started = time.monotonic()
        fit(clf, ds, loaded)
        return clf, loaded, reporter, time.monotonic() - started

    def validation_proba(self, clf, loaded: LoadedImages) -> tuple[np.ndarray, np.ndarray, float]:
        """Dataset rows of the validation images, the model's probabilities, and the seconds."""
        val = loaded.split_rows(self.ds, "val")
        started = time.monotonic()
        proba = clf.predict_proba(loaded.images[val])
        return loaded.rows[val], proba, time.monotonic() - started

    def images(self, spec: ImageSpec) -> LoadedImages:
        """Decoded once per image spec (and cached on disk across runs, like training)."""
        if spec not in self._images:
            self._images[spec] = load_images(self.ds, spec, resolve_n_jobs(self.base.n_jobs),
                                             cache_root(self.base), self.progress)
        return self._images[spec]
