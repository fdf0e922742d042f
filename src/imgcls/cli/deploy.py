"""Commands that put a model to work: `imgcls predict`, `imgcls export`, `imgcls serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..core.errors import ConfigError
from .common import print_rows


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
    abstain: Annotated[bool, typer.Option(
        "--abstain", help="Answer 'unknown' for images unlike the training data (the model's unknown "
                          "threshold).")] = False,
    heatmaps: Annotated[Path | None, typer.Option(
        help="Folder for each image's tile heat map (models trained with data.tiles).")] = None,
    window: Annotated[float | None, typer.Option(
        min=0, help="Sequence models: label each window of this many seconds of each video.",
        show_default=False)] = None,
    stride: Annotated[float | None, typer.Option(
        min=0, help="With --window: seconds between window starts (default half the window).",
        show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Predict the top-k labels of images (or video clips) with a saved model."""
    from ..deploy.prediction import predict as run_predict

    if window is not None:
        return _predict_windows(run, paths, window, stride, top_k, output)

    table = run_predict(run, paths, top_k=top_k, output=output, limit=limit, progress=not quiet,
                        backend=backend, precision=precision, export=export, batch_size=batch_size,
                        n_jobs=threads, engine=engine, address=address, abstain=abstain, heatmaps=heatmaps)
    if output is None:
        _print_table(table)
    failed = int((table["error"] != "").sum())
    if failed == len(table):
        raise typer.Exit(1)


def _predict_windows(run: Path, paths: list[str], window: float, stride: float | None, top_k: int,
                     output: Path | None) -> None:
    import pandas as pd

    from ..deploy.inputs import expand_inputs
    from ..deploy.tables import write_table
    from ..deploy.windows import predict_windows
    from ..runs import Run

    model = Run.open(run).model
    table = pd.concat([predict_windows(model, p, window=window, stride=stride, top_k=top_k)
                       for p in expand_inputs(paths)], ignore_index=True)
    if output is not None:
        write_table(table, output)
    else:
        print_rows(list(table.columns), [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
                                         for row in table.itertuples(index=False)])


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
    from ..deploy.exporting import export
    from ..deploy.exporting import list_formats as formats

    if list_formats:
        print_rows(["format", "suffix", "quantize", "description"],
                   [[f.name, f.suffix, ", ".join(f.quantize) or "-", f.description] for f in formats()])
        return
    if run is None:
        raise ConfigError("Give the RUN folder to export (or --list).")
    report = export(run, format, quantize=quantize, out=out, data=data, calibration=calibration,
                    tta=tta, progress=not quiet).report
    rows, p = [], report["parity"]
    for name, facts in report["files"].items():
        runtime = facts.get("runtime")
        if runtime is None:  # the ONNX files
            section = report["int8"] if facts["precision"] == "int8" else {
                "accuracy": p["accuracy_onnx"], "images_per_s": p["onnx_images_per_s"]}
        else:
            section = report.get(runtime) or {}
            if facts["precision"] == "int8":
                section = section.get("int8", {})
        acc = section.get("accuracy", section.get("accuracy_int8"))
        speed = section.get("images_per_s", section.get("images_per_s_int8"))
        if name.endswith(".json"):
            acc = speed = None
        rows.append([name, facts["precision"], f"{facts['bytes'] / 1e6:.1f}",
                     "-" if acc is None else f"{acc:.4f}",
                     "in the browser" if runtime == "browser" else "-" if speed is None else f"{speed:.0f}"])
    print_rows(["file", "precision", "MB", "test accuracy", "images/s (batch 32)"], rows)


def monitor(
    run: Annotated[Path, typer.Argument(help="Run folder: its test split is the reference.")],
    paths: Annotated[list[str], typer.Argument(
        help="New images in the order they arrived: files, folders, globs or a manifest.")],
    window: Annotated[int, typer.Option(min=20, help="Images per window of the drift score over time.")
                      ] = 100,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder; default RUN/monitor.")] = None,
    auc_threshold: Annotated[float, typer.Option(
        min=0.5, max=1.0, help="Domain-classifier AUC from which a window drifts.")] = 0.75,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="False-alarm rate of the tests together.")
                     ] = 0.01,
    fail_on_drift: Annotated[bool, typer.Option("--fail-on-drift", help="Exit 1 when the data drifted.")
                             ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Compare new images with a run's test split: drift over time, what moved, drift.html."""
    from ..deploy.monitoring import monitor as run_monitor

    result = run_monitor(run, paths, window=window, out=out, auc_threshold=auc_threshold, alpha=alpha,
                         progress=not quiet)
    rows = [[f"{w['start']}-{w['end']}", f"{w['score']:.3f}" if w["score"] is not None else "-",
             "DRIFT" if w["drift"] else "", ", ".join(w["moved"])] for w in result.report["windows"]]
    print_rows(["images", "score", "", "moved"], rows)
    print(f"report: {result.html}")
    if fail_on_drift and result.drift:
        raise typer.Exit(1)


def _print_table(table) -> None:
    if (table["error"] == "").all():
        table = table.drop(columns="error")
    print_rows(list(table.columns), [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
                                     for row in table.itertuples(index=False)])


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
    keep_requests: Annotated[int, typer.Option(
        min=0, help="Keep the last N uploaded images per model with their answers (default 0: none).")] = 0,
    keep_dir: Annotated[str, typer.Option(help="Folder of the kept images.")] = "served-images",
) -> None:
    """Serve models over HTTP: REST API, web page at /, Prometheus metrics at /metrics."""
    from ..config import ServeConfig
    from ..serve import run_server

    given = {"api_key": api_key, "threads": threads, "max_upload_bytes": max_upload_bytes,
             "max_images_per_request": max_images, "cors_origins": cors_origin}
    options = {key: value for key, value in given.items() if value is not None}
    if max_pixels is not None:
        options["max_pixels"] = max_pixels or None  # 0: no pixel limit
    run_server(ServeConfig.from_options(models=runs, host=host, port=port, backend=backend,
                                        precision=precision, export=export, max_batch=max_batch,
                                        max_wait_ms=max_wait_ms, keep_requests=keep_requests,
                                        keep_dir=keep_dir, **options))
