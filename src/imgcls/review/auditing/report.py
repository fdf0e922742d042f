"""Write an audit's ``audit.json`` (strict JSON, null for undefined values) and ``audit.html``
(charts per group with 95 % error bars, gap and representation tables, findings, verdict).

Example:
    >>> write_audit(Path("runs/elpv-svm/audit-type"), report)   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...core.io import atomic_write_text
from ...report import plots
from ...report.render import render
from .findings import metric_title, percent, points, value

JSON_NAME, HTML_NAME = "audit.json", "audit.html"


def chart_metrics(gate: str, classes: list[str]) -> list[str]:
    """The gate's metric, accuracy and each class's recall, each once."""
    return list(dict.fromkeys([gate, "accuracy", *(f"recall:{c}" for c in classes)]))


def group_chart(name: str, summary: dict, small: set[str], group_by: str) -> str:
    """Bars per group with their 95 % intervals, the overall value dashed; small groups hatched."""
    groups = list(summary["by_group"])
    values = [summary["by_group"][g]["value"] for g in groups]
    heights = np.array([np.nan if v is None else v for v in values], dtype=float)
    errors = np.zeros((2, len(groups)))
    for k, g in enumerate(groups):
        ci = summary["by_group"][g]["ci"]
        if ci and None not in ci and not np.isnan(heights[k]):
            errors[:, k] = [max(0.0, heights[k] - ci[0]), max(0.0, ci[1] - heights[k])]
    fig, ax = plots.new_figure(min(14.0, 2.5 + 0.7 * len(groups)), 3.0)
    x = np.arange(len(groups))
    bars = ax.bar(x, np.nan_to_num(heights), yerr=errors, capsize=4, color="C0", ecolor="black")
    for k, g in enumerate(groups):
        if g in small:
            bars[k].set_hatch("//")
            bars[k].set_alpha(0.55)
        if np.isnan(heights[k]):
            ax.text(x[k], 0.03, "n/a", ha="center", fontsize=8)
    if summary["overall"] is not None:
        ax.axhline(summary["overall"], ls="--", color="grey", lw=1, label=f"overall {summary['overall']:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    labels = [g.replace("$", r"\$") for g in groups]  # no mathtext from group names
    crowded = len(groups) > 4 or max(len(g) for g in groups) * len(groups) > 32
    ax.set_xticks(x, labels, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    ax.set_ylim(0, 1.08)
    ax.set_title(f"{metric_title(name)} by {group_by} (95 % intervals; hatched: small)".replace("$", r"\$"),
                 fontsize=10)
    return plots.to_data_uri(fig)


def _bounds(ci: list | None, scale=value) -> str:
    return "" if not ci or None in ci else f"[{scale(ci[0])}, {scale(ci[1])}]"


def gap_rows(metrics: dict[str, dict]) -> list[dict]:
    rows = []
    for name, s in metrics.items():
        low, high = s["min_group"], s["max_group"]
        rows.append({
            "metric": metric_title(name), "name": name, "overall": value(s["overall"]),
            "min": f"{low}: {value(s['by_group'][low]['value'])}" if low is not None else "n/a",
            "max": f"{high}: {value(s['by_group'][high]['value'])}" if high is not None else "n/a",
            "difference": "n/a" if s["difference"] is None else points(s["difference"]),
            "difference_ci": _bounds(s["difference_ci"], points),
            "ratio": value(s["ratio"]), "ratio_ci": _bounds(s["ratio_ci"])})
    return rows


def representation_rows(representation: dict) -> list[dict]:
    rows = []
    for r in representation["groups"]:
        cells = [{"eval_n": c["eval_n"], "train_n": "?" if c["train_n"] is None else c["train_n"],
                  "small": c["small"]} for c in r["classes"].values()]
        train = "unknown" if r["train_n"] is None else f"{r['train_n']} ({percent(r['train_share'])})"
        rows.append({"group": r["group"], "small": r["small"], "cells": cells, "train": train,
                     "eval": f"{r['eval_n']} ({percent(r['eval_share'])})"})
    return rows


def render_html(report: dict) -> str:
    """audit.html for ``report`` (autoescaped: group and column names may hold markup)."""
    metrics, gate = report["metrics"], report["gate"]
    small = {r["group"] for r in report["representation"]["groups"] if r["small"]}
    group_by = report["config"]["group_by"]
    charts = [{"title": metric_title(name), "uri": group_chart(name, metrics[name], small, group_by)}
              for name in chart_metrics(gate["metric"], report["classes"])]
    gate_groups = [{"group": g, "value": value(v["value"]), "ci": _bounds(v["ci"])}
                   for g, v in metrics[gate["metric"]]["by_group"].items()]
    return render("audit.html.j2", report=report, gate=gate, charts=charts, gate_groups=gate_groups,
                  gap_rows=gap_rows(metrics), representation=report["representation"],
                  representation_rows=representation_rows(report["representation"]),
                  gate_title=metric_title(gate["metric"]), max_gap=points(gate["max_gap"]),
                  gap="n/a" if gate["gap"] is None else points(gate["gap"]),
                  gap_ci=_bounds(gate["gap_ci"], points))


def write_audit(out_dir: Path, report: dict) -> Path:
    """Write audit.json and audit.html into ``out_dir``; returns the HTML file's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / JSON_NAME, json.dumps(report, indent=2, allow_nan=False))
    atomic_write_text(out_dir / HTML_NAME, render_html(report))
    return out_dir / HTML_NAME
