"""Train a model on a dataset and write a complete run folder.

``train`` resolves the config, reads the data and its splits, lets the model's family build
the model from the config, decodes and prepares the images once, fits, scores the val and
test splits and writes the run folder (layout in :mod:`imgcls.runs`), each file atomically.
When several processes train one deep model together (DDP: ``train.strategy=ddp``,
torchrun, SLURM), each runs ``train`` and only global rank 0 writes (or, on failure,
removes) the run folder.

Example:
    >>> run = train("digits", model="svm", out="runs/digits-svm")   # doctest: +SKIP
    >>> run.metrics["test"]["accuracy"]                              # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .checks.quick import summarise, training_findings
from .config import RunConfig, cache_root, resolve_config, resolve_n_jobs
from .core.distributed import is_global_zero
from .core.errors import ConfigError, DataError
from .core.log import info, warn
from .data import Dataset, assign_splits, carve_validation, describe, load_dataset, load_images
from .data.tasks import grade_order, indicator
from .evaluation.scoring import (
    evaluate_splits,
    needs_validation,
    split_predictions,
    tune_on_validation,
    warn_skipped,
    write_outputs,
)
from .models import EPOCHS, VALIDATION, Classifier, ModelChoice, Runtime, build_model, choose_model
from .models.choice import AUTO
from .runs import CHECKPOINTS, CONFIG, LAST_CHECKPOINT, LOGS, MODEL_DIR, Run, write_config
from .tracking import epoch_loggers, record


def train(data: str | Path | None = None, *, model: str | None = None,
          features: str | None = None, out: str | Path | None = None,
          config: RunConfig | str | Path | None = None,
          overrides: Sequence[str] | Mapping[str, Any] = (), overwrite: bool = False,
          progress: bool = True, resume: str | Path | None = None,
          callbacks: Sequence[Any] = ()) -> Run:
    """Train, evaluate and save a model; returns the Run.

    Args:
        data: Folder, CSV/Parquet manifest or built-in dataset name (``data.source``).
        model: Model family (``model.name``), see ``imgcls models``.
        features: Classical features, e.g. ``hog+lbp+color`` (``model.features``).
        out: Run folder (``out``); default ``runs/<data>-<model>``, numbered if taken.
        config: A RunConfig or YAML file to start from.
        overrides: ``key=value`` strings or a mapping, applied last.
        overwrite: Replace an existing ``out`` folder instead of failing.
        resume: A run folder whose training was interrupted: continue it from its last
            checkpoint with its own config.yaml (``overrides`` may raise ``train.epochs``).
        callbacks: Extra Lightning callbacks for models that train in epochs.

    Under DDP the processes other than global rank 0 return a Run with no metrics and no
    model, and write nothing.
    """
    shortcuts = {"data.source": data, "model.name": model, "model.features": features, "out": out}
    items = dict(overrides) if isinstance(overrides, Mapping) else {}
    strings = [] if isinstance(overrides, Mapping) else list(overrides)
    items.update({k: str(v) for k, v in shortcuts.items() if v is not None})
    checkpoint = None
    if resume is not None:
        config, checkpoint = _resume_point(Path(resume))
        items["out"] = str(resume)
    cfg = resolve_config(config, strings)
    cfg = resolve_config(cfg, items) if items else cfg
    started = time.perf_counter()
    ds = assign_splits(load_dataset(cfg.data, cfg.task), cfg.split)
    _check_trainable(ds)
    cfg, choice = resolve_auto(cfg, ds)
    cfg, ds = resolve_task(cfg, ds)
    writer = is_global_zero()  # from the launcher's variables; the Trainer confirms it later
    run_dir = Path(resume) if resume is not None else _run_dir(cfg, ds, overwrite, writer)
    cfg.out = str(run_dir)
    created = writer and not run_dir.exists()
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, cfg)  # what --resume reads back
    try:
        return _train_into(run_dir, cfg, ds, started, progress, checkpoint, callbacks, choice)
    except BaseException:
        if created and not (run_dir / CHECKPOINTS / LAST_CHECKPOINT).is_file():
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing to resume: leave no half run
        raise


def resolve_auto(cfg: RunConfig, ds: Dataset) -> tuple[RunConfig, ModelChoice | None]:
    """``model.name=auto``: the family the data calls for (said in the log and the report); the
    config then names it, so the run folder reproduces it."""
    if cfg.model.name != AUTO:
        return cfg, None
    choice = choose_model(describe(ds), cfg.model.pretrained, cfg.data.tiles)
    info(f"model.name=auto -> {choice.name}" + "".join(f" {k}={v}" for k, v in choice.overrides.items())
         + f": {choice.reason}")
    return resolve_config(cfg, {"model.name": choice.name, **choice.overrides}), choice


def resolve_task(cfg: RunConfig, ds: Dataset) -> tuple[RunConfig, Dataset]:
    """Ordered grades or not (the config then says which, with the order), the decision target
    (``auto``: kappa for grades, else the most probable class), and a validation split to tune
    a decision on when the data has none."""
    order = grade_order(cfg.task, ds)
    if ds.multilabel:
        task = {"task.kind": "multilabel"}
        info(f"task: multi-label, {len(ds.classes)} labels: {', '.join(ds.classes)}")
    else:
        task = {"task.kind": "ordinal", "task.order": list(order)} if order else {"task.kind": "single"}
    auto_target = "f1" if ds.multilabel else ("kappa" if order else "argmax")
    target = cfg.decision.target if cfg.decision.target != AUTO else auto_target
    cfg = resolve_config(cfg, {**task, "decision.target": target})
    if order:
        info(f"task: ordered grades {' < '.join(order)}")
    asked = needs_validation(cfg.decision)
    if asked and not (ds.table["split"] == "val").any():
        ds = carve_validation(ds, cfg.split.model_copy(update={"val": cfg.decision.val}))
        info(f"{', '.join(asked)}: {cfg.decision.val:.0%} of train held out to tune on")
    return cfg, ds


def grades_of(cfg: RunConfig) -> tuple[str, ...] | None:
    return tuple(cfg.task.order) if cfg.task.kind == "ordinal" and cfg.task.order else None


def _train_into(run_dir: Path, cfg: RunConfig, ds: Dataset, started: float, progress: bool,
                checkpoint: Path | None, callbacks: Sequence[Any], choice: ModelChoice | None = None) -> Run:
    n_jobs = resolve_n_jobs(cfg.n_jobs)
    clf = fit_ready_model(cfg, ds, Runtime(n_jobs, cache_root(cfg), progress, run_dir, checkpoint,
                                           tuple(callbacks)))
    loggers = epoch_loggers(cfg, run_dir, ds.name) if clf.supports(EPOCHS) else ()
    clf.set_runtime(loggers=loggers)
    loaded = load_images(ds, clf.image_spec.with_channels(None), n_jobs, cache_root(cfg), progress)
    warn_skipped(loaded, ds)
    if len(loaded.images) == 0:
        raise DataError("No image could be decoded; see skipped.csv reasons above.")
    findings = training_findings(ds, loaded, cfg)
    for line in summarise(findings):
        warn(line)
    fit_started = time.perf_counter()
    fit(clf, ds, loaded)
    run = Run(run_dir, cfg, {}, run_dir / MODEL_DIR)
    if clf.global_rank_ != 0:  # another DDP process: rank 0 evaluates and writes
        return run
    timings = {"fit_seconds": round(time.perf_counter() - fit_started, 3), **clf.fit_timings}
    tuned = time.perf_counter()
    tune_on_validation(clf, ds, loaded, cfg.decision, grades_of(cfg), cfg.split.seed)
    timings["tune_seconds"] = round(time.perf_counter() - tuned, 3)
    metrics = evaluate_splits(clf, ds, loaded, grades_of(cfg))
    predictions = split_predictions(metrics, ds, loaded, clf.classes_)
    timings["total_seconds"] = round(time.perf_counter() - started, 3)
    metrics.update(timings=timings, dataset=ds.summary(), model=describe_model(clf),
                   checks=[f.to_dict() for f in findings])
    if choice is not None:
        metrics["model_choice"] = choice.to_dict()
    metrics.update({k: v for k, v in clf.tuned_json().items() if v is not None})  # decision, calibration...
    save_run(run, clf, metrics, predictions, ds, loaded)
    record(cfg, run, loggers)
    info(f"Run written to {run_dir}  (report: {run_dir / 'report.html'})")
    return run


def fit_ready_model(cfg: RunConfig, ds: Dataset, runtime: Runtime, quiet: bool = False) -> Classifier:
    """The model ``cfg`` describes, built by its family from the data's facts, set to run."""
    clf = build_model(cfg, describe(ds)).set_runtime(runtime)
    if cfg.model.image_size == "auto" and not quiet:
        info(f"model.image_size=auto -> {clf.image_spec.size}")
    return clf


