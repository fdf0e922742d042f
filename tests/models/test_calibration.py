"""Temperature scaling: fitted on validation, it moves confidence and nothing else."""

import numpy as np
import pytest

from imgcls.core.errors import ConfigError
from imgcls.models.calibration import Calibration, apply_temperature, ece_of, fit_temperature, log_loss


def _overconfident(n: int = 400, seed: int = 0):
    """Labels right 70 % of the time, each with probability 0.99: a softmax gone too far."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    guess = np.where(rng.random(n) < 0.7, y, (y + 1) % 3)
    proba = np.full((n, 3), 0.005)
    proba[np.arange(n), guess] = 0.99
    return y, proba


def test_an_overconfident_model_gets_a_temperature_above_one_and_a_lower_loss():
    y, proba = _overconfident()
    cal = fit_temperature(y, proba)
    calibrated = cal.apply(proba)
    assert cal.temperature > 2
    assert log_loss(y, calibrated) < log_loss(y, proba) and ece_of(y, calibrated) < ece_of(y, proba) / 3
    assert abs(calibrated.max(axis=1).mean() - 0.7) < 0.05  # confidence now matches accuracy
    assert cal.validation["n"] == len(y) and cal.validation["ece"] < cal.validation["ece_before"]


def test_an_underconfident_model_gets_a_temperature_below_one():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    proba = np.where(y[:, None] == np.arange(2), 0.6, 0.4)  # always right, never sure
    assert fit_temperature(y, proba).temperature < 0.5


def test_the_temperature_keeps_every_ranking_and_sums_to_one():
    _, proba = _overconfident()
    proba = proba + np.random.default_rng(2).random(proba.shape) * 0.01
    proba /= proba.sum(axis=1, keepdims=True)
    for t in (0.3, 1.0, 4.0):
        out = apply_temperature(proba, t)
        assert np.allclose(out.sum(axis=1), 1.0)
        assert (np.argsort(out, axis=1) == np.argsort(proba, axis=1)).all()
    assert apply_temperature(proba, 1.0) is proba or np.array_equal(apply_temperature(proba, 1.0), proba)


def test_round_trip_and_too_few_images():
    cal = fit_temperature(*_overconfident(50))
    assert Calibration.from_dict(cal.to_dict()) == cal and Calibration.from_dict(None) is None
    with pytest.raises(ConfigError, match="at least 2"):
        fit_temperature(np.array([0]), np.array([[0.9, 0.1]]))
