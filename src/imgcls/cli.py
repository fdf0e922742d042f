"""The command line: each command is one library call with the same names.

    imgcls train DATA [--model svm] [--features hog+lbp+color] [--out runs/NAME] [key=value ...]
    imgcls evaluate RUN [DATA] [--split test|all]
    imgcls predict RUN PATH... [--top-k 3] [--output preds.csv] [--precision int8] [--engine ray]
    imgcls export RUN [--format onnx] [--quantize int8]
    imgcls explain RUN [IMAGE...] [--method gradcam+lime] [--target LABEL] [--sanity]
    imgcls audit RUN [DATA] --group-by COLUMN [--metric accuracy] [--max-gap 0.05]
    imgcls search DATA [--budget 10m] [--families classical,probe,finetune] [--storage URL]
    imgcls serve RUN... [--host 127.0.0.1] [--port 8000] [--api-key KEY]
    imgcls datasets | models | config [key=value ...]

Exit codes: 0 success, 1 failure (a clear message on stderr), 2 usage error.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated

import typer

from .cli_review import audit_command, explain_command

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Image classification end to end: train, evaluate, predict.")


def _library_call(func):
    """Turn imgcls errors into one red line and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from .errors import ImgclsError

        try:
            return func(*args, **kwargs)
        except ImgclsError as exc:
            from rich.console import Console
            from rich.markup import escape

            Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(1) from None

    return wrapper


Overrides = Annotated[list[str] | None, typer.Argument(
    help="Config overrides key=value, e.g. split.test=0.2 model.params.C=10", show_default=False)]


