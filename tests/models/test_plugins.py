"""Registries are open to other packages: a tiny plugin package, installed on the path as a
distribution (dist-info with entry points), adds a model family and a feature extractor
that `imgcls models` lists and `imgcls train` uses, without editing imgcls."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

PLUGIN = '''
import json
from pathlib import Path

import numpy as np

from imgcls.data import ImageSpec
from imgcls.models import Classifier, ModelFamily
from imgcls.models.base import FORMAT_VERSION, read_model_json, write_model_json


class NearestMean(Classifier):
    """Nearest class mean of the mean brightness: the smallest complete classifier."""

    school = "classical"
    backend = "numpy"

    def __init__(self, family="nearest_mean", image_size=16):
        self.family = family
        self.image_size = image_size

    @classmethod
    def from_config(cls, family, cfg, facts):
        size = 16 if cfg.model.image_size == "auto" else cfg.model.image_size
        return cls(family, int(size))

    @property
    def image_spec(self):
        return ImageSpec(size=int(self.image_size), channels=None)

    def fit(self, images, labels, val=None):
        x = self.check_input(images).reshape(len(images), -1).mean(axis=1)
        labels = np.asarray(labels, dtype=object)
        self.classes_ = np.unique(labels)
        self.means_ = np.array([x[labels == c].mean() for c in self.classes_])
        return self

    def raw_proba(self, images):
        x = self.check_input(images).reshape(len(images), -1).mean(axis=1)
        scores = -np.abs(x[:, None] - self.means_[None, :])
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def to_json(self):
        return {"format_version": FORMAT_VERSION, "school": self.school, "family": self.family,
                "classes": [str(c) for c in self.classes_], "image_spec": self.image_spec.to_dict(),
                "means": self.means_.tolist()}

    def save(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)
        write_model_json(Path(path), self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path):
        meta = read_model_json(path)
        model = cls(meta["family"], meta["image_spec"]["size"])
        model.classes_ = np.asarray(meta["classes"], dtype=object)
        model.means_ = np.asarray(meta["means"])
        return model


FAMILY = ModelFamily("nearest_mean", "nearest mean brightness (a plugin)", NearestMean)
NOT_A_FAMILY = "just a string"


def mean_tone(img):
    """Mean and spread of the grey values: a plugin feature extractor."""
    return np.array([img.mean() / 255.0, img.std() / 255.0])
'''

ENTRY_POINTS = """
[imgcls.models]
nearest_mean = imgcls_tiny_plugin:FAMILY
broken_family = imgcls_tiny_plugin:NOT_A_FAMILY

[imgcls.features]
mean_tone = imgcls_tiny_plugin:mean_tone
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    (site / "imgcls_tiny_plugin").mkdir()
    (site / "imgcls_tiny_plugin" / "__init__.py").write_text(PLUGIN)
    info = site / "imgcls_tiny_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: imgcls-tiny-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(ENTRY_POINTS))
    return site


def imgcls(plugin_path, *args, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "imgcls", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def test_a_plugin_family_is_listed_and_a_broken_one_is_skipped(plugin_path):
    out = imgcls(plugin_path, "models")
    assert out.returncode == 0, out.stderr
    assert "nearest_mean" in out.stdout and "plugin" in out.stdout
    assert "broken_family" not in out.stdout
    assert "broken_family" in out.stderr and "not an imgcls.models.ModelFamily" in out.stderr


def test_a_plugin_family_trains_and_predicts_and_a_plugin_feature_extracts(plugin_path, tmp_path):
    run = tmp_path / "run"
    out = imgcls(plugin_path, "train", "shapes", "--model", "nearest_mean", "--out", run, "-q")
    assert out.returncode == 0, out.stderr
    meta = json.loads((run / "model" / "model.json").read_text())
    assert meta["family"] == "nearest_mean" and len(meta["means"]) == 3
    assert imgcls(plugin_path, "evaluate", run, "-q").returncode == 0
    featured = imgcls(plugin_path, "train", "shapes", "--model", "logistic_regression", "--features",
                      "mean_tone+hist", "--out", tmp_path / "features", "-q")
    assert featured.returncode == 0, featured.stderr
    saved = json.loads((tmp_path / "features" / "model" / "model.json").read_text())
    assert saved["features"] == "mean_tone+hist"


def test_without_the_plugin_its_run_fails_clearly(plugin_path, tmp_path):
    run = tmp_path / "run"
    trained = imgcls(plugin_path, "train", "shapes", "--model", "nearest_mean", "--out", run, "-q")
    assert trained.returncode == 0
    out = subprocess.run([sys.executable, "-m", "imgcls", "evaluate", str(run), "-q"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 1 and "unknown model family 'nearest_mean'" in out.stderr
    assert "Traceback" not in out.stderr
