"""How a model's probabilities become one label: its decision rule, tuned on validation images
to the user's goal and saved with the model, so that predict, serve and export decide alike.

Rules:

- ``argmax`` (the default): the most probable class.
- ``weights``: the class of largest ``w_k * p_k``; weights tuned for balanced accuracy or
  macro-F1 (for two classes, the same as moving the threshold).
- ``threshold``: class ``positive`` when its probability reaches ``threshold``, else the most
  probable other class; tuned to reach a recall (``recall:LABEL=0.95``) or a precision
  (``precision:LABEL=0.9``) on validation.
- ``ordinal``: for ordered grades, the expected grade ``sum(k * p_k)`` cut at ``cuts``, tuned
  for quadratic-weighted kappa.
- ``multilabel``: every label whose probability reaches its own threshold (``thresholds``,
  0.5 untuned), the labels joined by '|' ('' for none); tuned per label for its F1
  (``f1``), or to a recall or precision goal for one label.

Example:
    >>> import numpy as np
    >>> rule = Decision("threshold", positive="defect", threshold=0.3)
    >>> rule.labels(np.array([[0.75, 0.25], [0.6, 0.4]]), ["defect", "ok"]).tolist()
    ['ok', 'defect']
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..core.errors import ConfigError
from ..data.tasks import from_indicator
from .label_scores import best_threshold

KINDS = ("argmax", "weights", "threshold", "ordinal", "multilabel")
TARGET_HELP = ("argmax, balanced_accuracy, macro_f1, kappa (ordered grades), recall:LABEL=0.95 or "
               "precision:LABEL=0.9")
_GOAL = re.compile(r"^(recall|precision):(.+)=(0(?:\.\d+)?|1(?:\.0+)?)$")


@dataclass(frozen=True)
class Decision:
    """A decision rule; ``target`` says what it was tuned for, ``validation`` what it reached."""

    kind: str = "argmax"
    positive: str | None = None
    threshold: float | None = None
    weights: tuple[float, ...] = ()
    cuts: tuple[float, ...] = ()
    order: tuple[str, ...] = ()
    target: str = "argmax"
    validation: dict = field(default_factory=dict)
    thresholds: tuple[float, ...] = ()

    @classmethod
    def multilabel(cls, n_labels: int) -> Decision:
        """The untuned multi-label rule: every label at probability 0.5 or more."""
        return cls("multilabel", thresholds=(0.5,) * n_labels, target="threshold")

    def chosen(self, proba: np.ndarray) -> np.ndarray:
        """Multi-label: which labels each row has (N, labels) as booleans."""
        return np.asarray(proba, dtype=np.float64) >= np.asarray(self.thresholds)[None, :]

    def indices(self, proba: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        """Index (into ``classes``) of the label of each row of ``proba``."""
        if self.kind == "multilabel":
            raise ValueError("A multi-label rule decides a set of labels per image; use labels() or "
                             "chosen().")
        proba = np.asarray(proba, dtype=np.float64)
        classes = [str(c) for c in classes]
        if len(proba) == 0:
            return np.zeros(0, dtype=int)
        if self.kind == "weights":
            return np.argmax(proba * np.asarray(self.weights), axis=1)
        if self.kind == "threshold":
            k = classes.index(self.positive)
            others = proba.copy()
            others[:, k] = -np.inf
            return np.where(proba[:, k] >= self.threshold, k, np.argmax(others, axis=1))
        if self.kind == "ordinal":
            position = [classes.index(c) for c in self.order]
            grades = expected_grade(proba, classes, self.order)
            return np.asarray(position)[np.searchsorted(np.asarray(self.cuts), grades, side="right")]
        return np.argmax(proba, axis=1)

    def labels(self, proba: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        """The label of each row; for a multi-label rule its labels joined by '|'."""
        names = [str(c) for c in classes]
        if self.kind == "multilabel":
            return from_indicator(self.chosen(proba), names)
        return np.asarray(names, dtype=object)[self.indices(proba, classes)]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["weights"], out["cuts"], out["order"] = list(self.weights), list(self.cuts), list(self.order)
        out["thresholds"] = list(self.thresholds)
        return out

    @classmethod
    def from_dict(cls, data: dict | None) -> Decision | None:
        if not data:
            return None
        data = {**data, "weights": tuple(data.get("weights", ())), "cuts": tuple(data.get("cuts", ())),
                "order": tuple(data.get("order", ())), "thresholds": tuple(data.get("thresholds", ()))}
        return cls(**data)

    def describe(self) -> str:
        if self.kind == "multilabel":
            return f"per-label thresholds {[round(t, 3) for t in self.thresholds]} ({self.target})"
        if self.kind == "threshold":
            return f"'{self.positive}' when its probability >= {self.threshold:.4f} ({self.target})"
        if self.kind == "weights":
            return f"class weights {[round(w, 3) for w in self.weights]} ({self.target})"
        if self.kind == "ordinal":
            return f"expected grade cut at {[round(c, 3) for c in self.cuts]} ({self.target})"
        return "the most probable class"


def expected_grade(proba: np.ndarray, classes: Sequence[str], order: Sequence[str]) -> np.ndarray:
    """``sum(k * p_k)`` over the grades ``order`` (0 for the first, K - 1 for the last)."""
    columns = [list(map(str, classes)).index(c) for c in order]
    return np.asarray(proba, dtype=np.float64)[:, columns] @ np.arange(len(order), dtype=np.float64)


def parse_target(target: str, classes: Sequence[str], ordinal: bool) -> tuple[str, str | None, float | None]:
    """``(goal, label, level)``; a ConfigError naming ``decision.target`` when it is not one."""
    target = target.strip()
    if target in ("argmax", "balanced_accuracy", "macro_f1", "kappa"):
        if target == "kappa" and not ordinal:
            raise ConfigError("The 'decision.target' parameter kappa needs ordered grades "
                              "(task.kind=ordinal).")
        return target, None, None
    match = _GOAL.match(target)
    if not match:
        raise ConfigError(f"The 'decision.target' parameter must be {TARGET_HELP}. Got {target!r}.")
    goal, label, level = match.group(1), match.group(2), float(match.group(3))
    if label not in [str(c) for c in classes]:
        raise ConfigError(f"The 'decision.target' parameter names class '{label}', which is not one of "
                          f"{[str(c) for c in classes]}.")
    return goal, label, level


def tune_decision(target: str, y_true: Sequence[str], proba: np.ndarray, classes: Sequence[str],
                  order: Sequence[str] | None = None) -> Decision:
    """The rule that best meets ``target`` on these (validation) labels and probabilities."""
    classes = [str(c) for c in classes]
    goal, label, level = parse_target(target, classes, order is not None)
    y = np.asarray([classes.index(str(v)) for v in y_true])
    proba = np.asarray(proba, dtype=np.float64)
    if goal == "argmax":
        return Decision(target=target)
    if goal in ("recall", "precision"):
        return _threshold(goal, label, level, y, proba, classes, target)
    if order is not None and goal in ("kappa", "macro_f1", "balanced_accuracy"):
        return _cuts(goal, y, proba, classes, tuple(order), target)
    return _weights(goal, y, proba, classes, target)


def _score(goal: str, y: np.ndarray, predicted: np.ndarray, n: int) -> float:
    from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, f1_score

    if goal == "kappa":
        return float(cohen_kappa_score(y, predicted, weights="quadratic", labels=list(range(n))))
    if goal == "macro_f1":
        return float(f1_score(y, predicted, average="macro", labels=list(range(n)), zero_division=0))
    return float(balanced_accuracy_score(y, predicted))


def _threshold(goal: str, label: str, level: float, y: np.ndarray, proba: np.ndarray, classes: list[str],
               target: str) -> Decision:
    """Recall goal: the highest threshold whose recall reaches ``level`` (so precision is the
    best it can be); precision goal: the lowest threshold whose precision reaches it."""
    k = classes.index(label)
    positive = y == k
    if not positive.any():
        raise ConfigError(f"decision.target={target}: the validation split holds no '{label}' image.")
    candidates = np.unique(np.r_[proba[:, k], 0.0, 1.0])
    best = None
    for t in (candidates[::-1] if goal == "recall" else candidates):
        chosen = proba[:, k] >= t
        recall = float((chosen & positive).sum() / positive.sum())
        precision = float((chosen & positive).sum() / max(1, chosen.sum()))
        if (recall if goal == "recall" else precision) >= level:
            best = (float(t), recall, precision)
            break
    if best is None:  # a precision no threshold reaches: the strictest one
        t = float(candidates[-1])
        chosen = proba[:, k] >= t
        best = (t, float((chosen & positive).sum() / positive.sum()),
                float((chosen & positive).sum() / max(1, chosen.sum())))
    threshold, recall, precision = best
    return Decision("threshold", positive=label, threshold=threshold, target=target,
                    validation={"recall": recall, "precision": precision, "n": int(len(y))})


def _weights(goal: str, y: np.ndarray, proba: np.ndarray, classes: list[str], target: str) -> Decision:
    """Per-class weights by coordinate ascent over a log-spaced grid (three sweeps)."""
    n = len(classes)
    weights = np.ones(n)
    grid = np.exp(np.linspace(np.log(0.1), np.log(10), 41))
    best = _score(goal, y, np.argmax(proba * weights, axis=1), n)
    for _ in range(3):
        for k in range(1 if n == 2 else 0, n):  # two classes: one weight is the threshold
            for w in grid:
                trial = weights.copy()
                trial[k] = w
                score = _score(goal, y, np.argmax(proba * trial, axis=1), n)
                if score > best + 1e-12:
                    best, weights = score, trial
    weights = weights / weights.max()
    return Decision("weights", weights=tuple(float(w) for w in weights), target=target,
                    validation={goal: best, "n": int(len(y))})


def _cuts(goal: str, y: np.ndarray, proba: np.ndarray, classes: list[str], order: tuple[str, ...],
          target: str) -> Decision:
    """Cut points on the expected grade, by coordinate ascent from the midpoints k + 0.5."""
    n = len(order)
    grade_of = np.array([order.index(c) for c in classes])  # class index -> grade
    truth = grade_of[y]
    grades = expected_grade(proba, classes, order)
    cuts = np.arange(n - 1) + 0.5

    def score(c: np.ndarray) -> float:
        return _score(goal, truth, np.searchsorted(np.sort(c), grades, side="right"), n)

    best = score(cuts)
    steps = np.linspace(-0.5, 0.5, 41)
    for _ in range(3):
        for k in range(n - 1):
            for step in steps:
                trial = cuts.copy()
                trial[k] = k + 0.5 + step
                value = score(trial)
                if value > best + 1e-12:
                    best, cuts = value, trial
    return Decision("ordinal", cuts=tuple(float(c) for c in np.sort(cuts)), order=order, target=target,
                    validation={goal: best, "n": int(len(y))})


MULTILABEL_TARGETS = ("threshold (0.5 each), f1 (each label's best F1), recall:LABEL=0.95 or "
                      "precision:LABEL=0.9")


def tune_multilabel(target: str, y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str]) -> Decision:
    """Per-label thresholds for a multi-label model on (validation) 0/1 labels ``y_true``
    (N, labels): 0.5 each (``threshold``), each label's F1-best (``f1``; ``auto`` and
    ``argmax``, which has no meaning for independent labels, too), or one label's to a recall
    or precision goal and the others' F1-best. A label absent from the validation images
    keeps 0.5."""
    classes = [str(c) for c in classes]
    y_true, proba = np.asarray(y_true, dtype=bool), np.asarray(proba, dtype=np.float64)
    target = "f1" if target.strip() in ("auto", "argmax") else target.strip()
    if target == "threshold":
        return Decision.multilabel(len(classes))
    goal = label = level = None
    if target != "f1":
        match = _GOAL.match(target)
        if not match or match.group(2) not in classes:
            raise ConfigError("The 'decision.target' parameter of a multi-label task must be "
                              f"{MULTILABEL_TARGETS} (labels {classes}). Got {target!r}.")
        goal, label, level = match.group(1), match.group(2), float(match.group(3))
    thresholds, reached = [], {}
    for k, name in enumerate(classes):
        positive, p = y_true[:, k], proba[:, k]
        if not positive.any():
            thresholds.append(0.5)
            continue
        if name == label:
            rule = _threshold(goal, name, level, positive.astype(int), np.c_[1 - p, p], ["not", name], target)
            thresholds.append(rule.threshold)
            reached[name] = {k2: v for k2, v in rule.validation.items() if k2 != "n"}
            continue
        at_half, (best_t, best_f1) = _f1(positive, p >= 0.5), best_threshold(positive, p)
        if best_f1 <= at_half + 1e-12:  # 0.5 unless another threshold is strictly better
            best_t, best_f1 = 0.5, at_half
        thresholds.append(best_t)
        reached[name] = {"f1": round(best_f1, 4)}
    return Decision("multilabel", thresholds=tuple(thresholds), target=target,
                    validation={"n": int(len(y_true)), "labels": reached})


def _f1(positive: np.ndarray, chosen: np.ndarray) -> float:
    tp = float((positive & chosen).sum())
    return 2 * tp / max(1.0, float(positive.sum() + chosen.sum()))


def set_confidence(proba: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Multi-label: the probability that the decided set of labels (``chosen``, booleans) is
    exactly right, each label taken as independent: the product of p (chosen labels) and 1 - p
    (the others)."""
    proba = np.asarray(proba, dtype=np.float64)
    return np.where(np.asarray(chosen, dtype=bool), proba, 1 - proba).prod(axis=1)
