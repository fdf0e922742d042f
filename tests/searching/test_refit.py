"""The winner is refitted on train + validation before the test, with the epochs it was selected
at; the estimate of what a refit costs decides whether it fits in the budget."""

import json

import numpy as np
import pytest

import imgcls
from imgcls.searching import search
from imgcls.searching.ensembling import Plan
from imgcls.searching.kept import KeptTrial, kept_trials
from imgcls.searching.refit import (
    HEATMAP_IMAGES,
    REPORT_SECONDS,
    evaluation_seconds,
    refit_epochs,
    refit_seconds,
)


def _kept(**kw):
    base = dict(number=0, score=0.9, family="finetune", overrides={}, fit_seconds=100.0, predict_seconds=2.0,
                n_train=800, n_val=200)
    return KeptTrial(**{**base, **kw})


def test_a_network_is_refitted_for_the_epochs_it_was_selected_at():
    assert refit_epochs(_kept(epochs=6, best_epoch=3)) == 4
    assert refit_epochs(_kept(epochs=6, best_epoch=None)) == 6
    assert refit_epochs(_kept()) is None  # no epochs: a classical model
    # 100 s for 6 epochs on 800 images -> 4 epochs on 1000 images, with a margin
    assert refit_seconds(_kept(epochs=6, best_epoch=3)) == pytest.approx(1.15 * 100 * 1.25 * 4 / 6)


def test_cached_features_are_not_counted_again():
    cached = refit_seconds(_kept(family="classical", fit_seconds=50.0, features_seconds=48.0))
    cold = refit_seconds(_kept(family="classical", fit_seconds=50.0, features_seconds=48.0, cached=False))
    assert cached < 6 < 60 < cold


def test_the_evaluation_estimate_counts_the_heat_maps_of_a_winner_without_gradients():
    def plan(*members):
        return Plan(list(members), np.full(len(members), 1 / len(members)), 0.9, np.arange(3), np.zeros(3),
                    np.zeros((3, 2)), ["a", "b"], 0.9)

    net, svm = _kept(predict_seconds=2.0), _kept(family="classical", predict_seconds=1.0)  # n_val 200
    assert evaluation_seconds(plan(net), 400) == pytest.approx(REPORT_SECONDS + 4.0)  # Grad-CAM: cheap
    occluded = REPORT_SECONDS + (2.0 + 1.0) / 200 * (400 + HEATMAP_IMAGES)
    assert evaluation_seconds(plan(net, svm), 400) == pytest.approx(occluded)
    assert evaluation_seconds(plan(svm), 400) > REPORT_SECONDS + 2.0


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    root = tmp_path_factory.mktemp("refit")
    kw = dict(budget="60s", trials=3, families="classical", progress=False)
    return {"refit": search("digits", out=root / "refit", **kw),
            "kept": search("digits", out=root / "kept", refit=False, **kw)}


def _trials_proba(result, sample):
    """What the winner's members, as their trials trained them, say of ``sample``, weighted."""
    kept = {t.number: t for t in kept_trials(result.out)}
    return sum(m["weight"] * imgcls.load_model(kept[m["trial"]].model_dir).predict_proba(sample)
               for m in result.best_run.metrics["search"]["members"])


def _sample(model):
    from imgcls.data import load_images

    ds = imgcls.load_dataset("digits").subset(np.arange(20))
    return load_images(ds, model.image_spec.with_channels(None), 1, None, False).images


def test_the_refitted_winner_learned_from_the_validation_images_too(searches):
    result = searches["refit"]
    run = result.best_run
    record = run.metrics["search"]
    assert record["refitted"] == f"{len(record['members'])} of {len(record['members'])}"
    assert all(m["refitted"] for m in record["members"])
    splits = run.metrics["dataset"]["splits"]
    assert "val" not in run.metrics and splits["val"] == 0  # its validation images were training images
    assert splits["train"] == 1347  # every image that is not test
    sample = _sample(run.model)
    assert not np.allclose(run.model.predict_proba(sample), _trials_proba(result, sample), atol=1e-4)


def test_without_refit_the_winner_is_the_trials_model(searches):
    result = searches["kept"]
    run = result.best_run
    assert run.metrics["search"]["refitted"].startswith("0 of")
    assert run.metrics["val"]["n"] == result.summary["search"]["val_images"]
    sample = _sample(run.model)
    # the trials' own probabilities; the winner's temperature, fitted on validation, on top
    assert np.allclose(run.model.raw_proba(sample), _trials_proba(result, sample), atol=1e-5)
    assert run.model.calibration_ is not None and run.metrics["calibration"]["validation"]["n"] == \
        result.summary["search"]["val_images"]
    assert np.allclose(run.model.predict_proba(sample), run.model.calibration_.apply(
        _trials_proba(result, sample)), atol=1e-5)
    summary = json.loads((result.out / "search.json").read_text())
    assert summary["elapsed_seconds"] <= 60 and summary["winner"]
