"""AutoML: search model families of both schools and their settings under a time budget.

``imgcls search DATA --budget 10m`` runs an Optuna study: cheap, known-good defaults
first (classical models, a linear probe, a fine-tune), then a TPE sampler over classical
(features x estimator x parameters), linear-probe and fine-tuning configurations, with
fine-tuning trials pruned at equal fractions of their schedules. Models are selected on
the validation split only. The search then ends its job: an ensemble of the kept trials
when it beats the best single one on validation (:mod:`.ensembling`), refitted on train +
validation within the budget (:mod:`.refit`), and only then evaluated on the test split,
once, and written as a normal run folder (``OUT/best``) that every other command accepts.
The study lives in SQLite in ``OUT`` by default (an interrupted search resumes), or in any
SQLAlchemy URL, which lets many workers on many machines share it. On clips (video files,
folders of frames) the families are the sequence models and their temporal heads, and the
search ends with the best single trial.

Example:
    >>> result = search("digits", budget="2m", out="runs/search-digits")   # doctest: +SKIP
    >>> result.best_run.metrics["test"]["accuracy"]                        # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import config_to_yaml, resolve_config
from ..core.errors import ConfigError, DataError
from ..core.io import atomic_write_text
from ..core.log import info, safe_url, warn
from ..data import assign_splits, carve_validation, describe, load_dataset
from ..evaluation.metrics import SCORES
from ..models.deep.catalog import BACKBONES, SMALL_CNN
from ..models.deep.pretrained import offline_available
from ..models.label_scores import MULTILABEL_SCORES
from ..runs import Run
from ..training import grades_of, resolve_task
from .ensembling import plan_winner
from .kept import KeptTrial, keep_trial, kept_trials
from .leaderboard import budget_spent, leaderboard, print_leaderboard, write_leaderboard
from .live import LiveBoard
from .refit import Refit, refit_plan, reserve
from .space import FAMILIES, SpaceFacts, available, first_trials
from .trials import TrialRunner, scorer
from .winner import write_best

METRICS = ("auto", *SCORES, *(s for s in MULTILABEL_SCORES if s not in SCORES))

DEFAULT_VAL = 0.2
STUDY_FILE = "study.db"


@dataclass
class SearchResult:
    """What a search leaves: its folder, the leaderboard and the winner's run (when written)."""

    out: Path
    leaderboard: Any  # pandas.DataFrame
    summary: dict
    best_run: Run | None = None


def parse_budget(budget: str | float | int) -> float:
    """Seconds from ``90``, ``90s``, ``10m``, ``1h`` or ``1h30m``."""
    if isinstance(budget, int | float):
        seconds = float(budget)
    else:
        text = str(budget).strip().lower()
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", text)
        if not text or parts is None:
            raise ConfigError(f"The 'budget' parameter must look like 90s, 10m or 1h30m. Got {budget!r}.")
        h, m, s = (float(p) if p else 0.0 for p in parts.groups())
        seconds = 3600 * h + 60 * m + s
    if seconds <= 0:
        raise ConfigError(f"The 'budget' parameter must be positive. Got {budget!r}.")
    return seconds


def parse_families(families: str | Sequence[str]) -> tuple[str, ...]:
    names = [f.strip() for f in (families.split(",") if isinstance(families, str) else families) if f.strip()]
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown or not names:
        raise ConfigError(f"The 'families' parameter must name some of {list(FAMILIES)}. Got {families!r}.")
    return tuple(f for f in FAMILIES if f in names)  # cheap first, whatever the order given


