"""The prediction table: top-k labels per image, in input order, and its files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import ConfigError
from ..core.io import atomic_open, atomic_write_text
from ..models.decision import set_confidence

UNKNOWN = "unknown"  # the prediction of an image the model abstains on
UNKNOWN_COLUMNS = ("unknown_score", "unknown")


def check_abstain(abstain: bool, predictor) -> None:
    """``abstain`` needs a model with an unknown detector and no class called 'unknown'."""
    if not abstain:
        return
    if predictor.unknown is None:
        raise ConfigError(f"'{predictor.name}' has no unknown detector to abstain with: train it with a "
                          "validation split and decision.unknown=auto (or knn, msp, energy).")
    if UNKNOWN in predictor.classes:
        raise ConfigError(f"'{predictor.name}' has a class called '{UNKNOWN}', so abstaining would be "
                          "ambiguous; read the unknown column instead of --abstain.")


def top_k_rows(done: list[int], proba: np.ndarray, classes: np.ndarray, k: int,
               decided: np.ndarray | None = None, scores: np.ndarray | None = None,
               flags: np.ndarray | None = None, abstain: bool = False,
               chosen: np.ndarray | None = None) -> list[dict]:
    """One row per predicted input position: the prediction (``decided`` by the model's decision
    rule, else the most probable class; 'unknown' for a flagged image when ``abstain``), the
    probability of the class chosen, top1/p1 ... topk/pk, and with ``scores`` the unknown score
    and whether it is above the model's threshold. A multi-label model passes ``chosen`` (its
    labels per row, booleans): the prediction is its labels joined by '|' and the confidence
    the probability that exactly that set is right."""
    order = np.argsort(-proba, axis=1)[:, :k]
    names = list(classes)
    exact = set_confidence(proba, chosen) if chosen is not None else None
    rows = []
    for j, i in enumerate(done):
        label = classes[order[j, 0]] if decided is None else decided[j]
        confidence = exact[j] if exact is not None else proba[j, names.index(label)]
        row = {"index": i, "prediction": label, "confidence": round(float(confidence), 6), "error": ""}
        for rank, c in enumerate(order[j], start=1):
            row[f"top{rank}"] = classes[c]
            row[f"p{rank}"] = round(float(proba[j, c]), 6)
        if scores is not None:
            flagged = bool(flags[j]) if flags is not None else False
            row.update(unknown_score=round(float(scores[j]), 6), unknown=flagged)
            if abstain and flagged:
                row["prediction"] = UNKNOWN
        rows.append(row)
    return rows


def build_table(rows: list[dict], paths: Sequence[str], k: int) -> pd.DataFrame:
    """Rows keyed by input position -> the table, in input order: path, prediction, ..., error."""
    rows = sorted(rows, key=lambda r: r["index"])
    columns = ["path", "prediction", "confidence"] + [
        f"{n}{r}" for r in range(1, k + 1) for n in ("top", "p")] + ["error"]
    if any("unknown_score" in r for r in rows):
        columns[-1:-1] = UNKNOWN_COLUMNS
    table = pd.DataFrame(rows, columns=["index", *columns[1:]])
    table.insert(0, "path", np.asarray(paths, dtype=object)[table.pop("index").to_numpy(dtype=int)])
    return table.reindex(columns=columns).fillna({"error": ""})


def write_table(table: pd.DataFrame, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        atomic_write_text(path, table.to_csv(index=False))
    elif suffix in (".jsonl", ".json"):
        atomic_write_text(path, table.to_json(orient="records", lines=True))
    elif suffix in (".parquet", ".pq"):
        with atomic_open(path, "wb") as fh:
            table.to_parquet(fh, index=False)
    else:
        raise ConfigError(f"Output '{path}': use a .csv, .jsonl or .parquet file name.")
