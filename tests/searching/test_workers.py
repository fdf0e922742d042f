"""Several `imgcls search` workers on one study: SQLite (lock-safe) and PostgreSQL."""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

BUDGET = "15s"


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


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture
def postgres_url():
    """A throw-away PostgreSQL server on a free loopback port (`make test` installs PostgreSQL
    with tools/ensure-debian-package.sh when it is missing)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server programs are not installed "
                    "(make test installs them with tools/ensure-debian-package.sh)")
    data = tempfile.mkdtemp(prefix="imgcls-pg-", dir="/tmp")
    as_user = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_user, initdb, "-D", data, "-U", "postgres", "--auth=trust"], check=True,
                   capture_output=True)
    subprocess.run([*as_user, pg_ctl, "-D", data, "-l", f"{data}/log", "-w", "-o",
                    f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"], check=True,
                   capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "fast", "stop"], capture_output=True)
        time.sleep(0.2)
        shutil.rmtree(data, ignore_errors=True)


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
