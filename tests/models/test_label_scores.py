"""The fast per-label scores that select and weigh multi-label models agree with scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score

from imgcls.models.label_scores import average_precision, best_f1, quick_multilabel_score


@pytest.mark.parametrize("seed", range(5))
def test_best_f1_is_the_best_f1_over_every_threshold(seed):
    rng = np.random.default_rng(seed)
    truth = rng.random(60) < 0.3
    scores = np.round(rng.random(60), 1)  # many ties
    brute = max(f1_score(truth, scores >= t) for t in np.unique(scores))
    assert best_f1(truth, scores) == pytest.approx(brute)


def test_a_label_without_positives_scores_nothing_and_is_left_out_of_the_means():
    truth = np.array([[1, 0], [0, 0], [1, 0]], dtype=bool)
    proba = np.array([[0.9, 0.8], [0.1, 0.7], [0.8, 0.1]])
    assert best_f1(truth[:, 1], proba[:, 1]) == 0.0 and average_precision(truth[:, 1], proba[:, 1]) is None
    assert quick_multilabel_score("map", truth, proba) == 1.0  # the empty label does not count as 0
    assert quick_multilabel_score("macro_f1", truth, proba) == 1.0


def test_map_matches_scikit_learn():
    rng = np.random.default_rng(3)
    truth = rng.random((80, 4)) < 0.4
    proba = np.clip(truth * 0.3 + rng.random((80, 4)) * 0.7, 0, 1).round(2)
    expected = np.mean([average_precision_score(truth[:, k], proba[:, k]) for k in range(4)])
    assert quick_multilabel_score("map", truth, proba) == pytest.approx(expected)
    with pytest.raises(ValueError, match="multi-label score"):
        quick_multilabel_score("accuracy", truth, proba)