def search(data: str | Path, *, budget: str | float = "10m", out: str | Path | None = None,
           storage: str | None = None, study: str | None = None,
           families: str | Sequence[str] = FAMILIES, metric: str = "auto",
           trials: int | None = None, seed: int = 0, ensemble: bool = True, refit: bool = True,
           overrides: Sequence[str] | Mapping[str, Any] = (), progress: bool = True) -> SearchResult:
    """Search for the best model of ``data`` within ``budget``; see the module docstring.

    Args:
        data: Folder, manifest or built-in dataset name.
        budget: Wall-clock limit of this worker, refit and evaluation of the winner included:
            ``90s``, ``10m``, ``1h`` (a trial in flight is stopped at its limit).
        out: Search folder; default ``runs/search-<data>``. Holds the study, the leaderboard
            and ``best/``.
        storage: SQLAlchemy URL of the study (default SQLite in ``out``); share one URL
            between workers to search together.
        study: Study name (default ``search-<data>``).
        families: Any of ``classical``, ``probe``, ``finetune`` (on clips, the sequence families
            of those names: :mod:`.space`).
        metric: Validation score to maximise: ``accuracy``, ``macro_f1``,
            ``balanced_accuracy`` or ``kappa`` (ordered grades); for a multi-label task ``map``
            or ``macro_f1`` (each label's F1 at its best threshold); ``auto``: kappa for
            ordered grades, mAP for multi-label, else accuracy.
        trials: Stop after this many trials of this worker (default: only the budget).
        ensemble: End with an ensemble of the kept trials when it beats the best one (never on
            clips: clip models are not ensembled).
        refit: Refit the winner on train + validation before the test evaluation.
        overrides: ``key=value`` config overrides shared by every trial (data, split, task,
            decision target, ...).
    """
    seconds = parse_budget(budget)
    families = parse_families(families)
    if metric not in METRICS:
        raise ConfigError(f"The 'metric' parameter must be one of {list(METRICS)}. Got {metric!r}.")
    deadline = time.monotonic() + seconds
    base = resolve_config(None, overrides if isinstance(overrides, Mapping) else list(overrides))
    base = resolve_config(base, {"data.source": str(data)})
    ds = _with_validation(load_dataset(base.data, base.task), base)
    base, ds = resolve_task(base, ds)
    order = grades_of(base)
    metric = _resolve_metric(metric, order, ds.multilabel, base)
    name = ds.name
    out = Path(out) if out else Path("runs") / f"search-{name}"
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out / STUDY_FILE).resolve()}"
    study_name = study or f"search-{name}"
    optuna_study = open_study(storage, study_name, seed)
    runner = _runner(ds, base, out, metric, deadline, families, progress, order)
    runner.multilabel = ds.multilabel
    runner.study = study_name
    _enqueue_defaults(optuna_study, families, runner.facts)
    n_val = int((ds.table["split"] == "val").sum())
    info(f"search: study '{study_name}' in {safe_url(storage)}; worker {runner.worker}; "
         f"budget {seconds:.0f} s; families {', '.join(families)}; {metric} on {n_val} validation images")
    end = Ending(runner, seconds, ensemble, refit)
    if ensemble and not end.ensembles:
        info("search: clips end with the best single trial (clip models are not ensembled)")
    _optimize(optuna_study, runner, deadline, trials, progress, end.update)
    return _finish(optuna_study, runner, end, base, out, seconds, families)


def _resolve_metric(metric: str, order, multilabel: bool, base) -> str:
    if multilabel:
        if base.decision.calibration == "temperature":
            raise ConfigError("decision.calibration=temperature is for one label per image; a multi-label "
                              "search uses each label's probabilities as they are.")
        metric = "map" if metric == "auto" else metric
        if metric not in MULTILABEL_SCORES:
            raise ConfigError(f"A multi-label search selects by {' or '.join(MULTILABEL_SCORES)}; "
                              f"metric={metric} scores one label per image.")
        return metric
    if metric == "map":
        raise ConfigError("metric=map is for multi-label tasks (task.kind=multilabel).")
    metric = ("kappa" if order else "accuracy") if metric == "auto" else metric
    if metric == "kappa" and not order:
        raise ConfigError("metric=kappa needs ordered grades: set task.kind=ordinal (and task.order).")
    return metric


