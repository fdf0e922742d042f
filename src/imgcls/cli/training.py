"""Commands that fit models and score them: `imgcls train`, `imgcls evaluate`, `imgcls search`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..core.errors import ConfigError
from .common import Overrides, print_rows


def train(
    data: Annotated[str | None, typer.Argument(
        help="Folder, CSV/Parquet manifest or built-in dataset (not with --resume).",
        show_default=False)] = None,
    overrides: Overrides = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Model family (default auto: chosen from the data; see imgcls models).")
    ] = None,
    features: Annotated[str | None, typer.Option("--features", "-f",
                                                 help="Classical features, e.g. hog+lbp+color.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run folder.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    resume: Annotated[Path | None, typer.Option(
        help="Continue an interrupted fine-tuning run folder from its last checkpoint.")] = None,
    profile: Annotated[bool, typer.Option(
        help="Log images/s of data loading, forward and backward (train.profile=true).")] = False,
) -> None:
    """Train a model, evaluate it on the test split and write a run folder."""
    from ..training import train as run_train

    overrides = list(overrides or [])
    if resume is not None and data is not None and "=" in data:  # `--resume RUN key=value`
        overrides.insert(0, data)
        data = None
    if data is None and resume is None:
        raise ConfigError("Give the DATA to train on (a folder, manifest or built-in name), "
                          "or --resume RUN to continue an interrupted run.")
    if profile:
        overrides.append("train.profile=true")
    run_train(data, model=model, features=features, out=out, config=config, overrides=overrides,
              overwrite=overwrite, progress=not quiet, resume=resume)


def evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    data: Annotated[str | None, typer.Argument(help="Other dataset to evaluate on.")] = None,
    split: Annotated[str | None, typer.Option(help="test, val, train or all.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
    ood: Annotated[list[str] | None, typer.Option(
        help="Images of other kinds (folder, glob, manifest, dataset; repeatable): how well the unknown "
             "scores tell them apart (AUROC, FPR at 95% TPR).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Evaluate a saved run on its test split or on another dataset."""
    from ..evaluation import evaluate as run_evaluate

    result = run_evaluate(run, data, split=split, out=out, progress=not quiet, ood=ood)
    if ood:
        rows = [[name, method, f"{m['auroc']:.3f}", f"{m['fpr_at_95_tpr']:.3f}", str(m["n_in"]),
                 str(m["n_out"])]
                for name, found in result.metrics["ood"].items() for method, m in found["methods"].items()]
        print_rows(["other images", "unknown score", "AUROC", "FPR@95TPR", "in", "other"], rows)


def search(
    data: Annotated[str, typer.Argument(help="Folder, CSV/Parquet manifest or built-in dataset.")],
    overrides: Overrides = None,
    budget: Annotated[str, typer.Option(help="Wall-clock limit: 90s, 10m, 1h30m.")] = "10m",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Search folder.")] = None,
    storage: Annotated[str | None, typer.Option(
        help="SQLAlchemy URL of the study (default SQLite in --out); share it between workers.")] = None,
    study: Annotated[str | None, typer.Option(help="Study name (default search-DATA).")] = None,
    families: Annotated[str, typer.Option(help="Comma-separated: classical, probe, finetune.")
                        ] = "classical,probe,finetune",
    metric: Annotated[str, typer.Option(
        help="accuracy, macro_f1, balanced_accuracy, kappa; multi-label: map, macro_f1; auto: kappa "
             "for ordered grades, map for multi-label, else accuracy.")] = "auto",
    trials: Annotated[int | None, typer.Option(min=1, help="Stop after N trials of this worker.")] = None,
    ensemble: Annotated[bool, typer.Option(
        help="End with an ensemble of the kept trials when it beats the best one on validation.")] = True,
    refit: Annotated[bool, typer.Option(
        help="Refit the winner on train + validation (within the budget) before the test.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live table.")] = False,
) -> None:
    """Search model families of both schools and their settings within a time budget."""
    from ..searching import search as run_search

    result = run_search(data, budget=budget, out=out, storage=storage, study=study, families=families,
                        metric=metric, trials=trials, ensemble=ensemble, refit=refit,
                        overrides=overrides or [], progress=not quiet)
    if result.best_run is None:
        raise typer.Exit(1)
