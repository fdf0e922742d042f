"""Self-contained HTML pages (Jinja2 templates, matplotlib figures and thumbnails as data URIs)
for every page imgcls writes: a run's report, a check, an explanation gallery, an audit, a
search leaderboard. Pages get everything they show handed in; nothing here computes a model."""

from .render import render
from .run_report import worst_errors, write_report

__all__ = ["render", "worst_errors", "write_report"]
