"""Commands about data: `imgcls check` (every problem before training), `imgcls label`
(collecting labels) and `imgcls datasets`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import Overrides, print_rows


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
    from ..checks import check as run_check
    from ..checks.report import print_summary

    items = list(overrides or []) + [f"check.labels={str(labels).lower()}"]
    if keep:
        items.append(f"check.keep={keep}")
    if fail_on not in (None, "error", "warning"):
        raise typer.BadParameter("use error or warning", param_hint="--fail-on")
    report = run_check(data, out=out, overrides=items, write_manifest=write_manifest, run=run,
                       progress=not quiet)
    print_summary(report.summary, report.issues)
    typer.echo(f"Report: {report.out / 'check.html'}", err=True)
    raise typer.Exit(report.exit_code(fail_on))


def label(
    data: Annotated[str, typer.Argument(help="Folder, globs or CSV/Parquet manifest of the images.")],
    classes: Annotated[str, typer.Option(help="The classes, comma-separated: cat,dog,bird.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Manifest written after every vote.")
                   ] = Path("labels.csv"),
    store: Annotated[str | None, typer.Option(
        help="Votes: a SQLite file (default OUT.votes.db) or a SQLAlchemy URL, e.g. PostgreSQL for a team.",
        show_default=False)] = None,
    project: Annotated[str | None, typer.Option(help="The votes' name in the store (default: DATA's "
                                                "folder name).", show_default=False)] = None,
    strategy: Annotated[str, typer.Option(help="random, margin, entropy, diversity or mix.")] = "mix",
    refit_every: Annotated[int, typer.Option(min=1, help="Labels between refits of the quick model.")] = 10,
    overlap: Annotated[int, typer.Option(min=1, help="Labellers per image (2+ measures agreement).")] = 1,
    task: Annotated[str, typer.Option(help="single (one class per image) or multilabel (any set of "
                                      "the classes).")] = "single",
    rule: Annotated[str, typer.Option(help="Votes -> label: majority, reviewer:NAME or drop.")] = "majority",
    host: Annotated[str, typer.Option(help="Interface to bind; off loopback --api-key is required.")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8100,
    api_key: Annotated[str | None, typer.Option(help="Key the page and API require (default "
                                                "$IMGCLS_API_KEY).", show_default=False)] = None,
    export_only: Annotated[bool, typer.Option(
        "--export-only", help="Write the manifest from the votes (with --rule) and exit.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Label images on a local web page, with active learning and several labellers."""
    from ..labelling import label as run_label

    session = run_label(data, classes, out, store=store, project=project, strategy=strategy,
                        refit_every=refit_every, overlap=overlap, task=task,
                        rule=rule, host=host, port=port, api_key=api_key, serve=not export_only,
                        progress=not quiet)
    if export_only:
        table = session.export()
        typer.echo(f"{len(table)} labelled images written to {out}", err=True)


def datasets() -> None:
    """List the built-in datasets."""
    from ..data.builtins import list_datasets

    print_rows(["name", "available", "description"],
               [[d["name"], "yes" if d["available"] else "no (package missing)", d["description"]]
                for d in list_datasets()])
