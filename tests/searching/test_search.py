"""imgcls search: budget, leaderboard, winner run, validation-only selection, resume."""

import json
import time

import numpy as np
import pandas as pd
import pytest

import imgcls
from imgcls.core.errors import ConfigError
from imgcls.searching import parse_budget, parse_families, search


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("10m", 600), ("1h30m", 5400),
                                           ("2m30s", 150), (45, 45)])
def test_budget_parsing(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("bad", ["", "ten minutes", "0s", "-5", "5x"])
def test_bad_budgets_are_config_errors(bad):
    with pytest.raises(ConfigError, match="'budget'"):
        parse_budget(bad)


def test_families_are_checked_and_ordered_cheap_first():
    assert parse_families("finetune,classical") == ("classical", "finetune")
    with pytest.raises(ConfigError, match="'families'"):
        parse_families("classical,xgboost")


@pytest.fixture(scope="module")
def digits_search(tmp_path_factory):
    """A short classical search on digits; records the size of every set a trial scores."""
    import imgcls.searching.trials as trials_module

    scored = []
    original = trials_module.quick_score

    def recording(metric, true_idx, *args, **kwargs):
        scored.append(len(true_idx))
        return original(metric, true_idx, *args, **kwargs)

    trials_module.quick_score = recording
    try:
        out = tmp_path_factory.mktemp("search") / "digits"
        result = search("digits", budget="60s", trials=6, out=out, families="classical", progress=False)
    finally:
        trials_module.quick_score = original
    return result, scored


def test_leaderboard_lists_every_trial_best_first(digits_search):
    result, _ = digits_search
    table = pd.read_csv(result.out / "leaderboard.csv")
    assert len(table) == 6 and list(table["rank"]) == list(range(1, 7))
    done = table[table["state"] == "complete"]
    assert len(done) >= 3 and done["val_score"].is_monotonic_decreasing
    assert table["trial"].is_unique
    page = (result.out / "leaderboard.html").read_text()
    assert "data:image/png;base64," in page and "svm" in page


def test_selection_uses_validation_only_and_the_winner_is_a_normal_run(digits_search):
    result, scored = digits_search
    from imgcls.config import SplitConfig
    from imgcls.data import assign_splits

    ds = assign_splits(imgcls.load_dataset("digits"), SplitConfig())
    n, n_test = len(ds), int((ds.table["split"] == "test").sum())
    assert scored and all(size < n - n_test for size in scored)  # never the test split
    assert len(set(scored)) == 1  # the same validation images for every trial
    run = result.best_run
    assert run.path == result.out / "best" and (run.path / "report.html").is_file()
    # the winner's validation score against the study's own best trial (Optuna's record): an
    # ensemble is used only when it beats that trial, a single winner is that trial
    chosen, best_trial = run.metrics["search"]["val_score"], result.summary["best_trial_val_score"]
    if run.metrics["search"]["winner"] == "ensemble":
        assert chosen > best_trial
    else:
        assert chosen == pytest.approx(best_trial)
    assert run.metrics["test"]["n"] == n_test
    model = imgcls.load_model(run.path)
    table = imgcls.predict(model, ["digits"], limit=20, progress=False)
    assert (table["error"] == "").all()
    summary = json.loads((result.out / "search.json").read_text())
    assert summary["best_test"]["accuracy"] == run.metrics["test"]["accuracy"] >= 0.9


def test_an_interrupted_search_resumes_its_study(digits_search, tmp_path):
    import shutil

    result, _ = digits_search
    copy = tmp_path / "again"
    shutil.copytree(result.out, copy)
    again = search("digits", budget="60s", trials=2, out=copy, families="classical", progress=False)
    assert len(again.leaderboard) == 8  # 6 before, 2 now, in one study
    assert again.leaderboard["trial"].is_unique


def test_the_budget_stops_a_trial_in_flight(tmp_path):
    started = time.monotonic()
    result = search("shapes", budget="6s", out=tmp_path / "s", families="finetune", progress=False,
                    overrides=["split.test=0.2"])
    elapsed = time.monotonic() - started
    first = result.leaderboard.sort_values("trial").iloc[0]
    assert first["stopped"] == "budget"  # 8 epochs asked; the deadline ended it
    # with an epoch done, its best epoch competes; with none, it is pruned
    assert first["state"] in ("complete", "pruned")
    assert (result.best_run is None) == (first["state"] == "pruned")
    assert elapsed < 6 + 20  # the limit, plus loading data, the last epoch's end and writing


def test_unknown_metric_and_bad_data_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="'metric'"):
        search("digits", metric="auc", out=tmp_path / "x")
    with pytest.raises(imgcls.ImgclsError, match="nowhere.*neither an existing folder"):
        search(str(tmp_path / "nowhere"), out=tmp_path / "y", budget="5s")
    assert np.isfinite(parse_budget("1.5m"))


def test_cli_search_writes_the_winner_and_fails_clearly(tmp_path):
    import os
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "imgcls", "search", *map(str, args)], text=True,
                              capture_output=True, env={**os.environ, "COLUMNS": "200"}, timeout=300)

    ok = cli("digits", "--budget", "90s", "--trials", "3", "--families", "classical", "--out",
             tmp_path / "s", "-q")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (tmp_path / "s" / "best" / "model" / "model.json").is_file()
    assert "Leaderboard (3 trials)" in ok.stderr
    bad = cli("digits", "--budget", "soon", "--out", tmp_path / "t")
    assert bad.returncode == 1 and "'budget'" in bad.stderr
    no_db = cli("digits", "--budget", "10s", "--storage", f"sqlite:///{tmp_path}/no/such/dir/x.db",
                "--out", tmp_path / "u", "-q")
    assert no_db.returncode == 1 and "Cannot open the study storage" in no_db.stderr


def test_a_multi_label_search_selects_by_map_and_ends_with_tuned_thresholds(tmp_path):
    result = search("shapes_multi", budget="90s", trials=4, out=tmp_path / "m", families="classical",
                    progress=False)
    summary = json.loads((result.out / "search.json").read_text())
    assert summary["metric"] == "map"
    run = result.best_run
    test = run.metrics["test"]
    assert test["task"] == "multilabel" and summary["best_test"]["map"] == test["map"] > 0.5
    rule = run.model.decision_
    assert rule.kind == "multilabel" and len(rule.thresholds) == 3 and rule.target == "f1"
    done = result.leaderboard[result.leaderboard["state"] == "complete"]
    assert len(done) >= 2 and done["val_score"].between(0, 1).all()
    table = imgcls.predict(run.path, ["shapes_multi"], limit=5, progress=False)
    assert (table["error"] == "").all()


def test_metrics_are_checked_against_the_task(tmp_path):
    with pytest.raises(ConfigError, match="multi-label search selects by map or macro_f1"):
        search("shapes_multi", metric="accuracy", out=tmp_path / "a", budget="5s")
    with pytest.raises(ConfigError, match="metric=map is for multi-label"):
        search("digits", metric="map", out=tmp_path / "b", budget="5s")