@app.command()
@_library_call
def train(
    data: Annotated[str | None, typer.Argument(
        help="Folder, CSV/Parquet manifest or built-in dataset (not with --resume).",
        show_default=False)] = None,
    overrides: Overrides = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model family.")] = None,
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
    from .errors import ConfigError
    from .training import train as run_train

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


@app.command()
@_library_call
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    data: Annotated[str | None, typer.Argument(help="Other dataset to evaluate on.")] = None,
    split: Annotated[str | None, typer.Option(help="test, val, train or all.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Evaluate a saved run on its test split or on another dataset."""
    from .evaluation import evaluate as run_evaluate

    run_evaluate(run, data, split=split, out=out, progress=not quiet)


@app.command()
@_library_call
def predict(
    run: Annotated[Path, typer.Argument(help="Run or model folder, or an exported .onnx file.")],
    paths: Annotated[list[str], typer.Argument(
        help="Image files, folders, globs, a manifest or a dataset (with --engine ray also s3://... URIs).")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1)] = 3,
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help=".csv, .jsonl or .parquet")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N images.")] = None,
    backend: Annotated[str, typer.Option(
        help="auto (ONNX Runtime when the run has an up-to-date export), onnx or torch.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32, or int8 (needs export --quantize int8).")] = "fp32",
    export: Annotated[bool, typer.Option("--export", help="Export to ONNX first if not done yet.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per inference call.")] = 32,
    threads: Annotated[int, typer.Option(
        min=0, help="Inference threads (0: all cores; with --engine ray: per actor, 0 = 1).")] = 0,
    engine: Annotated[str, typer.Option(
        help="local (this process) or ray (map_batches on a Ray cluster; pip install 'imgcls[ray]').")
    ] = "local",
    address: Annotated[str | None, typer.Option(
        help="With --engine ray: the cluster to join, e.g. auto (default: a local Ray on all cores).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Predict the top-k labels of images with a saved model."""
    from .prediction import predict as run_predict

    table = run_predict(run, paths, top_k=top_k, output=output, limit=limit, progress=not quiet,
                        backend=backend, precision=precision, export=export, batch_size=batch_size,
                        n_jobs=threads, engine=engine, address=address)
    if output is None:
        _print_table(table)
    failed = int((table["error"] != "").sum())
    if failed == len(table):
        raise typer.Exit(1)


@app.command("export")
@_library_call
def export_command(
    run: Annotated[Path | None, typer.Argument(help="Run folder of a deep model.", show_default=False)
                   ] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="See --list.")] = "onnx",
    quantize: Annotated[str | None, typer.Option(help="int8: add a quantised copy.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder; default RUN/export.")] = None,
    data: Annotated[str | None, typer.Option(
        help="Verify on these images instead of the run's test split.")] = None,
    calibration: Annotated[int, typer.Option(min=1, help="Training images that calibrate int8.")] = 128,
    tta: Annotated[str | None, typer.Option(
        help="Test-time views in the graph: none, hflip or hflip+vflip (default: the run's).")] = None,
    list_formats: Annotated[bool, typer.Option("--list", help="List the export formats.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Export a run for deployment (ONNX, optionally int8), verified against PyTorch."""
    from rich.console import Console
    from rich.table import Table

    from .errors import ConfigError
    from .exporting import export
    from .exporting import list_formats as formats

    if list_formats:
        view = Table("format", "suffix", "quantize", "description")
        for f in formats():
            view.add_row(f.name, f.suffix, ", ".join(f.quantize) or "-", f.description)
        Console().print(view)
        return
    if run is None:
        raise ConfigError("Give the RUN folder to export (or --list).")
    report = export(run, format, quantize=quantize, out=out, data=data, calibration=calibration,
                    tta=tta, progress=not quiet)
    view = Table("file", "precision", "MB", "test accuracy", "images/s (batch 32)")
    p = report["parity"]
    for name, facts in report["files"].items():
        int8 = facts["precision"] == "int8"
        acc = report["int8"]["accuracy_int8"] if int8 else p["accuracy_onnx"]
        speed = report["int8"]["images_per_s_int8"] if int8 else p["onnx_images_per_s"]
        view.add_row(name, facts["precision"], f"{facts['bytes'] / 1e6:.1f}",
                     "-" if acc is None else f"{acc:.4f}", f"{speed:.0f}")
    Console().print(view)


def _print_table(table) -> None:
    from rich.console import Console
    from rich.table import Table

    if (table["error"] == "").all():
        table = table.drop(columns="error")
    view = Table(*table.columns)
    for row in table.itertuples(index=False):
        view.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    Console().print(view)


@app.command()
@_library_call
def check(
    data: Annotated[str, typer.Argument(help="Folder, CSV/Parquet manifest or built-in dataset.")],
    overrides: Overrides = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
    fail_on: Annotated[str | None, typer.Option(help="Exit 1 on findings this severe: error or warning.")
                       ] = None,
    write_manifest: Annotated[Path | None, typer.Option(help="Write a clean CSV manifest here.")] = None,
    keep: Annotated[str | None, typer.Option(help="Duplicate kept in the manifest: first or largest.")
                    ] = None,
    labels: Annotated[bool, typer.Option(help="Run the label-issue pass.")] = True,
    run: Annotated[Path | None, typer.Option(help="Use this run's model for the label-issue pass.")
                   ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Find unreadable files, duplicates, leakage, outliers, imbalance and label errors."""
    from .checks import check as run_check
    from .checks.report import print_summary

    items = list(overrides or []) + [f"check.labels={str(labels).lower()}"]
    if keep:
        items.append(f"check.keep={keep}")
    if fail_on not in (None, "error", "warning"):
        raise typer.BadParameter("use error or warning", param_hint="--fail-on")
    report = run_check(data, out_dir=out, overrides=items, write_manifest=write_manifest, run=run,
                       progress=not quiet)
    print_summary(report.summary, report.issues)
    typer.echo(f"Report: {report.out / 'check.html'}", err=True)
    raise typer.Exit(report.exit_code(fail_on))


@app.command()
@_library_call
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
    metric: Annotated[str, typer.Option(help="accuracy, macro_f1 or balanced_accuracy.")] = "accuracy",
    trials: Annotated[int | None, typer.Option(min=1, help="Stop after N trials of this worker.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live table.")] = False,
) -> None:
    """Search model families of both schools and their settings within a time budget."""
    from .searching import search as run_search

    result = run_search(data, budget=budget, out=out, storage=storage, study=study, families=families,
                        metric=metric, trials=trials, overrides=overrides or [], progress=not quiet)
    if result.best_run is None:
        raise typer.Exit(1)


@app.command()
def datasets() -> None:
    """List the built-in datasets."""
    from rich.console import Console
    from rich.table import Table

    from .data.builtins import list_datasets

    view = Table("name", "available", "description")
    for d in list_datasets():
        view.add_row(d["name"], "yes" if d["available"] else "no (package missing)", d["description"])
    Console().print(view)


@app.command()
def models() -> None:
    """List the registered model families."""
    from rich.console import Console
    from rich.table import Table

    from .models import list_models
    from .models.deep import family_facts

    view = Table("name", "school", "parameters", "offline weights", "description")
    view.columns[0].no_wrap = True
    for family in list_models():
        facts = family_facts(family.name) if family.school == "deep" else {}
        params = f"{facts['parameters'] / 1e6:.1f} M" if facts else "-"
        offline = ("yes" if facts["offline_weights"] else "no") if facts else "-"
        view.add_row(family.name, family.school, params, offline, family.description)
    Console().print(view)


@app.command()
@_library_call
def config(
    overrides: Overrides = None,
    file: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")] = None,
) -> None:
    """Print the resolved configuration (defaults, file, overrides) as YAML."""
    from .config import config_to_yaml, resolve_config

    typer.echo(config_to_yaml(resolve_config(file, overrides or [])), nl=False)


@app.command()
@_library_call
def serve(
    runs: Annotated[list[str], typer.Argument(
        help="Run folders, model folders or .onnx files to serve, as PATH or NAME=PATH; the first is "
        "the default model.", show_default=False)],
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the server.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    backend: Annotated[str, typer.Option(help="auto, onnx or torch.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32 or int8 (an int8 ONNX export).")] = "fp32",
    export: Annotated[bool, typer.Option(
        "--export", help="Export deep-learning runs to ONNX on first use when they have no up-to-date "
        "export.")] = False,
    threads: Annotated[int | None, typer.Option(
        min=1, help="Inference threads per model (default: the cores, shared among the models).",
        show_default=False)] = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Most images per micro-batch.")] = 32,
    max_wait_ms: Annotated[float, typer.Option(
        min=0, help="Micro-batch wait after its first request; 0 turns micro-batching off.")] = 5.0,
    max_upload_bytes: Annotated[int | None, typer.Option(
        min=1, help="Largest request body in bytes (default 20 MiB).", show_default=False)] = None,
    max_pixels: Annotated[int | None, typer.Option(
        min=0, help="Largest image, width x height (default 40,000,000); 0 turns the check off.",
        show_default=False)] = None,
    max_images: Annotated[int | None, typer.Option(
        min=1, help="Most images in one request (default 64).", show_default=False)] = None,
    cors_origin: Annotated[list[str] | None, typer.Option(
        help="Origin allowed to call the API from a browser; repeat for several (default: CORS off).",
        show_default=False)] = None,
    api_key: Annotated[str | None, typer.Option(
        help="Require this key on predict and reload (default $IMGCLS_API_KEY); reload is off without "
        "a key.", show_default=False)] = None,
) -> None:
    """Serve models over HTTP: REST API, web page at /, Prometheus metrics at /metrics."""
    from .config import ServeConfig
    from .serve import run_server

    given = {"api_key": api_key, "threads": threads, "max_upload_bytes": max_upload_bytes,
             "max_images_per_request": max_images, "cors_origins": cors_origin}
    options = {key: value for key, value in given.items() if value is not None}
    if max_pixels is not None:
        options["max_pixels"] = max_pixels or None  # 0: no pixel limit
    run_server(ServeConfig.from_options(models=runs, host=host, port=port, backend=backend,
                                        precision=precision, export=export, max_batch=max_batch,
                                        max_wait_ms=max_wait_ms, **options))


# explain and audit live in cli_review.py (kept apart so each file stays readable)
app.command("explain")(_library_call(explain_command))
app.command("audit")(_library_call(audit_command))


def main() -> None:
    app(prog_name="imgcls")


if __name__ == "__main__":
    sys.exit(main())
