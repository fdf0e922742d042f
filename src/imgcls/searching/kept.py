"""The trials a worker keeps on disk: their models and validation probabilities.

The end of a search needs more than the single best model: an ensemble is built from the
validation probabilities of the leading trials, and the models chosen are refitted with
the settings (and epochs) their trials were selected at. So each worker keeps its best
``KEEP`` trials, and the best of each family (an ensemble of both schools needs one of
each), in ``OUT/workers/ID/trials/N/``:

- ``model/``: the trial's fitted model (trained on the train split only);
- ``val.npz``: the dataset rows of the validation images and the model's probabilities;
- ``trial.json``: score, family, overrides, what fitting and predicting cost, epochs.

Trials that fall out of the kept set are deleted, so the disk used stays bounded.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..core.io import atomic_dir, atomic_write_text

KEEP = 8
TRIALS = "trials"
WORKERS = "workers"


@dataclass
class KeptTrial:
    """One kept trial; ``val()`` reads its validation rows and probabilities."""

    number: int
    score: float
    family: str  # the search family: classical, probe, finetune
    overrides: dict
    fit_seconds: float  # fitting on the train split (decoding excluded)
    predict_seconds: float  # predicting the validation split
    n_train: int
    n_val: int
    epochs: int | None = None  # epochs trained, for models that train in epochs
    best_epoch: int | None = None  # 0-based epoch the trainer restored
    classes: list[str] = field(default_factory=list)
    features_seconds: float | None = None  # of fit_seconds, computing what the cache keeps
    cached: bool = True  # whether features and embeddings were cached (a refit reuses them)
    study: str = ""  # the study the trial belongs to (another study may share the folder)
    folder: Path | None = None

    @property
    def model_dir(self) -> Path:
        return self.folder / "model"

    def val(self) -> tuple[np.ndarray, np.ndarray]:
        with np.load(self.folder / "val.npz") as npz:
            return npz["rows"], npz["proba"]

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "folder"}


def worker_dir(out: Path, worker: str) -> Path:
    return out / WORKERS / worker


def keep_trial(out: Path, worker: str, trial: KeptTrial, clf, config_yaml: str, rows: np.ndarray,
               proba: np.ndarray) -> Path:
    """Write one trial's folder atomically, then drop what no longer belongs to the kept set."""
    folder = worker_dir(out, worker) / TRIALS / str(trial.number)
    with atomic_dir(folder) as tmp:
        clf.save(tmp / "model")
        np.savez(tmp / "val.npz", rows=np.asarray(rows, dtype=np.int64), proba=np.asarray(proba, np.float32))
        atomic_write_text(tmp / "config.yaml", config_yaml)
        atomic_write_text(tmp / "trial.json", json.dumps(trial.to_json(), indent=1))
    _prune(worker_dir(out, worker) / TRIALS)
    return folder


def kept_trials(out: Path, study: str | None = None) -> list[KeptTrial]:
    """Every worker's kept trials in ``out`` (of ``study``, when given; a half-written folder
    is skipped), best first."""
    found = [t for folder in (out / WORKERS).glob(f"*/{TRIALS}") for t in _read(folder)
             if (study is None or t.study == study)
             and (t.folder / "val.npz").is_file() and (t.folder / "model").is_dir()]
    return sorted(found, key=lambda t: (-t.score, t.number))


def would_keep(out: Path, worker: str, family: str, score: float) -> bool:
    """Whether a trial with this score would enter this worker's kept set (saves a write)."""
    mine = _read(worker_dir(out, worker) / TRIALS)
    if len(mine) < KEEP or all(t.family != family for t in mine):
        return True
    return score > min(t.score for t in mine) or score > max(t.score for t in mine if t.family == family)


def _read(folder: Path) -> list[KeptTrial]:
    """The trials recorded in one worker's folder; a half-written (dot) folder is skipped."""
    out = []
    for record in folder.glob("*/trial.json"):
        if record.parent.name.startswith("."):  # a folder still being written
            continue
        try:
            out.append(KeptTrial(**json.loads(record.read_text()), folder=record.parent))
        except (OSError, ValueError, TypeError):
            continue
    return out


def _prune(folder: Path) -> None:
    trials = sorted(_read(folder), key=lambda t: (-t.score, t.number))
    keep = {t.number for t in trials[:KEEP]}
    for family in {t.family for t in trials}:
        keep.add(next(t.number for t in trials if t.family == family))
    for t in trials:
        if t.number not in keep:
            shutil.rmtree(t.folder, ignore_errors=True)
