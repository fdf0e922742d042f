"""Multi-label metrics against scikit-learn's, and what the intervals cover."""

import numpy as np
import pytest
from sklearn import metrics as skm

from imgcls.data.tasks import from_indicator
from imgcls.evaluation.multilabel import average_precision, multilabel_metrics

NAMES = ["a", "b", "c", "d"]


def _case(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.random((n, 4)) < [0.5, 0.3, 0.1, 0.6]
    proba = np.clip(y * 0.35 + rng.random((n, 4)) * 0.6, 0, 1)
    chosen = proba >= 0.5
    return y, proba, chosen


def test_every_figure_matches_scikit_learn():
    y, proba, chosen = _case()
    m = multilabel_metrics(from_indicator(y, NAMES), proba, NAMES, from_indicator(chosen, NAMES), n_boot=200)
    assert m["micro"]["f1"] == pytest.approx(skm.f1_score(y, chosen, average="micro"))
    assert m["macro"]["f1"] == pytest.approx(skm.f1_score(y, chosen, average="macro"))
    assert m["hamming_loss"] == pytest.approx(skm.hamming_loss(y, chosen))
    assert m["subset_accuracy"] == pytest.approx(skm.accuracy_score(y, chosen))
    assert m["map"] == pytest.approx(skm.average_precision_score(y, proba, average="macro"))
    for k, name in enumerate(NAMES):
        assert m["per_label"][name]["ap"] == pytest.approx(skm.average_precision_score(y[:, k], proba[:, k]))
        assert m["per_label"][name]["recall"] == pytest.approx(skm.recall_score(y[:, k], chosen[:, k]))
    low, high = m["intervals"]["micro_f1"]
    assert low < m["micro"]["f1"] < high and high - low < 0.2
    assert np.array(m["error_cooccurrence"]).diagonal().tolist() == (y != chosen).sum(axis=0).tolist()


def test_average_precision_ties_and_no_positive():
    truth = np.array([1, 0, 1, 0, 0], bool)
    scores = np.array([0.9, 0.9, 0.5, 0.1, 0.5])
    assert average_precision(truth, scores) == pytest.approx(skm.average_precision_score(truth, scores))
    assert average_precision(np.zeros(3, bool), np.ones(3)) is None
