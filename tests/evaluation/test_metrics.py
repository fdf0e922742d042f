import numpy as np
import pytest
from sklearn import metrics as skm

from imgcls.core.errors import DataError
from imgcls.evaluation.metrics import bootstrap_intervals, compute_metrics, expected_calibration_error


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    classes = ["cat", "dog", "eel"]
    y = rng.choice(classes, size=300, p=[0.5, 0.3, 0.2])
    logits = rng.normal(size=(300, 3))
    logits[np.arange(300), [classes.index(c) for c in y]] += 1.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba, classes


def test_matches_scikit_learn(case):
    y, proba, classes = case
    m = compute_metrics(y, proba, classes)
    pred = np.array(classes)[proba.argmax(1)]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["macro"]["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["weighted"]["precision"] == pytest.approx(skm.precision_score(y, pred, average="weighted"))
    assert m["per_class"]["dog"]["recall"] == pytest.approx(
        skm.recall_score(y, pred, labels=["dog"], average="macro"))
    assert m["confusion_matrix"]["counts"] == skm.confusion_matrix(y, pred, labels=classes).tolist()
    idx = np.array([classes.index(c) for c in y])
    assert m["log_loss"] == pytest.approx(skm.log_loss(idx, proba))
    assert m["roc_auc_ovr"] == pytest.approx(skm.roc_auc_score(idx, proba, multi_class="ovr"))
    assert m["top_k_accuracy"]["2"] == pytest.approx(skm.top_k_accuracy_score(idx, proba, k=2))


def test_normalised_confusion_rows_sum_to_one(case):
    m = compute_metrics(*case)
    assert np.allclose(np.sum(m["confusion_matrix"]["normalized"], axis=1), 1.0, atol=1e-3)


def test_intervals_bracket_the_point_estimate(case):
    m = compute_metrics(*case)
    low, high = m["intervals"]["accuracy"]
    assert low < m["accuracy"] < high and high - low < 0.2
    low, high = m["intervals"]["macro_f1"]
    assert low < m["macro"]["f1"] < high


def test_bootstrap_is_deterministic_per_seed():
    t = np.array([0, 1, 1, 0, 1, 0, 0, 1] * 10)
    p = np.array([0, 1, 0, 0, 1, 1, 0, 1] * 10)
    assert bootstrap_intervals(t, p, 2, 200, seed=1) == bootstrap_intervals(t, p, 2, 200, seed=1)


def test_ece_is_zero_when_confidence_equals_accuracy():
    correct = np.array([1, 1, 1, 0] * 25, dtype=bool)
    ece, bins = expected_calibration_error(correct, np.full(100, 0.75))
    assert ece == pytest.approx(0.0)
    assert bins[0]["count"] == 100
    ece, _ = expected_calibration_error(correct, np.full(100, 0.95))
    assert ece == pytest.approx(0.2)


def test_most_confused_pairs_are_ranked():
    y = ["a"] * 5 + ["b"] * 5
    proba = np.array([[0.1, 0.9]] * 4 + [[0.9, 0.1]] + [[0.8, 0.2]] * 1 + [[0.2, 0.8]] * 4)
    m = compute_metrics(y, proba, ["a", "b"])
    assert m["most_confused"][0] == {"true": "a", "predicted": "b", "count": 4}


def test_roc_auc_is_none_when_a_class_is_absent():
    m = compute_metrics(["a", "a"], np.array([[0.6, 0.3, 0.1], [0.7, 0.2, 0.1]]), ["a", "b", "c"])
    assert m["roc_auc_ovr"] is None


def test_labels_outside_the_model_classes_are_an_error():
    with pytest.raises(DataError, match="not among the model's classes"):
        compute_metrics(["zebra"], np.array([[0.5, 0.5]]), ["a", "b"])
