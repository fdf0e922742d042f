"""The run folder: the one owner of its layout, and of the rule that opens a run or a model folder.

A run folder, as ``imgcls train`` writes it::

    config.yaml       the resolved config (what --resume and every later command read back)
    model/            model.json + weights: a model folder
    metrics.json      val / test metrics, timings, dataset and model facts
    predictions.csv   one row per evaluated image (path, label, prediction, p_<class>, metadata)
    skipped.csv       files that could not be decoded, with the reason
    report.html       the self-contained report
    model_card.md     what the model is, its data, metrics, audits, limitations, how to load it
    checkpoints/ logs/    fine-tuning's last and best epoch, and its metrics log
    export/           model.onnx, model.int8.onnx and export.json (``imgcls export``)

One rule, :meth:`Run.open`: a folder holding ``model/model.json`` is a run; a folder holding
``model.json`` is a model folder, and the folder above it is its run (with a config when
it has ``config.yaml``: a standalone model folder has none). Every stage that reads a run
(evaluate, predict, export, explain, audit, check, serve, search) asks this module.

Example:
    >>> run = Run.open("runs/digits-svm")                  # doctest: +SKIP
    >>> run.model.classes_[:3], run.export_dir             # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .config import RunConfig, config_to_yaml, resolve_config
from .core.errors import ConfigError, DataError
from .core.io import atomic_write_text
from .core.log import info
from .data import Dataset, assign_splits, load_dataset
from .models import ONNX, Classifier, load_model
from .models.base import MODEL_JSON, read_model_json
from .report.model_card import model_card

CONFIG = "config.yaml"
MODEL_DIR = "model"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
SKIPPED = "skipped.csv"
REPORT = "report.html"
MODEL_CARD = "model_card.md"
AUDIT_JSON = "audit.json"
CHECKPOINTS, LOGS, LAST_CHECKPOINT = "checkpoints", "logs", "last.ckpt"
EXPORT_DIR = "export"
EXPORT_JSON = "export.json"
ONNX_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}


@dataclass
class Run:
    """A run folder (or a model folder and the folder holding it): config, metrics, model, export.

    Attributes:
        path: The run folder, which holds ``model/`` (for a model folder: the folder above it).
        config: The resolved config, or None for a standalone model folder.
        metrics: The content of metrics.json ({} when there is none yet).
        model_dir: The model folder.
    """

    path: Path
    config: RunConfig | None
    metrics: dict
    model_dir: Path
    _model: Classifier | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """Open a run folder or a model folder (see the module docstring for the rule)."""
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"'{path}' does not exist (give a run folder or a model folder).")
        if (path / MODEL_JSON).is_file() and not (path / MODEL_DIR / MODEL_JSON).is_file():
            model_dir, root = path, path.parent
        else:
            model_dir, root = path / MODEL_DIR, path
        has_config = (root / CONFIG).is_file()
        if not has_config and not (model_dir / MODEL_JSON).is_file():
            raise ConfigError(f"'{path}' is not a run folder (config.yaml is missing) nor a model folder "
                              "(model.json is missing).")
        config = resolve_config(root / CONFIG) if has_config else None
        return cls(root, config, read_json(root / METRICS), model_dir)

    @classmethod
    def containing(cls, path: str | Path) -> Run | None:
        """The run a served path belongs to: a run or model folder, or a file in its export/."""
        path = Path(path)
        for folder in (path, path.parent, path.parent.parent):
            try:
                return cls.open(folder)
            except ConfigError:
                continue
        return None

    # ----- the model ---------------------------------------------------------------
    @property
    def model(self) -> Classifier:
        """The saved model, loaded on first use."""
        if self._model is None:
            self._model = load_model(self.model_dir)
        return self._model

    def model_json(self) -> dict:
        return read_model_json(self.model_dir)

    def model_digest(self) -> str:
        """sha256 over the model folder's files: what an export was made from."""
        digest = hashlib.sha256()
        for path in sorted(p for p in self.model_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
            digest.update(path.name.encode())
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()

    # ----- its data ------------------------------------------------------------------
    def require_config(self) -> RunConfig:
        if self.config is None:
            raise ConfigError(f"'{self.path}' is not a run folder (config.yaml is missing); this needs "
                              "the run's data, so give the run folder that holds the model.")
        return self.config

    def dataset(self) -> Dataset:
        """The run's data with the splits it was trained with (only tables are read)."""
        cfg = self.require_config()
        return assign_splits(load_dataset(cfg.data, cfg.task), cfg.split)

    def rows(self, data: str | Path | None = None, split: str | None = None) -> tuple[Dataset, str]:
        """The rows the run is evaluated on, before any image is decoded.

        Args:
            data: Other data (folder, manifest, built-in); None for the run's own data.
            split: ``train``, ``val``, ``test`` or ``all``; default ``test`` for the run's own
                data (split as at training) and ``all`` for other data.

        Returns:
            The dataset restricted to the split, and the split's name.
        """
        cfg = self.require_config()
        if data is None:
            ds, split = self.dataset(), split or "test"
        else:
            ds = load_dataset(cfg.data.model_copy(update={"source": str(data)}), cfg.task)
            split = split or "all"
        if split != "all":
            if "split" not in ds.table:
                raise DataError(f"'{ds.name}' has no split column; use --split all.")
            ds = ds.subset(np.flatnonzero(ds.table["split"].to_numpy() == split))
            if len(ds) == 0:
                raise DataError(f"'{ds.name}' has no rows in split '{split}'.")
        return ds, split

    def predictions(self) -> pd.DataFrame | None:
        """predictions.csv as strings (labels stay labels), or None when there is none."""
        path = self.path / PREDICTIONS
        if not path.is_file():
            return None
        return pd.read_csv(path, dtype=str, keep_default_na=False)

    def audit_reports(self) -> list[dict]:
        """The audit.json of every audit written inside the run (``RUN/audit-*``)."""
        return [r for r in (read_json(p) for p in sorted(self.path.glob(f"audit-*/{AUDIT_JSON}"))) if r]

    def write_model_card(self) -> Path:
        """model_card.md from the run's metrics and audits."""
        skipped = self.path / SKIPPED
        n_skipped = max(0, len(skipped.read_text().splitlines()) - 1) if skipped.is_file() else 0
        exportable = ONNX in self.metrics.get("model", {}).get("capabilities", [])
        text = model_card(self.path.name, self.metrics, n_skipped, self.audit_reports(), exportable,
                          str(self.path))
        atomic_write_text(self.path / MODEL_CARD, text)
        return self.path / MODEL_CARD

    # ----- its export ----------------------------------------------------------------
    @property
    def export_dir(self) -> Path:
        """Where ``imgcls export`` writes: ``RUN/export`` (for a model folder: beside it)."""
        return self.path / EXPORT_DIR

    def export_file(self, precision: str = "fp32", folder: Path | None = None) -> Path:
        return (folder or self.export_dir) / ONNX_FILES[precision]

    def export_is_current(self, exported: Path) -> bool:
        """True when ``exported``'s export.json was made from the model now in the run."""
        record = read_json(exported.parent / EXPORT_JSON)
        return record.get("model_sha256") == self.model_digest() and exported.name in record.get("files", {})

    def current_export(self, precision: str = "fp32") -> Path | None:
        """The run's exported ONNX file for ``precision`` when it exists and matches the model."""
        path = self.export_file(precision)
        if not path.is_file():
            return None
        if not self.export_is_current(path):
            info(f"{path} is older than the model in {self.path}; not used (run `imgcls export "
                 f"{self.path}` again)")
            return None
        return path


def read_json(path: Path) -> dict:
    """A JSON object file, or {} when it is missing or not valid."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_config(folder: Path, cfg: RunConfig) -> None:
    atomic_write_text(folder / CONFIG, config_to_yaml(cfg))


def write_results(folder: Path, metrics: dict, predictions: pd.DataFrame, skipped: pd.DataFrame) -> None:
    """predictions.csv, skipped.csv and metrics.json of a run or an evaluation folder."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / PREDICTIONS, predictions.to_csv(index=False))
    atomic_write_text(folder / SKIPPED, skipped.to_csv(index=False))
    atomic_write_text(folder / METRICS, json.dumps(metrics, indent=2))


def load_run_model(path: str | Path) -> Classifier:
    """The model of a run folder or a model folder (``imgcls.load_model``)."""
    return Run.open(path).model


RUN_COLUMNS = ["run", "data", "model", "task", "accuracy", "accuracy_ci", "macro_f1", "n_test",
               "seconds", "created"]
SORTABLE = ("accuracy", "macro_f1", "seconds", "created", "run")


def find_runs(folder: str | Path = "runs") -> list[Run]:
    """Every finished run (a run folder with metrics.json) at or below ``folder``, by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"'{folder}' is not a folder; give the folder that holds your runs.")
    found = []
    for config in sorted(folder.rglob(CONFIG)):
        root = config.parent
        hidden = any(part.startswith(".") for part in root.relative_to(folder).parts)
        if hidden or not (root / METRICS).is_file() or not (root / MODEL_DIR / MODEL_JSON).is_file():
            continue
        try:
            found.append(Run.open(root))
        except (ConfigError, DataError):
            continue  # a config this imgcls cannot read: not listed
    return found


def list_runs(folder: str | Path = "runs", sort: str = "accuracy") -> pd.DataFrame:
    """One row per run below ``folder``: data, model, task, test metrics, wall time, creation.

    Example:
        >>> list_runs("runs", sort="macro_f1").head(3)      # doctest: +SKIP
    """
    if sort not in SORTABLE:
        raise ConfigError(f"The 'sort' parameter must be one of {list(SORTABLE)}. Got {sort!r}.")
    folder = Path(folder)
    rows = [_run_row(run, folder) for run in find_runs(folder)]
    table = pd.DataFrame(rows, columns=RUN_COLUMNS)
    descending = sort not in ("run",)
    return table.sort_values(sort, ascending=not descending, na_position="last", kind="stable"
                             ).reset_index(drop=True)


def _run_row(run: Run, folder: Path) -> dict:
    m, model = run.metrics, run.metrics.get("model", {})
    test = m.get("test") or {}
    ci = (test.get("intervals") or {}).get("accuracy")
    mode = f" ({model['mode']})" if model.get("mode") else ""
    classes = len(m.get("dataset", {}).get("classes", {})) or len(model.get("classes", []))
    created = (run.path / METRICS).stat().st_mtime
    return {"run": run.path.relative_to(folder).as_posix() if run.path != folder else run.path.name,
            "data": m.get("dataset", {}).get("name", ""), "model": f"{model.get('family', '?')}{mode}",
            "task": f"single-label, {classes} classes",
            "accuracy": test.get("accuracy"), "accuracy_ci": f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "",
            "macro_f1": (test.get("macro") or {}).get("f1"), "n_test": test.get("n"),
            "seconds": (m.get("timings") or {}).get("total_seconds"),
            "created": pd.Timestamp(created, unit="s").strftime("%Y-%m-%d %H:%M")}
