"""Several labellers, one dataset: how far they agree, and one label per image for training.

- Agreement: Cohen's kappa for each pair of labellers on the images both labelled, and
  Fleiss' kappa over every image labelled by two or more (the form for a varying number
  of labellers per image), beside the raw share of images on which all agreed.
- Resolution (``rule``): ``majority`` (a tie is dropped and listed), ``reviewer:NAME`` (that
  labeller's answer wins where they gave one, the majority elsewhere), or ``drop`` (any
  disagreement drops the image). ``skip`` and ``unsure`` are not votes for a class. Label
  sets (multi-label) are resolved label by label: a label is kept when more than half of
  the sets hold it, and a label held by exactly half leaves the image unresolved; their
  kappa is that of one yes / no answer per image and label.
- The manifest keeps every vote in a ``vote_<labeller>`` column beside the resolved
  ``label``, and ``votes`` / ``agreed`` columns, so nothing a labeller said is lost.

Example:
    >>> answers = pd.DataFrame({"path": ["a", "a", "b", "b"], "labeller": ["x", "y", "x", "y"],
    ...                         "label": ["cat", "cat", "cat", "dog"], "kind": ["label"] * 4})
    >>> resolve(answers, "majority")[["path", "label", "agreed"]].values.tolist()
    [['a', 'cat', True]]
"""

from __future__ import annotations

import re
from itertools import combinations

import numpy as np
import pandas as pd

from ..core.errors import ConfigError
from ..data.dataset import VOTE_PREFIX, VOTE_SUMMARY, join_labels, split_labels

RULES = "majority, reviewer:NAME or drop"


def _class_votes(answers: pd.DataFrame) -> pd.DataFrame:
    return answers[answers["kind"] == "label"]


def cohen_pairs(answers: pd.DataFrame) -> list[dict]:
    """Cohen's kappa of each pair of labellers on the images both gave a class."""
    from sklearn.metrics import cohen_kappa_score

    votes = _class_votes(answers).pivot_table(index="path", columns="labeller", values="label",
                                              aggfunc="last")
    out = []
    for a, b in combinations(sorted(votes.columns), 2):
        both = votes[[a, b]].dropna()
        if len(both) < 2:
            continue
        same = both[a] == both[b]
        kappa = 1.0 if same.all() else float(cohen_kappa_score(both[a], both[b]))
        out.append({"labellers": [a, b], "images": int(len(both)), "agreement": float(same.mean()),
                    "kappa": kappa})
    return out


def fleiss_kappa(answers: pd.DataFrame) -> dict | None:
    """Fleiss' kappa over the images with two or more class votes (raters may vary per image)."""
    votes = _class_votes(answers)
    counts = pd.crosstab(votes["path"], votes["label"])
    counts = counts[counts.sum(axis=1) >= 2]
    if len(counts) < 2:
        return None
    n = counts.to_numpy(dtype=float)
    per_image = n.sum(axis=1)
    observed = ((n * (n - 1)).sum(axis=1) / (per_image * (per_image - 1))).mean()
    shares = n.sum(axis=0) / n.sum()
    expected = float((shares ** 2).sum())
    kappa = 1.0 if expected >= 1 else float((observed - expected) / (1 - expected))
    return {"kappa": kappa, "images": int(len(n)), "observed": float(observed),
            "unanimous": float((n.max(axis=1) == per_image).mean())}


def per_label(answers: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Label-set answers as one yes / no answer per (image, label): kappa for sets is the
    kappa of these."""
    votes = _class_votes(answers)
    rows = [(f"{path}#{name}", who, "yes" if name in split_labels(value) else "no", "label")
            for path, who, value in zip(votes["path"], votes["labeller"], votes["label"], strict=True)
            for name in classes]
    return pd.DataFrame(rows, columns=["path", "labeller", "label", "kind"])


def agreement(answers: pd.DataFrame, classes: list[str] | None = None) -> dict:
    """Cohen's kappa per pair, Fleiss' kappa; for label sets (``classes`` given), over one
    yes / no answer per image and label, with ``exact``: the share of images both gave the
    same set."""
    labellers = sorted(answers["labeller"].unique().tolist()) if len(answers) else []
    if classes is None:
        return {"pairs": cohen_pairs(answers), "fleiss": fleiss_kappa(answers), "labellers": labellers}
    pairs = cohen_pairs(per_label(answers, classes))
    exact = {tuple(p["labellers"]): p["agreement"] for p in cohen_pairs(answers)}
    for pair in pairs:
        pair["images"] //= len(classes)
        pair["exact"] = exact.get(tuple(pair["labellers"]))
    return {"pairs": pairs, "fleiss": fleiss_kappa(per_label(answers, classes)), "labellers": labellers,
            "per_label": True}


def parse_rule(rule: str) -> tuple[str, str | None]:
    match = re.fullmatch(r"(majority|drop)|reviewer:(.+)", rule.strip())
    if not match:
        raise ConfigError(f"The 'rule' parameter must be {RULES}. Got {rule!r}.")
    return ("reviewer", match.group(2).strip()) if match.group(2) else (match.group(1), None)


def _majority(classes: pd.Series, multilabel: bool) -> str | None:
    """The most frequent class (None on a tie); for label sets, each label that more than half
    of the sets hold (None when a label is held by exactly half)."""
    if not len(classes):
        return None
    if multilabel:
        held = pd.Series([n for value in classes for n in split_labels(value)], dtype=object).value_counts()
        if (2 * held == len(classes)).any():
            return None
        return join_labels(held.index[2 * held > len(classes)])
    counts = classes.value_counts()
    top = counts[counts == counts.max()]
    return str(top.index[0]) if len(top) == 1 else None


def resolve(answers: pd.DataFrame, rule: str = "majority", keep_unresolved: bool = False,
            multilabel: bool = False) -> pd.DataFrame:
    """One row per image with a resolved ``label`` (for ``multilabel``, a label set, '' for
    none); every labeller's answer in ``vote_*`` columns. ``keep_unresolved`` keeps the
    images without one (``resolved`` False) for review."""
    kind, reviewer = parse_rule(rule)
    columns = ["path", "label", *VOTE_SUMMARY]
    if answers.empty:
        return pd.DataFrame(columns=columns + (["resolved"] if keep_unresolved else []))
    wide = answers.assign(answer=np.where(answers["kind"] == "label", answers["label"], answers["kind"]))
    wide = wide.pivot_table(index="path", columns="labeller", values="answer", aggfunc="last")
    order = answers.drop_duplicates("path")["path"]
    rows = []
    for path in order:
        given = wide.loc[path].dropna()
        classes = given[~given.isin(["skip", "unsure"])]
        agreed = classes.nunique() == 1
        if kind == "reviewer" and reviewer in classes.index:
            label = str(classes[reviewer])
        elif kind == "drop" and not agreed:
            label = None
        else:
            label = _majority(classes, multilabel)
        votes, agreed_column = VOTE_SUMMARY
        rows.append({"path": path, "label": label or "", votes: int(len(classes)),
                     agreed_column: bool(agreed),
                     **{f"{VOTE_PREFIX}{name}": given.get(name, "") for name in wide.columns},
                     "resolved": label is not None})
    table = pd.DataFrame(rows)
    if keep_unresolved:
        return table
    return table[table["resolved"]].drop(columns="resolved").reset_index(drop=True)