def fit(clf: Classifier, ds: Dataset, loaded) -> Classifier:
    """Fit on the train split; a model that uses a validation split gets the val rows too."""
    labels = ds.labels[loaded.rows]
    train_rows, val_rows = loaded.split_rows(ds, "train"), loaded.split_rows(ds, "val")
    val = (loaded.images[val_rows], labels[val_rows]) if clf.supports(VALIDATION) and len(val_rows) else None
    return clf.fit(loaded.images[train_rows], labels[train_rows], val=val)


def describe_model(clf: Classifier) -> dict:
    """The ``model`` section of a run's metrics: model.json's content and the capabilities."""
    return {**clf.to_json(), "capabilities": sorted(clf.capabilities)}


def save_run(run: Run, clf: Classifier, metrics: dict, predictions, ds: Dataset, loaded) -> None:
    """config.yaml, the model folder, the tables, metrics.json and report.html of a run."""
    run.path.mkdir(parents=True, exist_ok=True)
    write_config(run.path, run.config)
    clf.save(run.model_dir)
    write_outputs(run.path, metrics, predictions, ds, loaded, run.config, clf)
    run.metrics, run._model = metrics, clf
    run.write_model_card()


def _resume_point(run_dir: Path) -> tuple[Path, Path]:
    config = run_dir / CONFIG
    checkpoint = run_dir / CHECKPOINTS / LAST_CHECKPOINT
    if not config.is_file():
        raise ConfigError(f"Cannot resume '{run_dir}': it is not a run folder (config.yaml is missing).")
    if not checkpoint.is_file():
        raise ConfigError(f"Cannot resume '{run_dir}': no checkpoint at {checkpoint} (only models "
                          "that train in epochs write checkpoints, after their first epoch).")
    return config, checkpoint