@dataclass
class Ending:
    """How the search ends (ensemble? refit?) and the time it holds back for that: after each
    trial, the winner so far is planned and the runner's reserve set to what refitting and
    evaluating it would take."""

    runner: TrialRunner
    budget: float
    ensemble: bool
    refit: bool

    @property
    def ensembles(self) -> bool:
        """Whether the end may be an ensemble: not of clip models (an Ensemble prepares still images)."""
        return self.ensemble and not self.runner.facts.clips

    @property
    def n_test(self) -> int:
        return int((self.runner.ds.table["split"] == "test").sum())

    def plan(self, kept: list[KeptTrial] | None = None):
        kept = self.kept() if kept is None else kept
        if not kept:
            return None
        labels = self.runner.ds.labels
        runner = self.runner
        score = scorer(runner.metric, kept[0].classes, runner.order, runner.multilabel)  # once, not per call
        return plan_winner(kept, lambda rows: labels[rows], score, self.ensembles, runner.multilabel)

    def kept(self) -> list[KeptTrial]:
        return kept_trials(self.runner.out, self.runner.study)

    def update(self, study, trial) -> None:  # an Optuna callback
        kept = self.kept()
        if kept:
            self.runner.reserve = reserve(self.plan(kept), kept, self.n_test, self.budget, self.refit)


def open_study(storage: str, name: str, seed: int):
    """Create or load the study; SQLite waits for its lock instead of failing under workers.

    Workers that start together on a new database race to create its tables; the loser
    gets an integrity error from the database and simply tries again.
    """
    import warnings

    import optuna
    import sqlalchemy.exc

    from .pruning import WARMUP_STEPS

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # imgcls says what matters itself
    engine = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # heartbeats and grouped multivariate TPE are "experimental"
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                rdb = optuna.storages.RDBStorage(
                    storage, engine_kwargs=engine, heartbeat_interval=15, grace_period=60,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                        max_retry=1))
                sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                                     constant_liar=True, n_startup_trials=8)
            # steps are tenths of each trial's schedule (see .pruning)
            pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=WARMUP_STEPS)
            return optuna.create_study(study_name=name, storage=rdb, sampler=sampler, pruner=pruner,
                                       direction="maximize", load_if_exists=True)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.OperationalError) as exc:
            if not _race(exc):
                raise ConfigError(f"Cannot open the study storage {safe_url(storage)}: {exc.orig}") from None
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
        except ImportError as exc:
            raise ConfigError(f"The storage {safe_url(storage)} needs a database driver: {exc}. "
                              "For PostgreSQL: pip install 'imgcls[postgres]'.") from None


def _race(exc) -> bool:
    """A failure another worker caused by creating the same tables at the same moment."""
    import sqlalchemy.exc

    if isinstance(exc, sqlalchemy.exc.OperationalError):  # SQLite reports races this way
        text = str(exc.orig).lower()
        return "already exists" in text or "locked" in text
    return True


def _with_validation(ds, cfg):
    """Assign splits; carve a stratified validation split out of train when there is none."""
    val = cfg.split.val or DEFAULT_VAL
    split = cfg.split.model_copy(update={"val": val})
    ds = assign_splits(ds, split)
    if not (ds.table["split"] == "val").any():
        ds = carve_validation(ds, split)
        info(f"search: no validation split given; {val:.0%} of train held out for selection")
    if (ds.table["split"] == "train").sum() == 0 or (ds.table["split"] == "val").sum() == 0:
        raise DataError(f"'{ds.name}' needs train and validation images to search on.")
    return ds


def _runner(ds, base, out: Path, metric: str, deadline: float, families, progress: bool, order):
    backbones = tuple(b for b in BACKBONES if b != SMALL_CNN and offline_available(b))
    if base.model.pretrained == "hub":
        backbones = tuple(b for b in BACKBONES if b != SMALL_CNN)
    data = describe(ds, channels=True)
    size = None if base.model.image_size == "auto" else int(base.model.image_size)
    facts = SpaceFacts(data.short_side, data.channels, backbones, clips=data.videos > 0, image_size=size)
    usable = available(families, facts)
    if facts.clips:
        info(f"search: {data.videos} clips ({data.short_side} px frames): searching the sequence families "
             "(classical: sequence_classical; probe, finetune: sequence and its temporal heads)")
        if set(families) - set(usable):
            warn("search: no sequence trials on a CNN (no pretrained backbone offline); "
                 "sequence_classical only")
    elif "probe" in families and "probe" not in usable:
        warn("search: no linear-probe trials (no pretrained backbone offline, or images too small "
             "for one)")
    if not usable:
        raise ConfigError(f"No family of {list(families)} can be searched on this data; add classical "
                          "to --families.")
    return TrialRunner(ds, base, out, uuid.uuid4().hex[:8], metric, deadline, usable, facts, progress, order)


