"""Decision rules: how probabilities become a label, tuned on validation to a user's goal."""

import numpy as np
import pytest

from imgcls.core.errors import ConfigError
from imgcls.models.decision import Decision, expected_grade, tune_decision

CLASSES = ["defect", "ok"]


def skewed(n: int = 400, seed: int = 0):
    """Two classes where the model under-calls 'defect': its probability rarely passes 0.5."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    p_defect = np.clip(np.where(y, rng.normal(0.4, 0.15, n), rng.normal(0.15, 0.1, n)), 0, 1)
    labels = np.where(y, "defect", "ok")
    return labels, np.c_[p_defect, 1 - p_defect]


def test_a_recall_target_is_reached_on_validation_and_holds_on_new_data():
    labels, proba = skewed()
    rule = tune_decision("recall:defect=0.95", labels, proba, CLASSES)
    assert rule.kind == "threshold" and rule.validation["recall"] >= 0.95
    argmax_recall = np.mean(proba[labels == "defect", 0] >= 0.5)
    assert argmax_recall < 0.5  # the most probable class misses most defects here
    test_labels, test_proba = skewed(seed=1)
    decided = rule.labels(test_proba, CLASSES)
    assert np.mean(decided[test_labels == "defect"] == "defect") >= 0.9


def test_a_precision_target_picks_the_lowest_threshold_that_reaches_it():
    labels, proba = skewed()
    rule = tune_decision("precision:defect=0.9", labels, proba, CLASSES)
    chosen = proba[:, 0] >= rule.threshold
    assert np.mean(labels[chosen] == "defect") >= 0.9
    below = proba[proba[:, 0] < rule.threshold, 0].max()  # the next lower threshold there is
    assert np.mean(labels[proba[:, 0] >= below] == "defect") < 0.9


def test_weights_raise_balanced_accuracy_over_argmax():
    from sklearn.metrics import balanced_accuracy_score

    labels, proba = skewed()
    rule = tune_decision("balanced_accuracy", labels, proba, CLASSES)
    assert rule.kind == "weights"
    tuned = balanced_accuracy_score(labels, rule.labels(proba, CLASSES))
    assert tuned > balanced_accuracy_score(labels, np.array(CLASSES)[proba.argmax(1)]) + 0.1


def test_ordinal_cuts_raise_kappa_when_the_middle_grades_are_under_called():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    order = ["0", "1", "2", "3"]
    grade = rng.integers(0, 4, 600)
    # a model that spreads each grade's probability around it, pulled towards the extremes
    logits = -((np.arange(4)[None, :] - (grade[:, None] * 1.2 - 0.3)) ** 2) / 0.8
    proba = np.exp(logits + rng.normal(0, 0.5, logits.shape))
    proba /= proba.sum(1, keepdims=True)
    labels = np.array(order)[grade]
    rule = tune_decision("kappa", labels, proba, order, order)
    assert rule.kind == "ordinal" and list(rule.cuts) == sorted(rule.cuts)
    assert np.allclose(expected_grade(proba, order, order), proba @ np.arange(4))
    tuned = cohen_kappa_score(grade, rule.indices(proba, order), weights="quadratic")
    assert tuned >= cohen_kappa_score(grade, proba.argmax(1), weights="quadratic")


def test_a_rule_survives_its_dict_and_bad_targets_name_the_parameter():
    rule = Decision("ordinal", cuts=(0.5, 1.4), order=("a", "b", "c"), target="kappa")
    assert Decision.from_dict(rule.to_dict()) == rule and Decision.from_dict(None) is None
    labels, proba = skewed(50)
    with pytest.raises(ConfigError, match="'decision.target'.*class 'crack'"):
        tune_decision("recall:crack=0.9", labels, proba, CLASSES)
    with pytest.raises(ConfigError, match="'decision.target' parameter must be"):
        tune_decision("recall>0.9", labels, proba, CLASSES)
    with pytest.raises(ConfigError, match="needs ordered grades"):
        tune_decision("kappa", labels, proba, CLASSES)


def test_multi_label_thresholds_are_tuned_per_label():
    from imgcls.models.decision import tune_multilabel

    rng = np.random.default_rng(0)
    y = rng.random((300, 3)) < [0.5, 0.2, 0.05]
    proba = np.clip(y * 0.3 + rng.random((300, 3)) * 0.5, 0, 1)  # positives sit around 0.3-0.8
    names = ["a", "b", "c"]

    def f1(chosen, k):
        tp = (chosen[:, k] & y[:, k]).sum()
        return 2 * tp / (chosen[:, k].sum() + y[:, k].sum())

    rule = tune_multilabel("f1", y, proba, names)
    assert rule.kind == "multilabel" and len(rule.thresholds) == 3
    half = tune_multilabel("threshold", y, proba, names)
    assert half.thresholds == (0.5, 0.5, 0.5)
    for k in range(3):
        assert f1(rule.chosen(proba), k) >= f1(half.chosen(proba), k)
    assert rule.labels(proba[:2], names).tolist() == ["|".join(
        n for n, on in zip(names, row, strict=True) if on) for row in rule.chosen(proba[:2])]
    goal = tune_multilabel("recall:c=0.9", y, proba, names)
    assert (goal.chosen(proba)[:, 2] & y[:, 2]).sum() / y[:, 2].sum() >= 0.9
    with pytest.raises(ConfigError, match="multi-label"):
        tune_multilabel("kappa", y, proba, names)
    assert Decision.from_dict(rule.to_dict()) == rule
