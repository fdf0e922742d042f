"""Several `imgcls search` workers on one study: SQLite (lock-safe) and PostgreSQL."""

import os
import subprocess
import sys

BUDGET = "25s"  # each worker's first trial must finish within it on a busy 2-core machine


def _workers(storage: str, root, study: str = "shared") -> list[subprocess.CompletedProcess]:
    env = {**os.environ, "COLUMNS": "200"}
    procs = [subprocess.Popen([sys.executable, "-m", "imgcls", "search", "digits", "--budget", BUDGET,
                               "--families", "classical", "--storage", storage, "--study", study,
                               "--out", str(root / f"worker{k}"), "-q"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for k in range(2)]
    return [(p, *p.communicate(timeout=300)) for p in procs]


def _check_one_study(storage: str, results) -> None:
    import optuna

    from imgcls.searching.leaderboard import leaderboard

    for proc, _, err in results:
        assert proc.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.trials
    numbers = sorted(t.number for t in trials)
    assert numbers == list(range(len(trials)))  # none lost, none numbered twice
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    assert len({t.user_attrs.get("worker") for t in trials}) == 2  # both workers took trials
    defaults = [t for t in trials if t.params.get("estimator") == "svm" and t.params.get("C") == 10.0]
    assert len(defaults) == 1  # the known-good defaults ran once, not once per worker
    board = leaderboard(study)
    assert len(board) == len(trials) and board["trial"].is_unique


def test_two_workers_share_a_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    _check_one_study(storage, _workers(storage, tmp_path))


def test_two_workers_share_a_postgresql_study(tmp_path, postgres_url):
    _check_one_study(postgres_url, _workers(postgres_url, tmp_path))


def test_workers_racing_to_create_a_new_database_all_get_the_study(postgres_url):
    from concurrent.futures import ThreadPoolExecutor

    from imgcls.searching import open_study

    with ThreadPoolExecutor(4) as pool:
        studies = list(pool.map(lambda seed: open_study(postgres_url, "race", seed), range(4)))
    assert {s._study_id for s in studies} == {studies[0]._study_id}


def test_workers_racing_to_create_a_new_sqlite_file_all_get_the_study(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from imgcls.searching import open_study

    storage = f"sqlite:///{tmp_path / 'race.db'}"
    with ThreadPoolExecutor(4) as pool:
        studies = list(pool.map(lambda seed: open_study(storage, "race", seed), range(4)))
    assert {s._study_id for s in studies} == {studies[0]._study_id}
