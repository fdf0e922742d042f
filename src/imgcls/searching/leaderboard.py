"""The leaderboard of a study: one row per trial, as CSV, a console table and HTML."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from ..core.io import atomic_write_text
from ..report.plots import new_figure, to_data_uri

COLUMNS = ["rank", "trial", "family", "model", "val_score", "state", "stopped", "seconds", "finished_s",
           "worker", "params", "error"]


def leaderboard(study) -> pd.DataFrame:
    """Every trial of ``study`` (all workers), best validation score first."""
    import optuna

    rows = []
    start = min((t.datetime_start for t in study.trials if t.datetime_start), default=None)
    for t in study.trials:
        if t.state == optuna.trial.TrialState.WAITING:
            continue
        overrides = t.user_attrs.get("overrides", {})
        finished = (t.datetime_complete - start).total_seconds() if t.datetime_complete and start else None
        rows.append({"trial": t.number, "family": t.params.get("family", ""),
                     "model": _model_label(overrides), "val_score": t.value,
                     "state": t.state.name.lower(), "stopped": t.user_attrs.get("stopped", ""),
                     "seconds": t.user_attrs.get("seconds"), "finished_s": finished,
                     "worker": t.user_attrs.get("worker", ""),
                     "params": " ".join(f"{k}={v}" for k, v in overrides.items()),
                     "error": t.user_attrs.get("error", "")})
    table = pd.DataFrame(rows, columns=COLUMNS[1:])
    table = table.sort_values(["val_score", "trial"], ascending=[False, True], na_position="last")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def _model_label(overrides: dict) -> str:
    name = overrides.get("model.name", "?")
    if "model.params.temporal" in overrides:  # a sequence model on clips: its temporal head
        tuned = ", fine-tuned" if overrides.get("model.params.finetune_epochs") else ""
        return f"{name} ({overrides['model.params.temporal']}{tuned})"
    if overrides.get("model.mode") == "linear-probe":
        return f"{name} (probe)"
    if "model.features" in overrides:
        return f"{name} on {overrides['model.features']}"
    if "model.image_size" in overrides:
        return f"{name} @{overrides['model.image_size']}px"
    return name


def budget_spent(table: pd.DataFrame) -> dict:
    """Seconds and trials per family and per state: how the budget was used."""
    done = table.dropna(subset=["seconds"])
    return {"by_family": {f: {"trials": int(len(g)), "seconds": round(float(g["seconds"].sum()), 1)}
                          for f, g in done.groupby("family")},
            "by_state": {s: int(n) for s, n in table["state"].value_counts().items()}}


def rich_table(table: pd.DataFrame, metric: str, title: str, top: int = 10, params: bool = True):
    """The top rows of a leaderboard as a rich Table (the live view leaves out the settings)."""
    from rich.table import Table

    view = Table("rank", "trial", "family", "model", f"val {metric}", "state", "seconds",
                 *(["params"] if params else []), title=title)
    for row in table.head(top).itertuples(index=False):
        score = "-" if pd.isna(row.val_score) else f"{row.val_score:.4f}"
        state = row.state + (f" ({row.stopped})" if row.stopped else "")
        seconds = "-" if pd.isna(row.seconds) else f"{row.seconds:.1f}"
        view.add_row(str(row.rank), str(row.trial), row.family, row.model, score, state, seconds,
                     *([row.params] if params else []))
    return view


def print_leaderboard(table: pd.DataFrame, metric: str, top: int = 10) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    wide = console.width >= 140  # the settings column only where it does not wrap every row
    console.print(rich_table(table, metric, f"Leaderboard ({len(table)} trials)", top, params=wide))


def write_leaderboard(out: Path, table: pd.DataFrame, summary: dict) -> None:
    atomic_write_text(out / "leaderboard.csv", table.to_csv(index=False))
    atomic_write_text(out / "leaderboard.html", _html(table, summary))


def _html(table: pd.DataFrame, summary: dict) -> str:
    picture = to_data_uri(score_vs_time(table, summary["metric"], summary))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in table.itertuples(index=False))
    facts = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in summary.items()
                    if k not in ("leaderboard",))
    return f"""<!doctype html><html lang="en"><meta charset="utf-8"><title>imgcls search</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}}th{{background:#f4f4f4}}</style>
<h1>Search leaderboard</h1><ul>{facts}</ul>
<img alt="validation score of each trial against the time it finished" src="{picture}">
<table><tr>{head}</tr>{body}</table></html>"""


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.4f}"
    return str(value)


def score_vs_time(table: pd.DataFrame, metric: str, summary: dict | None = None):
    """Each finished trial's validation score at the time it finished, the best so far, and the
    winner the search ended with (an ensemble can beat every trial): whether a longer budget
    would pay shows as a curve still rising at its end."""
    fig, ax = new_figure(7, 3.6)
    done = table.dropna(subset=["val_score", "finished_s"]).sort_values("finished_s")
    for family, group in done.groupby("family"):
        ax.scatter(group["finished_s"] / 60, group["val_score"], label=family, s=24)
    if len(done):
        ax.step(done["finished_s"] / 60, done["val_score"].cummax(), where="post", color="#444",
                linewidth=1, label="best so far")
    summary = summary or {}
    if len(done) and summary.get("best_val_score") is not None and summary.get("search", {}).get("winner"):
        kind = summary["search"]["winner"]
        ax.scatter([done["finished_s"].max() / 60], [summary["best_val_score"]], marker="*", s=160,
                   color="#d62728", zorder=3, label=f"winner ({kind})")
    ax.set_xlabel("minutes since the search started")
    ax.set_ylabel(f"validation {metric}")
    if len(done):
        ax.legend(loc="lower right", fontsize=8)
    return fig
