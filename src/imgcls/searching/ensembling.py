"""The search's last choice: the best single trial, or an ensemble of the kept trials.

The ensemble is chosen as AutoGluon chooses its weighted ensemble: greedy forward selection
with replacement (:func:`imgcls.models.ensemble.greedy_selection`) over the kept trials'
validation probabilities, on the validation images every one of them scored. It wins only
when its validation score beats the best single trial's; the weights were fitted on those
same images, so a tie goes to the single model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.log import info
from ..data.tasks import indicator
from ..models.ensemble import greedy_selection
from .kept import KeptTrial


@dataclass
class Plan:
    """What the search hands on: members (one, or an ensemble's), their weights, the
    validation rows and labels they were chosen on, and the (weighted) probabilities there."""

    members: list[KeptTrial]
    weights: np.ndarray
    val_score: float
    rows: np.ndarray
    labels: np.ndarray
    proba: np.ndarray  # columns in ``classes`` order
    classes: list[str]
    single_best: float  # the best single trial's score on the same rows

    @property
    def is_ensemble(self) -> bool:
        return len(self.members) > 1

    def describe(self) -> str:
        if not self.is_ensemble:
            return f"trial {self.members[0].number} ({self.members[0].family})"
        return "ensemble of " + ", ".join(f"trial {m.number} ({m.family}) x{w:.2f}"
                                          for m, w in zip(self.members, self.weights, strict=True))


def plan_winner(kept: list[KeptTrial], labels_of, score, ensemble: bool = True,
                multilabel: bool = False) -> Plan | None:
    """The winner among ``kept`` trials. ``labels_of(rows)`` gives the labels of dataset rows
    (label sets 'a|b' when ``multilabel``); ``score(labels, proba)`` rates probabilities
    (higher is better)."""
    if not kept:
        return None
    classes = list(kept[0].classes)
    kept = [k for k in kept if sorted(k.classes) == sorted(classes)]
    loaded = [(k, *k.val()) for k in kept]
    common = loaded[0][1]
    for _, rows, _ in loaded[1:]:
        common = np.intersect1d(common, rows)
    if len(common) == 0:
        return None
    probas = [_on_rows(rows, proba, common, k.classes, classes) for k, rows, proba in loaded]
    labels = np.asarray(labels_of(common))
    singles = [score(labels, p) for p in probas]
    best = int(np.argmax(singles))
    single = Plan([kept[best]], np.ones(1), singles[best], common, labels, probas[best], classes,
                  singles[best])
    if not ensemble or len(kept) < 2:
        return single
    y = (indicator(labels, classes, strict=False) if multilabel
         else np.array([classes.index(str(v)) for v in labels]))
    weights = greedy_selection(probas, y, lambda p: score(labels, p))
    chosen = np.flatnonzero(weights > 0)
    proba = sum(weights[k] * probas[k] for k in chosen)
    value = score(labels, proba)
    if len(chosen) < 2 or value <= singles[best]:
        return single
    plan = Plan([kept[k] for k in chosen], weights[chosen], value, common, labels, proba, classes,
                singles[best])
    info(f"search: {plan.describe()}: validation {value:.4f} against {singles[best]:.4f} for the best "
         "single trial")
    return plan


def _on_rows(rows: np.ndarray, proba: np.ndarray, common: np.ndarray, theirs: list[str],
             classes: list[str]) -> np.ndarray:
    where = {int(r): i for i, r in enumerate(rows)}
    picked = proba[[where[int(r)] for r in common]]
    return picked[:, [list(theirs).index(c) for c in classes]].astype(np.float64)
