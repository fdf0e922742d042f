"""Active-learning strategies: each asks what it says, and the simulation measures them."""

import numpy as np
import pytest

from imgcls.core.errors import ConfigError
from imgcls.labelling.learner import Learner, estimate_accuracy
from imgcls.labelling.simulate import labels_to_reach, simulate
from imgcls.labelling.strategies import STRATEGIES, pick


def _rng():
    return np.random.default_rng(0)


def test_margin_and_entropy_ask_the_most_uncertain_first():
    X = np.eye(4)
    proba = np.array([[0.9, 0.1], [0.55, 0.45], [0.7, 0.3], [0.51, 0.49]])
    candidates = np.arange(4)
    for name in ("margin", "entropy"):
        assert pick(name, X, np.array([], int), candidates, 2, _rng(), proba, random_share=0) == [3, 1]


def test_diversity_covers_the_data_before_repeating_a_region():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [10, 0], [0, 10]])
    X = np.concatenate([c + rng.normal(0, 0.1, (30, 2)) for c in centres])
    chosen = pick("diversity", X, np.array([0]), np.arange(1, 90), 2, _rng(), random_share=0)
    assert sorted(r // 30 for r in chosen) == [1, 2]  # one from each cluster not yet labelled


def test_uncertainty_without_a_model_falls_back_to_diversity_and_random_share_is_kept():
    X = np.random.default_rng(2).normal(size=(30, 4))
    cold = pick("margin", X, np.array([], int), np.arange(30), 5, _rng(), None, random_share=0)
    assert cold == pick("diversity", X, np.array([], int), np.arange(30), 5, _rng(), random_share=0)
    chosen = pick("margin", X, np.array([], int), np.arange(30), 5, _rng(), None, random_share=0.4)
    assert len(chosen) == len(set(chosen)) == 5
    with pytest.raises(ConfigError, match="'random_share'"):
        pick("mix", X, np.array([], int), np.arange(10), 2, _rng(), random_share=2)
    with pytest.raises(ConfigError, match="Unknown labelling strategy"):
        pick("smart", X, np.array([], int), np.arange(10), 2, _rng())
    assert set(STRATEGIES.names()) == {"random", "margin", "entropy", "diversity", "mix"}


def test_the_estimate_waits_for_three_labels_per_class_and_is_cross_validated():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (20, 3)), rng.normal(5, 1, (20, 3))]
    y = np.array(["a"] * 20 + ["b"] * 20, dtype=object)
    assert estimate_accuracy(X[[0, 1, 20, 21]], y[[0, 1, 20, 21]]) is None
    found = estimate_accuracy(X, y)
    assert found["score"] == 1.0 and found["metric"] == "accuracy" and found["n"] == 40
    learner = Learner(X, "margin").update({k: y[k] for k in range(0, 40, 2)})
    assert learner.curve and learner.guess(1)[0] == "a"
    asked = learner.next(5)
    assert len(asked) == 5 and not set(asked) & set(range(0, 40, 2))


@pytest.mark.parametrize("strategy", ["random", "margin", "mix"])
def test_simulation_reveals_labels_in_batches_and_never_asks_a_test_image(strategy):
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (80, 4)), rng.normal(2, 1, (80, 4))]
    y = np.array(["a"] * 80 + ["b"] * 80, dtype=object)
    test = np.arange(0, 160, 4)
    curve = simulate(X, y, test, strategy, budget=40, batch=10, seed=1)
    assert [p["labels"] for p in curve] == [10, 20, 30, 40]
    assert curve[-1]["accuracy"] > 0.8
    assert labels_to_reach(curve, 0.0) == 10 and labels_to_reach(curve, 1.01) is None


def test_the_estimate_rests_on_the_random_draws_once_there_are_enough():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (60, 3))
    y = np.where(X[:, 0] > 0, "a", "b").astype(object)
    drawn = np.zeros(60, dtype=bool)
    drawn[:25] = True
    found = estimate_accuracy(X, y, drawn=drawn)
    assert found["method"] == "random draws" and found["n"] == 25
    few = estimate_accuracy(X, y, drawn=np.arange(60) < 5)
    assert few["method"] == "all labels" and few["n"] == 60
    learner = Learner(X, "margin", random_share=0.5).update({k: y[k] for k in range(10)})
    asked = learner.next(10)
    assert learner.offered == set(asked[:5])  # the draws come first in the batch


def test_no_estimate_while_a_class_of_the_session_has_no_labels():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (10, 3)), rng.normal(5, 1, (10, 3))]
    y = np.array(["a"] * 10 + ["b"] * 10, dtype=object)
    assert estimate_accuracy(X, y) is not None
    assert estimate_accuracy(X, y, classes=("a", "b", "c")) is None