def _check_trainable(ds: Dataset) -> None:
    train_labels = ds.table.loc[ds.table["split"] == "train", "label"]
    if ds.multilabel:
        counts = indicator(train_labels.to_numpy(), ds.classes, strict=False).sum(axis=0)
        bad = [f"'{c}' ({int(n)} of {len(train_labels)})" for c, n in zip(ds.classes, counts, strict=True)
               if n == 0 or n == len(train_labels)]
        if bad:
            raise DataError(f"'{ds.name}': label(s) {', '.join(bad)} are on none or all of the train images; "
                            "each label needs images with it and images without it.")
        return
    if train_labels.nunique() < 2:
        raise DataError(f"'{ds.name}' has {train_labels.nunique()} class(es) in its train split; "
                        "a classifier needs at least 2.")


def _run_dir(cfg: RunConfig, ds: Dataset, overwrite: bool, writer: bool = True) -> Path:
    """``out``, checked; or the first free ``runs/<data>-<model>[-N]``. Other DDP processes
    than rank 0 neither check nor number: they write nothing, and rank 0 may have created
    the folder already."""
    if not writer:
        return Path(cfg.out or Path("runs") / f"{ds.name}-{cfg.model.name}")
    if cfg.out:
        path = Path(cfg.out)
        if path.exists() and any(path.iterdir()) and not overwrite:
            raise ConfigError(f"Run folder '{path}' already exists; pass --overwrite "
                              "(overwrite=True) or choose another --out.")
        if overwrite:  # a new run must not resume or mix logs with the one it replaces
            for stale in (CHECKPOINTS, LOGS):
                shutil.rmtree(path / stale, ignore_errors=True)
        return path
    base = Path("runs") / f"{ds.name}-{cfg.model.name}"
    path, n = base, 2
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path
