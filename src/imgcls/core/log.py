"""Console messages on stderr, so stdout stays clean for piped predictions."""

from __future__ import annotations

import functools
import re


@functools.cache
def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def info(message: str) -> None:
    from rich.markup import escape

    _console().print(f"[dim]imgcls[/dim] {escape(message)}", soft_wrap=True)


def warn(message: str) -> None:
    from rich.markup import escape

    _console().print(f"[yellow]warning[/yellow] {escape(message)}", soft_wrap=True)


def safe_url(url: str) -> str:
    """A database URL fit to print: its password, if any, masked."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
