"""AutoML: search model families of both schools and their settings under a time budget.

``imgcls search DATA --budget 10m`` runs an Optuna study: cheap, known-good defaults
first (classical models, a linear probe), then a TPE sampler over classical (features x
estimator x parameters), linear-probe and fine-tuning configurations, with fine-tuning
trials pruned epoch by epoch. Models are selected on the validation split only; the
winner alone is evaluated on the test split and written as a normal run folder
(``OUT/best``) that every other command accepts. The study lives in SQLite in ``OUT``
by default (an interrupted search resumes), or in any SQLAlchemy URL, which lets many
workers on many machines share it.

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

from ..config import resolve_config
from ..core.errors import ConfigError, DataError
from ..core.io import atomic_write_text
from ..core.log import info, warn
from ..data import assign_splits, carve_validation, describe, load_dataset
from ..models.deep.catalog import BACKBONES, SMALL_CNN
from ..models.deep.pretrained import offline_available
from ..runs import Run
from .leaderboard import budget_spent, leaderboard, print_leaderboard, write_leaderboard
from .live import LiveBoard
from .space import FAMILIES, SpaceFacts, first_trials
from .trials import METRICS, TrialRunner
from .winner import write_best

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
           families: str | Sequence[str] = FAMILIES, metric: str = "accuracy",
           trials: int | None = None, seed: int = 0,
           overrides: Sequence[str] | Mapping[str, Any] = (), progress: bool = True) -> SearchResult:
    """Search for the best model of ``data`` within ``budget``; see the module docstring.

    Args:
        data: Folder, manifest or built-in dataset name.
        budget: Wall-clock limit of this worker: ``90s``, ``10m``, ``1h`` (a trial in flight
            is stopped at the limit).
        out: Search folder; default ``runs/search-<data>``. Holds the study, the leaderboard
            and ``best/``.
        storage: SQLAlchemy URL of the study (default SQLite in ``out``); share one URL
            between workers to search together.
        study: Study name (default ``search-<data>``).
        families: Any of ``classical``, ``probe``, ``finetune``.
        metric: Validation score to maximise: ``accuracy``, ``macro_f1`` or ``balanced_accuracy``.
        trials: Stop after this many trials of this worker (default: only the budget).
        overrides: ``key=value`` config overrides shared by every trial (data, split, ...).
    """
    seconds = parse_budget(budget)
    families = parse_families(families)
    if metric not in METRICS:
        raise ConfigError(f"The 'metric' parameter must be one of {list(METRICS)}. Got {metric!r}.")
    deadline = time.monotonic() + seconds
    base = resolve_config(None, overrides if isinstance(overrides, Mapping) else list(overrides))
    base = resolve_config(base, {"data.source": str(data)})
    ds = _with_validation(load_dataset(base.data), base)
    name = ds.name
    out = Path(out) if out else Path("runs") / f"search-{name}"
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out / STUDY_FILE).resolve()}"
    study_name = study or f"search-{name}"
    optuna_study = open_study(storage, study_name, seed)
    runner = _runner(ds, base, out, metric, deadline, families, progress)
    _enqueue_defaults(optuna_study, families, runner.facts)
    n_val = int((ds.table["split"] == "val").sum())
    info(f"search: study '{study_name}' in {_safe_url(storage)}; worker {runner.worker}; "
         f"budget {seconds:.0f} s; families {', '.join(families)}; {metric} on {n_val} validation images")
    _optimize(optuna_study, runner, deadline, trials, progress)
    return _finish(optuna_study, runner, ds, base, out, metric, seconds, families)


def open_study(storage: str, name: str, seed: int):
    """Create or load the study; SQLite waits for its lock instead of failing under workers.

    Workers that start together on a new database race to create its tables; the loser
    gets an integrity error from the database and simply tries again.
    """
    import warnings

    import optuna
    import sqlalchemy.exc

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
            pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1)
            return optuna.create_study(study_name=name, storage=rdb, sampler=sampler, pruner=pruner,
                                       direction="maximize", load_if_exists=True)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.OperationalError) as exc:
            if not _race(exc):
                raise ConfigError(f"Cannot open the study storage {_safe_url(storage)}: {exc.orig}") from None
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
        except ImportError as exc:
            raise ConfigError(f"The storage {_safe_url(storage)} needs a database driver: {exc}. "
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


def _runner(ds, base, out: Path, metric: str, deadline: float, families, progress: bool):
    backbones = tuple(b for b in BACKBONES if b != SMALL_CNN and offline_available(b))
    if base.model.pretrained == "hub":
        backbones = tuple(b for b in BACKBONES if b != SMALL_CNN)
    data = describe(ds, channels=True)
    facts = SpaceFacts(data.short_side, data.channels, backbones)
    if "probe" in families and not facts.probe_backbones:
        warn("search: no linear-probe trials (no pretrained backbone offline, or images too small "
             "for one)")
    return TrialRunner(ds, base, out, uuid.uuid4().hex[:8], metric, deadline,
                       tuple(f for f in families if f != "probe" or facts.probe_backbones), facts, progress)


def _enqueue_defaults(study, families, facts) -> None:
    """Queue the known-good defaults once per study (a resumed or second worker skips them)."""
    if study.user_attrs.get("defaults_enqueued"):
        return
    study.set_user_attr("defaults_enqueued", True)
    for params in first_trials(families, facts):
        study.enqueue_trial(params, skip_if_exists=True)


def _optimize(study, runner, deadline: float, trials: int | None, progress: bool) -> None:
    timeout = max(0.0, deadline - time.monotonic())
    with LiveBoard(study, runner.metric, progress) as board:
        try:
            study.optimize(runner, n_trials=trials, timeout=timeout, callbacks=[board.update],
                           catch=(Exception,), gc_after_trial=True)
        except ValueError as exc:  # a resumed study with another search space
            raise ConfigError(f"The study cannot continue with these settings: {exc}. "
                              "Use another --study name or the same --families as before.") from None


def _finish(study, runner, ds, base, out: Path, metric: str, seconds: float, families) -> SearchResult:
    table = leaderboard(study)
    summary = {"study": study.study_name, "metric": metric, "budget_seconds": seconds,
               "families": list(families), "trials": len(table), "worker": runner.worker,
               "budget_spent": budget_spent(table)}
    best_run = None
    completed = table[table["state"] == "complete"]
    if len(completed):
        best = study.best_trial
        summary.update(best_trial=best.number, best_val_score=best.value,
                       best_overrides=best.user_attrs.get("overrides"))
        best_run = write_best(study, best, runner, ds, base, out)
        if best_run is not None:
            summary["best_test"] = {k: best_run.metrics["test"][k] for k in ("accuracy", "n")}
            summary["best_test"]["macro_f1"] = best_run.metrics["test"]["macro"]["f1"]
    else:
        warn("search: no trial completed within the budget; raise --budget")
    write_leaderboard(out, table, summary)
    atomic_write_text(out / "search.json", json.dumps(summary, indent=2, default=str))
    print_leaderboard(table, metric)
    info(f"search: leaderboard in {out / 'leaderboard.html'}"
         + (f"; best model as a run in {best_run.path}" if best_run is not None else ""))
    return SearchResult(out, table, summary, best_run)


def _safe_url(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)  # never print a password
