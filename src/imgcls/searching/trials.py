"""One trial of a search: train on the train split, score on the validation split.

The test split is never read here. Fine-tuning trials report their validation score
after every epoch, so Optuna's pruner can stop a poor one early, and a callback stops any
trial in flight when the budget runs out. A worker keeps its best model so far on disk,
so the winner need not be trained again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig, cache_root, config_to_yaml, resolve_config, resolve_n_jobs
from ..core.io import atomic_write_text
from ..core.log import info
from ..data import Dataset, ImageSpec, LoadedImages, load_images
from ..evaluation.metrics import compute_metrics
from ..models import EPOCHS, Runtime
from ..training import fit, fit_ready_model
from .space import suggest, to_overrides

METRICS = {"accuracy": ("accuracy",), "macro_f1": ("macro", "f1"),
           "balanced_accuracy": ("balanced_accuracy",)}
MONITOR = {"accuracy": "val_accuracy", "macro_f1": "val_macro_f1", "balanced_accuracy": "val_accuracy"}
MIN_SECONDS_LEFT = 3.0


def score_of(metrics: dict, metric: str) -> float:
    value = metrics
    for key in METRICS[metric]:
        value = value[key]
    return float(value)


@dataclass
class TrialRunner:
    """The objective Optuna calls; holds the data and each worker's best model."""

    ds: Dataset
    base: RunConfig
    out: Path
    worker: str
    metric: str
    deadline: float  # time.monotonic() at which the budget ends
    families: tuple[str, ...]
    facts: object
    progress: bool = False
    _images: dict = field(default_factory=dict)
    _durations: dict = field(default_factory=dict)

    def __call__(self, trial) -> float:
        import optuna

        params = suggest(trial, self.families, self.facts)
        family = params["family"]
        overrides = to_overrides(params)
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("overrides", overrides)
        left = self.deadline - time.monotonic()
        expected = min(self._durations.get(family, [0.0]))  # later trials reuse cached images
        if left < MIN_SECONDS_LEFT:
            trial.study.stop()  # the budget is spent: no more trials from this worker
        if left < MIN_SECONDS_LEFT or (family != "finetune" and expected > left):
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
        clf, loaded, reporter = self.fit(cfg, trial)
        if reporter is not None and reporter.stopped:
            trial.set_user_attr("stopped", reporter.stopped)
            trial.set_user_attr("epochs_done", reporter.epochs)
            if reporter.stopped == "pruner" or reporter.last is None:
                raise optuna.TrialPruned(f"stopped by the {reporter.stopped}")
            # stopped by the budget after some epochs: its best epoch so far is a real model
            # (restored by the trainer), so it competes on its validation score
        score = self.validation_score(clf, loaded)
        self._keep_if_best(trial.number, score, clf, cfg)
        return score

    def fit(self, cfg: RunConfig, trial=None) -> tuple:
        """Train ``cfg``'s model on the train split (a model that uses a validation split also
        watches val); returns the model, the loaded images and, for a model that trains in
        epochs under a ``trial``, the reporter that told Optuna each epoch's score."""
        # early stopping and the best epoch follow the searched metric
        cfg = resolve_config(cfg, {"train.monitor": MONITOR[self.metric]})
        runtime = Runtime(resolve_n_jobs(self.base.n_jobs), cache_root(self.base), False)
        clf = fit_ready_model(cfg, self.ds, runtime, quiet=True)
        reporter = None
        if trial is not None and clf.supports(EPOCHS):
            from .pruning import EpochReporter

            reporter = EpochReporter(trial, MONITOR[self.metric], self.deadline)
            clf.set_runtime(callbacks=(reporter,))
        loaded = self.images(clf.image_spec.with_channels(None))
        fit(clf, self.ds, loaded)
        return clf, loaded, reporter

    def validation_score(self, clf, loaded: LoadedImages) -> float:
        val = loaded.split_rows(self.ds, "val")
        labels = self.ds.labels[loaded.rows][val]
        return score_of(compute_metrics(labels, clf.predict_proba(loaded.images[val]), clf.classes_),
                        self.metric)

    def images(self, spec: ImageSpec) -> LoadedImages:
        """Decoded once per image spec (and cached on disk across runs, like training)."""
        if spec not in self._images:
            self._images[spec] = load_images(self.ds, spec, resolve_n_jobs(self.base.n_jobs),
                                             cache_root(self.base), self.progress)
        return self._images[spec]

    def _keep_if_best(self, number: int, score: float, clf, cfg: RunConfig) -> None:
        folder = self.out / "workers" / self.worker
        record = folder / "best.json"
        best = json.loads(record.read_text()) if record.is_file() else None
        if best is not None and best["score"] >= score:
            return
        clf.save(folder / "model")
        atomic_write_text(folder / "config.yaml", config_to_yaml(cfg))
        atomic_write_text(record, json.dumps({"trial": number, "score": score}))
        info(f"trial {number}: new best of this worker, {self.metric} {score:.4f}")
