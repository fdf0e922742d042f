"""Shared fixtures: a private cache folder, tiny synthetic image folders, a PostgreSQL server."""

from __future__ import annotations

import glob
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # for `from helpers import ...`


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("IMGCLS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def shapes_small():
    from imgcls.data.builtins import make_shapes

    return make_shapes(n_per_class=12, size=32, seed=0)


@pytest.fixture
def shapes_folder(tmp_path, shapes_small):
    from imgcls.data.builtins import write_image_folder

    return write_image_folder(shapes_small, tmp_path / "shapes")


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
