"""Outputs of a check: check.json, check.html (thumbnails by check), console table, clean manifest."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from ..core.io import atomic_write_text
from ..data.dataset import Dataset
from ..report.plots import thumbnail_uri
from ..report.render import render
from .findings import SEVERITIES, Finding

MAX_THUMBS_PER_CHECK = 48


def write_json(path: Path, summary: dict, issues: list[Finding]) -> None:
    if "roi" in summary:  # the preview figure belongs to the page, not the JSON
        summary = {**summary, "roi": {k: v for k, v in summary["roi"].items() if k != "preview"}}
    payload = {"summary": summary, "issues": [f.to_dict() for f in issues]}
    atomic_write_text(path, json.dumps(payload, indent=2, default=str))


def write_html(path: Path, summary: dict, issues: list[Finding], ds: Dataset, thumbs: np.ndarray) -> None:
    row_of = {p: i for i, p in enumerate(ds.paths)}
    sections = []
    by_check: dict[str, list[Finding]] = {}
    for f in issues:
        by_check.setdefault(f.check, []).append(f)
    for check, items in sorted(by_check.items(), key=lambda kv: (SEVERITIES.index(kv[1][0].severity), kv[0])):
        shown = []
        for f in items[:MAX_THUMBS_PER_CHECK]:
            i = row_of.get(f.path)
            has_thumb = i is not None and thumbs[i].any()
            shown.append({**f.to_dict(), "thumb": thumbnail_uri(thumbs[i], 96) if has_thumb else None})
        sections.append({"check": check, "severity": items[0].severity, "count": len(items),
                         "items": shown, "hint": items[0].hint})
    html = render("check.html.j2", summary=summary, sections=sections)
    atomic_write_text(path, html)


def print_summary(summary: dict, issues: list[Finding]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("check", "severity", "findings", title=f"imgcls check: {summary['dataset']}")
    counts = Counter((f.check, f.severity) for f in issues)
    for (check, severity), n in sorted(counts.items(), key=lambda kv: (SEVERITIES.index(kv[0][1]), kv[0][0])):
        colour = {"error": "red", "warning": "yellow", "info": "dim"}[severity]
        table.add_row(check, f"[{colour}]{severity}[/{colour}]", str(n))
    console = Console(stderr=True)
    console.print(table)
    sev = summary["severity_counts"]
    console.print(f"{summary['images']} images: {sev['error']} errors, {sev['warning']} warnings, "
                  f"{sev['info']} notes")


def clean_rows(ds: Dataset, issues: list[Finding], groups: list[list[int]], records: list[dict],
               keep: str) -> np.ndarray:
    """Rows without error-level findings, one per duplicate group, no label-conflicting group."""
    errors = {f.path for f in issues if f.severity == "error" and f.path}
    drop = {i for i, p in enumerate(ds.paths) if p in errors}
    labels = ds.labels
    for group in groups:
        members = [i for i in group if i not in drop]
        if len({labels[i] for i in members}) > 1:
            drop.update(members)
            continue
        if keep == "largest":
            members.sort(key=lambda i: -(records[i].get("width", 0) * records[i].get("height", 0)))
        drop.update(members[1:])
    return np.array([i for i in range(len(ds)) if i not in drop], dtype=int)


def write_manifest(path: Path, ds: Dataset, rows: np.ndarray) -> None:
    """Write rows as a CSV manifest with paths relative to the manifest's folder."""
    path = Path(path)
    base = path.parent.resolve()
    table = ds.table.iloc[rows].copy()
    absolute = [ds.file_path(i).resolve() for i in rows]
    table["path"] = [os.path.relpath(p, base) for p in absolute]
    atomic_write_text(path, table.to_csv(index=False))


def summary_facts(ds: Dataset, records: list[dict]) -> dict:
    ok = [r for r in records if "error" not in r]
    sizes = Counter(f"{r['width']}x{r['height']}" for r in ok)
    widths = np.array([r["width"] for r in ok]) if ok else np.zeros(1)
    heights = np.array([r["height"] for r in ok]) if ok else np.zeros(1)
    return {
        "dataset": ds.name, "images": len(ds), "decodable": len(ok),
        "formats": dict(Counter(r.get("format", "?") for r in ok)),
        "modes": dict(Counter(r.get("mode", "?") for r in ok)),
        "sizes": {"most_common": dict(sizes.most_common(5)),
                  "width": [int(widths.min()), int(np.median(widths)), int(widths.max())],
                  "height": [int(heights.min()), int(np.median(heights)), int(heights.max())]},
        "grey_images": int(sum(r["grey"] for r in ok)),
        "ignored_while_listing": dict(ds.ignored),
    }
