"""Commands that describe what imgcls offers and holds: `imgcls models`, `imgcls runs`, `imgcls config`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import Overrides, print_rows


def models() -> None:
    """List the registered model families."""
    from ..models import list_models

    rows = []
    for family in list_models():
        facts = family.facts()
        params = f"{facts['parameters'] / 1e6:.1f} M" if facts else "-"
        offline = ("yes" if facts["offline_weights"] else "no") if facts else "-"
        rows.append([family.name, family.school, params, offline, family.description])
    print_rows(["name", "school", "params", "offline", "description"], rows)


def config(
    overrides: Overrides = None,
    file: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")] = None,
) -> None:
    """Print the resolved configuration (defaults, file, overrides) as YAML."""
    from ..config import config_to_yaml, resolve_config

    typer.echo(config_to_yaml(resolve_config(file, overrides or [])), nl=False)


def runs(
    folder: Annotated[Path, typer.Argument(help="Folder holding run folders (searched recursively).")
                      ] = Path("runs"),
    sort: Annotated[str, typer.Option(help="accuracy, macro_f1, seconds, created or run.")] = "accuracy",
    csv: Annotated[bool, typer.Option("--csv", help="Print every column as CSV instead of a table.")] = False,
) -> None:
    """List the runs in a folder with their data, model, test metrics and wall time."""
    from ..runs import list_runs

    table = list_runs(folder, sort=sort)
    if csv:
        typer.echo(table.to_csv(index=False), nl=False)
        return
    if table.empty:
        typer.echo(f"No finished runs below {folder}.", err=True)
        return

    def known(value) -> bool:
        return value is not None and value == value  # not None, not NaN

    rows = [[r.run, r.data, r.model, r.task.split(", ")[-1],
             f"{r.accuracy:.3f}" if known(r.accuracy) else "-", r.accuracy_ci or "-",
             f"{r.macro_f1:.3f}" if known(r.macro_f1) else "-",
             str(int(r.n_test)) if known(r.n_test) else "-", f"{r.seconds:.0f}" if known(r.seconds) else "-"]
            for r in table.itertuples()]
    print_rows(["run", "data", "model", "task", "accuracy", "95% CI", "F1", "n", "s"], rows,
               wrap=("run", "data", "model", "task"))
