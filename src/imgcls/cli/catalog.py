"""Commands that describe what imgcls offers: `imgcls models` and `imgcls config`."""

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
    print_rows(["name", "school", "parameters", "offline weights", "description"], rows)


def config(
    overrides: Overrides = None,
    file: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")] = None,
) -> None:
    """Print the resolved configuration (defaults, file, overrides) as YAML."""
    from ..config import config_to_yaml, resolve_config

    typer.echo(config_to_yaml(resolve_config(file, overrides or [])), nl=False)
