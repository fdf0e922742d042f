"""A finding: one problem (or note) about one file or about the whole dataset."""

from __future__ import annotations

from dataclasses import asdict, dataclass

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """``path`` is as given in the dataset ('' for dataset-level findings)."""

    path: str
    check: str
    severity: str
    detail: str
    hint: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def at_least(severity: str, threshold: str) -> bool:
    """True when ``severity`` is as bad as ``threshold`` or worse."""
    return SEVERITIES.index(severity) <= SEVERITIES.index(threshold)