def _enqueue_defaults(study, families, facts) -> None:
    """Queue the known-good defaults once per study (a resumed or second worker skips them)."""
    if study.user_attrs.get("defaults_enqueued"):
        return
    study.set_user_attr("defaults_enqueued", True)
    for params in first_trials(families, facts):
        study.enqueue_trial(params, skip_if_exists=True)


def _optimize(study, runner, deadline: float, trials: int | None, progress: bool, after_trial) -> None:
    timeout = max(0.0, deadline - time.monotonic())
    with LiveBoard(study, runner.metric, progress) as board:
        try:
            study.optimize(runner, n_trials=trials, timeout=timeout, callbacks=[after_trial, board.update],
                           catch=(Exception,), gc_after_trial=True)
        except ValueError as exc:  # a resumed study with another search space
            raise ConfigError(f"The study cannot continue with these settings: {exc}. "
                              "Use another --study name or the same --families as before.") from None


def _finish(study, runner, end: Ending, base, out: Path, seconds: float, families) -> SearchResult:
    table = leaderboard(study)
    summary = {"study": study.study_name, "metric": runner.metric, "budget_seconds": seconds,
               "families": list(families), "trials": len(table), "worker": runner.worker,
               "budget_spent": budget_spent(table)}
    if runner.facts.clips:
        summary.update(clips=True, ensemble="off for clips: the best single trial wins")
    best_run = None
    completed = table[table["state"] == "complete"]
    if len(completed):
        best = study.best_trial
        summary.update(best_trial=best.number, best_trial_val_score=best.value,
                       best_overrides=best.user_attrs.get("overrides"))
        kept = _with_best_trial(end.kept(), best, runner)
        plan = end.plan(kept)
        if plan is not None:
            done = (refit_plan(plan, runner, end.n_test) if end.refit
                    else Refit([m.model_dir for m in plan.members]))
            best_run = write_best(study, plan, done, runner, base, out, base.decision.target)
            summary.update(winner=plan.describe(), best_val_score=plan.val_score,
                           search=best_run.metrics["search"])
            summary["best_test"] = _test_summary(best_run.metrics["test"])
    else:
        warn("search: no trial completed within the budget; raise --budget")
    summary["elapsed_seconds"] = round(seconds - (runner.deadline - time.monotonic()), 1)
    write_leaderboard(out, table, summary)
    atomic_write_text(out / "search.json", json.dumps(summary, indent=2, default=str))
    print_leaderboard(table, runner.metric)
    where = f"; best model ({summary['winner']}) as a run in {best_run.path}" if best_run is not None else ""
    info(f"search: leaderboard in {out / 'leaderboard.html'}{where}")
    return SearchResult(out, table, summary, best_run)


def _test_summary(test: dict) -> dict:
    """The winner's headline test figures for search.json."""
    out = {"accuracy": test["accuracy"], "n": test["n"], "macro_f1": test["macro"]["f1"],
           "accuracy_ci": test["intervals"].get("accuracy")}
    if test.get("task") == "multilabel":
        out.update(micro_f1=test["micro"]["f1"], map=test["map"], hamming_loss=test["hamming_loss"])
    if "ordinal" in test:
        out["kappa"] = test["ordinal"]["qwk"]
    return out


def _with_best_trial(kept: list[KeptTrial], best, runner) -> list[KeptTrial]:
    """The kept trials, with the study's best among them: when another worker ran it on
    another machine, its settings are trained again here (with their seed)."""
    if any(k.number == best.number for k in kept):
        return kept
    info(f"search: the model of trial {best.number} is not on this machine; training it again")
    overrides = best.user_attrs.get("overrides", {})
    cfg = resolve_config(runner.base, overrides)
    clf, loaded, _, fit_seconds = runner.fit(cfg)
    rows, proba, predict_seconds = runner.validation_proba(clf, loaded)
    trial = runner.record(best.number, best.value, best.params.get("family", ""), overrides, clf, loaded,
                          len(rows), fit_seconds, predict_seconds)
    keep_trial(runner.out, runner.worker, trial, clf, config_to_yaml(cfg), rows, proba)
    return kept_trials(runner.out, runner.study)
