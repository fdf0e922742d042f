"""Self-contained HTML reports (plots and thumbnails embedded, no external assets)."""

from .html import write_report

__all__ = ["write_report"]
