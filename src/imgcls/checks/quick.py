"""The cheap checks `imgcls train` runs on what it has already loaded (no extra file reads)."""

from __future__ import annotations

import hashlib
from collections import Counter

from ..config import RunConfig
from ..data import Dataset, LoadedImages
from .duplicates import exact_groups
from .findings import Finding
from .rules import class_findings, duplicate_findings, group_columns, group_findings, multilabel_findings


def training_findings(ds: Dataset, loaded: LoadedImages, cfg: RunConfig) -> list[Finding]:
    """Class balance, group representation, and identical images (at the model's size) that
    straddle splits or carry different labels."""
    rules = multilabel_findings if ds.multilabel else class_findings
    _, issues = rules(ds.table, cfg.split.test, cfg.check.imbalance_ratio)
    _, groups = group_findings(ds.table, group_columns(ds.table, ds.metadata_columns))
    table = ds.table.iloc[loaded.rows].reset_index(drop=True)
    hashes = [hashlib.sha1(img.tobytes()).hexdigest() for img in loaded.images]
    duplicates = duplicate_findings(table, exact_groups(hashes), "exact")
    return issues + groups + duplicates


def summarise(findings: list[Finding]) -> list[str]:
    counts = Counter((f.check, f.severity) for f in findings if f.severity != "info")
    return [f"data check: {n} x {check} ({severity})" for (check, severity), n in counts.items()]
