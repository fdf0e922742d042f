"""Plain-language findings of an audit: the gate, the class whose recall differs most,
groups too small to trust, and how each group is represented in training and evaluation.

Example:
    >>> metric_title("recall:defect"), percent(0.384)
    ("Recall of 'defect'", '38 %')
"""

from __future__ import annotations

AVERAGE_TITLES = {"accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy",
                  "precision": "Macro precision", "recall": "Macro recall", "f1": "Macro F1"}
CLASS_TITLES = {"recall": "Recall of '{}'", "fpr": "False positive rate of '{}'",
                "fnr": "False negative rate of '{}'", "selection_rate": "Share predicted '{}'"}
MAX_REPRESENTATION_SENTENCES = 10


def metric_title(name: str) -> str:
    """A metric's name for people: ``fpr:cat`` -> ``False positive rate of 'cat'``."""
    kind, sep, label = name.partition(":")
    return CLASS_TITLES[kind].format(label) if sep else AVERAGE_TITLES[name]


def value(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def points(x: float) -> str:
    """A difference of rates in percentage points, one decimal."""
    return f"{x * 100:.1f}"


def percent(x: float | None) -> str:
    if x is None:
        return "unknown"
    return "<1 %" if 0 < x < 0.005 else f"{x * 100:.0f} %"


def interval(ci: list | None) -> str:
    if not ci or None in ci:
        return ""
    chance = "; it includes 0, so the gap may be chance" if ci[0] <= 0 else ""
    return f" (95 % interval {points(ci[0])} to {points(ci[1])}{chance})"


def support(name: str, record: dict) -> int:
    """The images behind a group's value of ``name``: a class's images for its recall and
    false negative rate, the other images for its false positive rate, else the group."""
    kind, sep, label = name.partition(":")
    if sep and kind in ("recall", "fnr"):
        return record["classes"][label]["eval_n"]
    if sep and kind == "fpr":
        return record["eval_n"] - record["classes"][label]["eval_n"]
    return record["eval_n"]


def _extremes(name: str, summary: dict, records: dict[str, dict]) -> tuple[str, str]:
    lo, hi = summary["min_group"], summary["max_group"]
    lo_value, hi_value = summary["by_group"][lo]["value"], summary["by_group"][hi]["value"]
    return (f"{value(lo_value)} for {lo} (n={support(name, records[lo])})",
            f"{value(hi_value)} for {hi} (n={support(name, records[hi])})")


def gate_sentence(name: str, summary: dict, records: dict[str, dict], max_gap: float) -> str:
    """The gate in one sentence, e.g. ``Accuracy is 0.843 for mono (n=246) and 0.894 for
    poly (n=410): a gap of 5.1 points (95 % interval 0.2 to 10.0), above the allowed 5.0.``"""
    title = metric_title(name)
    if summary["difference"] is None:
        defined = [g for g, v in summary["by_group"].items() if v["value"] is not None]
        return (f"{title} is defined for {len(defined)} group(s) only ({', '.join(defined) or 'none'}): "
                "the gate cannot compare groups and fails.")
    low, high = _extremes(name, summary, records)
    spread = f"is {low} and {high}" if len(summary["by_group"]) == 2 else f"ranges from {low} to {high}"
    verdict = "above" if summary["difference"] > max_gap else "within"
    return (f"{title} {spread}: a gap of {points(summary['difference'])} points"
            f"{interval(summary['difference_ci'])}, {verdict} the allowed {points(max_gap)}.")


def recall_sentence(metrics: dict[str, dict], classes: list[str], records: dict[str, dict],
                    skip: str) -> str | None:
    """The class whose recall differs most between groups (other than the gate's metric)."""
    gaps = [(metrics[f"recall:{c}"]["difference"], c) for c in classes
            if f"recall:{c}" != skip and metrics[f"recall:{c}"]["difference"] is not None]
    if not gaps:
        return None
    _, label = max(gaps)
    name = f"recall:{label}"
    summary = metrics[name]
    low, high = _extremes(name, summary, records)
    return (f"Recall of '{label}' differs most between groups: {points(summary['difference'])} points "
            f"between {low} and {high}{interval(summary['difference_ci'])}.")


def small_sentences(representation: dict) -> list[str]:
    out = []
    min_cell = representation["min_cell_size"]
    for record in representation["groups"]:
        if record["eval_n"] == 0:
            continue
        if record["small"]:
            out.append(f"Group {record['group']} has only {record['eval_n']} evaluation images: its "
                       "figures are unreliable.")
            continue
        cells = [f"'{c}' ({cell['eval_n']})" for c, cell in record["classes"].items() if cell["small"]]
        if cells:
            out.append(f"Group {record['group']} has fewer than {min_cell} evaluation images of "
                       f"{', '.join(cells)}: its figures for those classes are unreliable.")
    return out


def representation_sentences(representation: dict) -> list[str]:
    training = representation["training"]
    if not training["known"]:
        return [f"Training shares are unknown: {training['note']}."]
    records = sorted(representation["groups"],
                     key=lambda r: -abs((r["train_share"] or 0) - (r["eval_share"] or 0)))
    out = []
    for r in records[:MAX_REPRESENTATION_SENTENCES]:
        if r["eval_n"] == 0:
            out.append(f"Group {r['group']} ({r['train_n']} training images) is not in the evaluated data.")
        else:
            out.append(f"{r['group']} is {percent(r['train_share'])} of training data and "
                       f"{percent(r['eval_share'])} of evaluated data.")
    return out


def findings(metrics: dict[str, dict], gate: str, max_gap: float, classes: list[str],
             representation: dict) -> list[str]:
    """Every finding, most important first.

    Example:
        >>> findings(metrics, "accuracy", 0.05, ["ok", "defect"], representation)  # doctest: +SKIP
        ['Accuracy is 0.843 for mono (n=246) and 0.894 for poly (n=410): ...', ...]
    """
    records = {r["group"]: r for r in representation["groups"]}
    out = [gate_sentence(gate, metrics[gate], records, max_gap)]
    recall = recall_sentence(metrics, classes, records, skip=gate)
    if recall:
        out.append(recall)
    return out + small_sentences(representation) + representation_sentences(representation)
