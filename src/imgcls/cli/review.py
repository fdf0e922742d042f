"""The review commands: `imgcls explain` (why a prediction) and `imgcls audit` (whom it fails).

Each is one library call, like every command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..core.errors import ConfigError
from .common import print_rows


def explain(
    run: Annotated[Path | None, typer.Argument(help="Run folder.", show_default=False)] = None,
    images: Annotated[list[str] | None, typer.Argument(
        help="Images, folders, globs or a manifest (default: the run's worst test errors).",
        show_default=False)] = None,
    method: Annotated[str | None, typer.Option(
        "--method", "-m", help="auto, or names joined by '+', e.g. gradcam+lime (see --list).")] = None,
    target: Annotated[str | None, typer.Option(help="Class to explain (default: the predicted one).")
                      ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder; default RUN/explain.")] = None,
    errors: Annotated[int | None, typer.Option(
        min=1, help="Without IMAGES: how many of the most confident test errors (default 8).")] = None,
    sanity: Annotated[bool, typer.Option(
        help="Deep runs: also check the maps change when the weights are randomised.")] = False,
    lime_samples: Annotated[int | None, typer.Option(min=10, help="Perturbed images per LIME map.")] = None,
    shap_evals: Annotated[int | None, typer.Option(min=10, help="Model calls per SHAP map.")] = None,
    backend: Annotated[str, typer.Option(
        help="How LIME, SHAP, occlusion and the curves score images: auto, onnx or torch.")] = "auto",
    list_methods: Annotated[bool, typer.Option("--list", help="List the methods.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Explain predictions (Grad-CAM, Integrated Gradients, occlusion, LIME, SHAP) and score
    each map's faithfulness (deletion / insertion) against a random map."""
    from rich.console import Console

    from ..review.explaining import explain as run_explain
    from ..review.explaining import list_methods as methods

    if list_methods:
        print_rows(["method", "needs", "description"],
                   [[m.name, ", ".join(sorted(m.needs)) or "any model", m.description] for m in methods()])
        return
    if run is None:
        raise ConfigError("Give the RUN folder to explain (or --list).")
    settings = {k: v for k, v in (("lime_samples", lime_samples), ("shap_evals", shap_evals))
                if v is not None}
    result = run_explain(run, images, methods=method, target=target, out=out, errors=errors, sanity=sanity,
                     backend=backend, settings=settings, progress=not quiet)
    rows = [[name, f"{s['seconds']:.2f}", f"{s['deletion_auc']:.3f}", f"{s['insertion_auc']:.3f}",
             "-" if s["beats_random"] is None else f"{100 * s['beats_random']:.0f} %"]
            for name, s in result.summary.items()]
    print_rows(["method", "s / map", "deletion area (lower: faithful)", "insertion area", "beats random"],
               rows)
    failed = [s["method"] for s in result.sanity if not s["passed"]]
    if failed:
        Console(stderr=True).print(f"[red]sanity check failed:[/red] {', '.join(failed)} barely change "
                                   "when the weights are randomised; do not trust them on this model.")
        raise typer.Exit(1)


def audit(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    data: Annotated[str | None, typer.Argument(
        help="Other data to audit (folder, manifest, built-in); default the run's test split.",
        show_default=False)] = None,
    group_by: Annotated[str, typer.Option("--group-by", "-g", help="Metadata column of the groups.")] = ...,
    metric: Annotated[str, typer.Option(
        help="Gate metric: accuracy, balanced_accuracy, precision, recall, f1, or recall:LABEL, "
        "fpr:LABEL, fnr:LABEL, selection_rate:LABEL.")] = "accuracy",
    max_gap: Annotated[float, typer.Option(min=0, max=1, help="Largest allowed gap; exit 1 above it.")
                       ] = 0.05,
    split: Annotated[str | None, typer.Option(help="test (default for the run's data), val, train, all.")
                     ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder; default RUN/audit-COLUMN.")
                   ] = None,
    min_group_size: Annotated[int, typer.Option(min=1, help="Smaller groups are flagged.")] = 30,
    n_boot: Annotated[int, typer.Option(min=0, help="Bootstrap resamples for 95 % intervals.")] = 1000,
    label: Annotated[str | None, typer.Option(
        help="Multi-label runs: the label to audit (against its absence).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Compare metrics across groups of a metadata column, with intervals; exit 1 when the
    gate metric's gap between groups exceeds --max-gap (a CI gate)."""
    from rich.console import Console

    from ..review.auditing import audit as run_audit

    result = run_audit(run, data, group_by=group_by, metric=metric, max_gap=max_gap, split=split, out=out,
                   min_group_size=min_group_size, n_boot=n_boot, progress=not quiet, label=label)
    for finding in result.report.get("findings", []):
        Console().print(f"- {finding}", markup=False)
    if not result.passed:
        raise typer.Exit(1)
