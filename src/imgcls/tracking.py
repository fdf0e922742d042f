"""Experiment trackers: a run's parameters and results in TensorBoard or MLflow, both schools.

``train.logger=csv`` (default) keeps what every run has: ``metrics.json`` and, for models that
train in epochs, Lightning's CSV log in ``logs/``. ``tensorboard`` adds event files in
``RUN/logs/tensorboard`` (per-epoch curves for models that train in epochs, the final scores
for all); ``mlflow`` records the run in an MLflow store (``train.tracking_uri``, default
``sqlite:///<folder of the runs>/mlflow.db``, shared by the runs beside it): parameters, per-epoch
metrics, the final scores, and report.html, metrics.json and model_card.md as artifacts.

Example:
    >>> imgcls.train("digits", overrides=["train.logger=mlflow"])     # doctest: +SKIP
    >>> # mlflow ui --backend-store-uri sqlite:///runs/mlflow.db
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from .config import RunConfig
from .core.errors import ConfigError
from .runs import LOGS, METRICS, MODEL_CARD, REPORT, Run

TENSORBOARD_DIR = "tensorboard"
FINAL = ("accuracy", "balanced_accuracy", "log_loss", "ece")


def tracking_uri(cfg: RunConfig, run_dir: Path) -> str:
    return cfg.train.tracking_uri or f"sqlite:///{(run_dir.parent / 'mlflow.db').resolve()}"


def artifact_location(cfg: RunConfig, run_dir: Path) -> str | None:
    """Where a new experiment keeps its artifacts: beside the default store (MLflow would
    otherwise write ./mlruns into the working directory); a given tracking URI decides."""
    return None if cfg.train.tracking_uri else (run_dir.parent / "mlartifacts").resolve().as_uri()


def _need(module: str, extra: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"train.logger={extra} needs the '{extra}' package: pip install "
                          f"'imgcls[tracking]'.") from None


def epoch_loggers(cfg: RunConfig, run_dir: Path, experiment: str) -> tuple:
    """Lightning loggers for a model that trains in epochs (beside its CSV log)."""
    if cfg.train.logger == "tensorboard":
        _need("tensorboard", "tensorboard")
        from lightning.pytorch.loggers import TensorBoardLogger

        return (TensorBoardLogger(save_dir=str(run_dir / LOGS), name=TENSORBOARD_DIR, version=""),)
    if cfg.train.logger == "mlflow":
        _need("mlflow", "mlflow")
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        from lightning.pytorch.loggers import MLFlowLogger

        return (MLFlowLogger(experiment_name=experiment, run_name=run_dir.name,
                             tracking_uri=tracking_uri(cfg, run_dir),
                             artifact_location=artifact_location(cfg, run_dir)),)
    return ()


def _scores(metrics: dict) -> dict[str, float]:
    """The final scores: ``test_*``, and ``final_val_*`` (``val_*`` are the per-epoch curves)."""
    out = {}
    for split, prefix in (("val", "final_val"), ("test", "test")):
        m = metrics.get(split)
        if m:
            out.update({f"{prefix}_{k}": float(m[k]) for k in FINAL if m.get(k) is not None})
            out[f"{prefix}_macro_f1"] = float(m["macro"]["f1"])
    if metrics.get("timings", {}).get("total_seconds") is not None:
        out["total_seconds"] = float(metrics["timings"]["total_seconds"])
    return out


def _params(cfg: RunConfig) -> dict[str, str]:
    flat: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            flat[prefix] = str(value)[:500]

    walk("", cfg.model_dump(mode="json"))
    return flat


def record(cfg: RunConfig, run: Run, loggers: tuple = ()) -> None:
    """The run's parameters and final scores in the tracker ``train.logger`` names."""
    if cfg.train.logger == "tensorboard":
        _record_tensorboard(cfg, run)
    elif cfg.train.logger == "mlflow":
        run_id = next((lg.run_id for lg in loggers if hasattr(lg, "run_id")), None)
        _record_mlflow(cfg, run, run_id)


def _record_tensorboard(cfg: RunConfig, run: Run) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(run.path / LOGS / TENSORBOARD_DIR)) as writer:
        for name, value in _scores(run.metrics).items():
            writer.add_scalar(f"final/{name}", value)
        writer.add_text("config", "\n".join(f"    {k} = {v}" for k, v in _params(cfg).items()))


def _record_mlflow(cfg: RunConfig, run: Run, run_id: str | None) -> None:
    _need("mlflow", "mlflow")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri(cfg, run.path))
    if run_id is None:
        experiment = run.metrics.get("dataset", {}).get("name") or "imgcls"
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(
            experiment, artifact_location=artifact_location(cfg, run.path))
        run_id = client.create_run(experiment_id, run_name=run.path.name).info.run_id
    model = run.metrics.get("model", {})
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in _scores(run.metrics).items()],
                     params=[Param(k, v) for k, v in _params(cfg).items()],
                     tags=[RunTag("imgcls.run", str(run.path.resolve())),
                           RunTag("imgcls.family", str(model.get("family", ""))),
                           RunTag("imgcls.school", str(model.get("school", "")))])
    for name in (REPORT, METRICS, MODEL_CARD):
        if (run.path / name).is_file():
            client.log_artifact(run_id, str(run.path / name))
    client.set_terminated(run_id)
