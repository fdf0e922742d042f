"""Shared fixtures: a private cache folder and tiny synthetic image folders."""

from __future__ import annotations

import pathlib
import sys

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
