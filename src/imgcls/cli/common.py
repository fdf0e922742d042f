"""What every command shares: the error wrapper, the overrides argument and table printing."""

from __future__ import annotations

import functools
from typing import Annotated

import typer

from ..core.errors import ImgclsError

Overrides = Annotated[list[str] | None, typer.Argument(
    help="Config overrides key=value, e.g. split.test=0.2 model.params.C=10", show_default=False)]


def library_call(func):
    """Turn imgcls errors into one red line and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ImgclsError as exc:
            from rich.console import Console
            from rich.markup import escape

            Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(1) from None

    return wrapper


def print_rows(columns: list[str], rows: list[list[str]], stderr: bool = False,
               wrap: tuple[str, ...] | None = None) -> None:
    """A rich table on stdout (or stderr) that reads at 80 columns: light borders, every column
    on one line except those in ``wrap`` (default: the last), which share the width left."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    wrap = wrap or (columns[-1],)
    view = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in columns:
        view.add_column(name, no_wrap=name not in wrap, overflow="fold", ratio=1 if name in wrap else None)
    for row in rows:
        view.add_row(*row)
    Console(stderr=stderr).print(view)
