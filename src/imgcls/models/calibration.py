"""Calibrated confidence: temperature scaling fitted on validation images, for any model.

A network's softmax tends to be over-confident after fine-tuning (Guo et al., 2017); one
temperature ``T`` fitted by minimising the validation log-loss fixes most of it. It is
applied to the log of the model's own probabilities, ``softmax(log p / T)``, which for a
single view of a network is exactly ``softmax(z / T)`` of its logits, and works the same
for a Platt-scaled SVM, a logistic-regression probe or an ensemble's average. Dividing
every log-probability by one positive number keeps their order, so the most probable class,
and a two-class threshold's decisions, do not change: only the confidence does.

Example:
    >>> import numpy as np
    >>> proba = np.array([[0.99, 0.01], [0.98, 0.02], [0.97, 0.03], [0.05, 0.95]])
    >>> cal = fit_temperature(np.array([0, 1, 0, 1]), proba)
    >>> cal.temperature > 1, cal.apply(proba).argmax(1).tolist()
    (True, [0, 0, 0, 1])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..core.errors import ConfigError

METHODS = ("auto", "temperature", "none")
# The temperatures searched, log-spaced; a model needing more than x20 either way is broken.
T_RANGE = (0.05, 20.0)
EPS = 1e-12


@dataclass(frozen=True)
class Calibration:
    """``softmax(log p / temperature)``; ``validation`` holds what the fit reached."""

    temperature: float = 1.0
    method: str = "temperature"
    validation: dict = field(default_factory=dict)

    def apply(self, proba: np.ndarray) -> np.ndarray:
        return apply_temperature(proba, self.temperature)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> Calibration | None:
        if not data:
            return None
        return cls(float(data["temperature"]), data.get("method", "temperature"),
                   dict(data.get("validation", {})))

    def describe(self) -> str:
        return f"temperature {self.temperature:.3f}"


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` row by row, in the input's float type."""
    proba = np.asarray(proba)
    if temperature == 1.0 or len(proba) == 0:
        return proba
    logp = np.log(np.clip(proba.astype(np.float64), EPS, 1.0)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    out = np.exp(logp)
    return (out / out.sum(axis=1, keepdims=True)).astype(proba.dtype if proba.dtype.kind == "f" else float)


def expected_calibration_error(correct: np.ndarray, confidence: np.ndarray, bins: int = 15
                               ) -> tuple[float, list[dict]]:
    """ECE over equal-width confidence bins, and the bins for a reliability diagram."""
    correct, confidence = np.asarray(correct, dtype=bool), np.asarray(confidence, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece, table = 0.0, []
    for b in range(bins):
        mask = which == b
        if not mask.any():
            continue
        acc, conf = float(correct[mask].mean()), float(confidence[mask].mean())
        ece += mask.mean() * abs(acc - conf)
        table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(mask.sum()),
                      "accuracy": acc, "confidence": conf})
    return float(ece), table


def ece_of(y: np.ndarray, proba: np.ndarray) -> float:
    """ECE of the most probable class's confidence, for true class indices ``y``."""
    return expected_calibration_error(proba.argmax(axis=1) == y, proba.max(axis=1))[0]


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], EPS, 1.0))))


def fit_temperature(y: np.ndarray, proba: np.ndarray) -> Calibration:
    """The temperature minimising the log-loss of ``proba`` (rows) for true class indices ``y``.

    One parameter: a bounded scalar search over ``log T`` (the loss is convex in ``1 / T``).
    """
    from scipy.optimize import minimize_scalar

    y = np.asarray(y, dtype=int)
    proba = np.asarray(proba, dtype=np.float64)
    if len(y) < 2:
        raise ConfigError("Calibration needs at least 2 validation images.")
    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    found = minimize_scalar(lambda t: log_loss(y, apply_temperature(proba, float(np.exp(t)))),
                            bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    temperature = float(np.exp(found.x))
    calibrated = apply_temperature(proba, temperature)
    return Calibration(temperature, validation={
        "n": int(len(y)), "log_loss_before": round(log_loss(y, proba), 6),
        "log_loss": round(log_loss(y, calibrated), 6), "ece_before": round(ece_of(y, proba), 6),
        "ece": round(ece_of(y, calibrated), 6)})


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"The 'decision.calibration' parameter must be one of {METHODS}. Got {method!r}.")
    return method
