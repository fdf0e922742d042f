"""Train a model on a dataset and write a complete run folder; re-evaluate a saved run.

A run folder holds ``config.yaml``, ``model/``, ``metrics.json``, ``report.html``,
``predictions.csv`` and ``skipped.csv``, each written atomically. When several processes
train one deep model together (DDP: ``train.strategy=ddp``, torchrun, SLURM), each runs
``train`` and only global rank 0 writes (or, on failure, removes) the run folder.

Example:
    >>> run = train("digits", model="svm", out="runs/digits-svm")   # doctest: +SKIP
    >>> run.metrics["test"]["accuracy"]                              # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import RunConfig, cache_root, config_to_yaml, resolve_config, resolve_n_jobs
from .data import Dataset, ImageSpec, LoadedImages, assign_splits, load_dataset, load_images
from .distributed import is_global_zero
from .errors import ConfigError, DataError
from .ioutils import atomic_write_text
from .log import info
from .models import MODELS, Classifier, create_model, load_model

MAX_AUTO_SIZE = 150
DEEP_AUTO_SIZE = 224
SMALL_CNN_MIN, SMALL_CNN_MAX = 32, 64
RUN_CHECKPOINTS, RUN_LOGS = "checkpoints", "logs"  # written by fine-tuning


@dataclass
class Run:
    """A finished run: its folder, resolved config, metrics and (when loaded) model."""

    path: Path
    config: RunConfig
    metrics: dict
    model: Classifier | None = None

    @classmethod
    def open(cls, path: str | Path) -> Run:
        path = Path(path)
        if not (path / "config.yaml").is_file():
            raise ConfigError(f"'{path}' is not a run folder (config.yaml is missing).")
        metrics_file = path / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        return cls(path, resolve_config(path / "config.yaml"), metrics)


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
        callbacks: Extra Lightning callbacks for fine-tuned deep models.

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
    ds = assign_splits(load_dataset(cfg.data), cfg.split)
    _check_trainable(ds)
    writer = is_global_zero()  # from the launcher's variables; the Trainer confirms it later
    run_dir = Path(resume) if resume is not None else _run_dir(cfg, ds, overwrite, writer)
    cfg.out = str(run_dir)
    created = writer and not run_dir.exists()
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", config_to_yaml(cfg))  # what --resume reads back
    try:
        return _train_into(run_dir, cfg, ds, started, progress, checkpoint, callbacks)
    except BaseException:
        if created and not (run_dir / RUN_CHECKPOINTS / "last.ckpt").is_file():
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing to resume: leave no half run
        raise


def _train_into(run_dir: Path, cfg: RunConfig, ds: Dataset, started: float, progress: bool,
                checkpoint: Path | None, callbacks: Sequence[Any]) -> Run:
    loaded = load_images(ds, image_spec_for(ds, cfg), resolve_n_jobs(cfg.n_jobs),
                         cache_root(cfg), progress)
    _report_skipped(loaded, ds)
    findings = _quick_checks(ds, loaded, cfg)
    clf = make_model(cfg, loaded, progress, run_dir, checkpoint, callbacks)
    train_rows = split_rows(ds, loaded, "train")
    fit_started = time.perf_counter()
    fit_args: dict[str, Any] = {}
    val_rows = split_rows(ds, loaded, "val")
    if clf.school == "deep" and len(val_rows):
        fit_args["val"] = (loaded.images[val_rows], ds.labels[loaded.rows[val_rows]])
    clf.fit(loaded.images[train_rows], ds.labels[loaded.rows[train_rows]], **fit_args)
    if getattr(clf, "global_rank_", 0) != 0:  # another DDP process: rank 0 evaluates and writes
        return Run(run_dir, cfg, {})
    timings = {"fit_seconds": round(time.perf_counter() - fit_started, 3),
               **getattr(clf, "fit_timings_", {})}
    metrics = evaluate_splits(clf, ds, loaded)
    timings["total_seconds"] = round(time.perf_counter() - started, 3)
    metrics.update(timings=timings, dataset=ds.summary(), model=clf.to_json(),
                   checks=[f.to_dict() for f in findings])
    write_run(run_dir, cfg, clf, ds, loaded, metrics)
    info(f"Run written to {run_dir}  (report: {run_dir / 'report.html'})")
    return Run(run_dir, cfg, metrics, clf)


def _resume_point(run_dir: Path) -> tuple[Path, Path]:
    from .models.finetune import CHECKPOINTS, LAST_CHECKPOINT

    config = run_dir / "config.yaml"
    checkpoint = run_dir / CHECKPOINTS / LAST_CHECKPOINT
    if not config.is_file():
        raise ConfigError(f"Cannot resume '{run_dir}': it is not a run folder (config.yaml is missing).")
    if not checkpoint.is_file():
        raise ConfigError(f"Cannot resume '{run_dir}': no checkpoint at {checkpoint} (only fine-tuned "
                          "deep models write checkpoints, after their first epoch).")
    return config, checkpoint


def _quick_checks(ds: Dataset, loaded: LoadedImages, cfg: RunConfig) -> list:
    """Cheap data checks on what is loaded; they warn, the report lists them (`imgcls check`
    runs the full set)."""
    from .checks.quick import summarise, training_findings
    from .log import warn

    findings = training_findings(ds, loaded, cfg)
    for line in summarise(findings):
        warn(line)
    return findings


def _check_trainable(ds: Dataset) -> None:
    train_labels = ds.table.loc[ds.table["split"] == "train", "label"]
    if train_labels.nunique() < 2:
        raise DataError(f"'{ds.name}' has {train_labels.nunique()} class(es) in its train split; "
                        "a classifier needs at least 2.")


def image_spec_for(ds: Dataset, cfg: RunConfig, quiet: bool = False) -> ImageSpec:
    """Classical: the data's own size (capped); deep: the backbone's input size (the small
    CNN: the data's size within 32-64). Grey data stays one channel in memory."""
    deep = MODELS.get(cfg.model.name).school == "deep"
    size = cfg.model.image_size
    if size == "auto":
        if cfg.model.name == "small_cnn":
            size = min(SMALL_CNN_MAX, max(SMALL_CNN_MIN, median_short_side(ds)))
        else:
            size = DEEP_AUTO_SIZE if deep else min(MAX_AUTO_SIZE, median_short_side(ds))
        if not quiet:
            info(f"model.image_size=auto -> {size}")
    return ImageSpec(size=int(size), channels=None, resize=cfg.model.resize, roi=cfg.model.roi)


def median_short_side(ds: Dataset, sample: int = 200) -> int:
    """Median of min(height, width) over up to ``sample`` evenly spaced images (headers only)."""
    from PIL import Image

    from .data.decode import PILLOW_FORMATS

    picks = np.unique(np.linspace(0, len(ds) - 1, min(sample, len(ds))).astype(int))
    sides = []
    for i in picks:
        if ds.arrays is not None:
            sides.append(min(ds.arrays[i].shape[:2]))
            continue
        try:
            with Image.open(ds.file_path(i), formats=PILLOW_FORMATS) as img:
                sides.append(min(img.size))
        except Exception:  # noqa: BLE001, S112 - unreadable files are reported when decoded
            continue
    return int(np.median(sides)) if sides else MAX_AUTO_SIZE


def make_model(cfg: RunConfig, loaded: LoadedImages, progress: bool, run_dir: Path | None = None,
                checkpoint: Path | None = None, callbacks: Sequence[Any] = ()) -> Classifier:
    from .features import auto_features

    if len(loaded.images) == 0:
        raise DataError("No image could be decoded; see skipped.csv reasons above.")
    size = loaded.images.shape[1]
    m = cfg.model
    common = {"image_size": size, "resize": m.resize, "class_weight": m.class_weight,
              "params": dict(m.params), "seed": cfg.split.seed, "n_jobs": resolve_n_jobs(cfg.n_jobs),
              "cache_dir": cache_root(cfg), "progress": progress, "roi": m.roi}
    if MODELS.get(m.name).school == "deep":
        return create_model(m.name, pretrained=m.pretrained, mode=m.mode, augment=m.augment,
                            train=cfg.train.model_dump(), work_dir=run_dir, resume=checkpoint,
                            callbacks=callbacks, **common)
    features = cfg.model.features
    if features == "auto":
        features = auto_features(size, loaded.channels)
        info(f"model.features=auto -> {features}")
    return create_model(m.name, features=features, channels=loaded.channels, scaler=m.scaler,
                        augment=m.augment, feature_params=dict(m.feature_params), **common)


def split_rows(ds: Dataset, loaded: LoadedImages, split: str) -> np.ndarray:
    """Positions in ``loaded`` of the decoded images of one split."""
    splits = ds.table["split"].to_numpy()[loaded.rows]
    return np.flatnonzero(splits == split)


def evaluate_splits(clf: Classifier, ds: Dataset, loaded: LoadedImages) -> dict:
    from .evaluation import compute_metrics

    metrics: dict[str, Any] = {"predictions": {}}
    for split in ("val", "test"):
        rows = split_rows(ds, loaded, split)
        if len(rows) == 0:
            continue
        proba = clf.predict_proba(loaded.images[rows])
        labels = ds.labels[loaded.rows[rows]]
        metrics[split] = compute_metrics(labels, proba, clf.classes_)
        metrics["predictions"][split] = (rows, proba)
    if "test" in metrics:
        m = metrics["test"]
        info(f"test accuracy {m['accuracy']:.4f}  macro-F1 {m['macro']['f1']:.4f}  (n={m['n']})")
    return metrics


def _report_skipped(loaded: LoadedImages, ds: Dataset) -> None:
    from .log import warn

    for path, reason in loaded.skipped.itertuples(index=False):
        warn(f"skipped {path}: {reason}")
    if len(loaded.skipped):
        warn(f"{len(loaded.skipped)} of {len(ds)} images skipped; reasons in skipped.csv")


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
            for stale in (RUN_CHECKPOINTS, RUN_LOGS):
                shutil.rmtree(path / stale, ignore_errors=True)
        return path
    base = Path("runs") / f"{ds.name}-{cfg.model.name}"
    path, n = base, 2
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path


def predictions_table(ds: Dataset, loaded: LoadedImages, rows: np.ndarray, proba: np.ndarray,
                      classes: Sequence[str], split: str) -> pd.DataFrame:
    picked = loaded.rows[rows]
    pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    table = pd.DataFrame({"path": np.asarray(ds.paths, dtype=object)[picked],
                          "label": ds.labels[picked], "prediction": pred,
                          "confidence": proba.max(axis=1).round(6), "split": split})
    for k, c in enumerate(classes):
        table[f"p_{c}"] = proba[:, k].round(6)
    for column in ds.metadata_columns:  # kept for per-group analysis (audits)
        table[column] = ds.table[column].to_numpy()[picked]
    return table


def write_run(run_dir: Path, cfg: RunConfig, clf: Classifier, ds: Dataset,
               loaded: LoadedImages, metrics: dict) -> None:
    from .report import write_report

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", config_to_yaml(cfg))
    clf.save(run_dir / "model")
    tables = [predictions_table(ds, loaded, rows, proba, clf.classes_, split)
              for split, (rows, proba) in metrics.pop("predictions").items()]
    predictions = pd.concat(tables) if tables else pd.DataFrame()
    atomic_write_text(run_dir / "predictions.csv", predictions.to_csv(index=False))
    atomic_write_text(run_dir / "skipped.csv", loaded.skipped.to_csv(index=False))
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    write_report(run_dir / "report.html", metrics, predictions, ds, loaded, cfg, clf)


def evaluate_run(run: str | Path, data: str | Path | None = None, *, split: str | None = None,
                 out: str | Path | None = None, progress: bool = True) -> dict:
    """See :func:`imgcls.evaluation.evaluate`."""
    from .evaluation import compute_metrics

    opened = Run.open(run)
    clf = load_model(opened.path)
    cfg = opened.config
    ds, split = evaluation_rows(cfg, data, split)
    loaded = load_images(ds, clf.image_spec, resolve_n_jobs(cfg.n_jobs), cache_root(cfg), progress)
    _report_skipped(loaded, ds)
    proba = clf.predict_proba(loaded.images)
    metrics = compute_metrics(ds.labels[loaded.rows], proba, clf.classes_)
    out_dir = Path(out) if out else opened.path / f"eval-{ds.name}-{split}"
    ds.table["split"] = split
    rows = np.arange(len(loaded.rows))
    predictions = predictions_table(ds, loaded, rows, proba, clf.classes_, split)
    _write_evaluation(out_dir, metrics, predictions, ds, loaded, cfg, clf)
    info(f"{split} accuracy {metrics['accuracy']:.4f} on {metrics['n']} images; "
         f"report: {out_dir / 'report.html'}")
    return metrics


def evaluation_rows(cfg: RunConfig, data: str | Path | None = None,
                    split: str | None = None) -> tuple[Dataset, str]:
    """The rows a saved run is evaluated on, before any image is decoded.

    Args:
        cfg: The run's resolved config.
        data: Other data (folder, manifest, built-in); None for the run's own data.
        split: ``train``, ``val``, ``test`` or ``all``; default ``test`` for the run's own
            data (split as at training) and ``all`` for other data.

    Returns:
        The dataset restricted to the split, and the split's name.

    Example:
        >>> ds, split = evaluation_rows(Run.open("runs/digits-svm").config)  # doctest: +SKIP
        >>> split                                                          # doctest: +SKIP
        'test'
    """
    if data is None:
        ds = assign_splits(load_dataset(cfg.data), cfg.split)
        split = split or "test"
    else:
        ds = load_dataset(cfg.data.model_copy(update={"source": str(data)}))
        split = split or "all"
    if split != "all":
        if "split" not in ds.table:
            raise DataError(f"'{ds.name}' has no split column; use --split all.")
        ds = ds.subset(np.flatnonzero(ds.table["split"].to_numpy() == split))
        if len(ds) == 0:
            raise DataError(f"'{ds.name}' has no rows in split '{split}'.")
    return ds, split


def _write_evaluation(out_dir: Path, metrics: dict, predictions: pd.DataFrame, ds: Dataset,
                      loaded: LoadedImages, cfg: RunConfig, clf: Classifier) -> None:
    from .report import write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"test": metrics, "dataset": ds.summary()}
    atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2))
    atomic_write_text(out_dir / "predictions.csv", predictions.to_csv(index=False))
    atomic_write_text(out_dir / "skipped.csv", loaded.skipped.to_csv(index=False))
    write_report(out_dir / "report.html", result, predictions, ds, loaded, cfg, clf)
