"""The search's last choice: an ensemble of kept trials only when it beats the best one, on the
validation images every member scored; the kept set stays bounded and keeps each family."""

import json
import shutil

import numpy as np
import pytest

from imgcls.searching.ensembling import plan_winner
from imgcls.searching.kept import KEEP, KeptTrial, kept_trials
from imgcls.searching.trials import scorer

CLASSES = ["a", "b"]
LABELS = np.array(["a", "b"] * 50, dtype=object)  # dataset rows 0..99


def _trial(tmp_path, number, proba, rows=None, family="classical", score=0.0):
    folder = tmp_path / "workers" / "w" / "trials" / str(number)
    (folder / "model").mkdir(parents=True)
    rows = np.arange(len(proba)) if rows is None else rows
    np.savez(folder / "val.npz", rows=rows, proba=proba)
    trial = KeptTrial(number, score, family, {}, 1.0, 0.1, 400, len(rows), classes=list(CLASSES))
    (folder / "trial.json").write_text(json.dumps(trial.to_json()))
    trial.folder = folder
    return trial


def _right_on(mask):
    y = (LABELS == "b").astype(int)
    sure = np.eye(2)[y] * 0.8 + 0.1
    return np.where(mask[:, None], sure, np.full((100, 2), 0.5) + np.array([0.01, -0.01]))


def _plan(trials):
    score = scorer("accuracy", CLASSES)
    return plan_winner(trials, lambda rows: LABELS[rows], score)


def test_two_trials_right_on_different_images_make_an_ensemble(tmp_path):
    first = np.arange(100) < 60
    left = _trial(tmp_path, 0, _right_on(first), score=0.8)
    right = _trial(tmp_path, 1, _right_on(~first | (np.arange(100) < 20)), score=0.7)
    plan = _plan([left, right])
    assert plan.is_ensemble and {m.number for m in plan.members} == {0, 1}
    assert plan.val_score == 1.0 and plan.single_best == pytest.approx(0.8)
    assert plan.weights.sum() == pytest.approx(1.0)


def test_an_ensemble_that_does_not_beat_the_best_trial_is_not_used(tmp_path):
    best = _trial(tmp_path, 0, _right_on(np.ones(100, bool)), score=1.0)
    worse = _trial(tmp_path, 1, _right_on(np.arange(100) < 50), score=0.75)
    plan = _plan([best, worse])
    assert not plan.is_ensemble and plan.members[0].number == 0 and plan.val_score == 1.0


def test_members_are_compared_on_the_validation_images_all_of_them_scored(tmp_path):
    one = _trial(tmp_path, 0, _right_on(np.arange(100) < 50), score=0.9)  # right on half
    perfect = _right_on(np.ones(100, bool))
    some = _trial(tmp_path, 1, perfect[10:][::-1], rows=np.arange(10, 100)[::-1], score=0.8)  # other order
    plan = _plan([one, some])
    assert sorted(plan.rows) == list(range(10, 100)) and len(plan.labels) == 90
    # read in its own row order, the second trial is right everywhere (misaligned: wrong everywhere)
    assert [m.number for m in plan.members] == [1] and plan.val_score == 1.0


def test_the_kept_set_is_bounded_and_keeps_the_best_of_each_family(tmp_path):
    from imgcls.searching.kept import _prune

    for k in range(KEEP + 3):
        _trial(tmp_path, k, _right_on(np.ones(100, bool)), score=0.9 - 0.01 * k)
    _trial(tmp_path, 99, _right_on(np.ones(100, bool)), family="probe", score=0.1)
    _prune(tmp_path / "workers" / "w" / "trials")
    kept = kept_trials(tmp_path)
    numbers = [t.number for t in kept]
    assert len(kept) == KEEP + 1 and 99 in numbers  # the weak probe stays: the ensemble may need it
    assert numbers[:KEEP] == list(range(KEEP))  # best first
    trials = tmp_path / "workers" / "w" / "trials"
    shutil.copytree(trials / "0", trials / ".5.half.tmp")  # a complete-looking folder still being written
    assert len(kept_trials(tmp_path)) == KEEP + 1


def test_multi_label_trials_right_on_different_labels_make_an_ensemble(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.random((100, 2)) < 0.5
    labels = np.array(["|".join(c for c, t in zip(CLASSES, row, strict=True) if t) for row in truth],
                      dtype=object)
    noise = rng.random((100, 2))
    # each trial ranks one label perfectly and guesses the other
    first = np.c_[truth[:, 0] * 0.5 + 0.25, noise[:, 1]]
    second = np.c_[noise[:, 0], truth[:, 1] * 0.5 + 0.25]
    trials = [_trial(tmp_path, 0, first, score=0.75), _trial(tmp_path, 1, second, score=0.74)]
    score = scorer("map", CLASSES, multilabel=True)
    plan = plan_winner(trials, lambda rows: labels[rows], score, multilabel=True)
    assert plan.is_ensemble and plan.val_score > plan.single_best + 0.1
    assert plan.val_score == pytest.approx(score(labels, plan.proba))
