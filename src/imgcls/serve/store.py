"""The models a server holds: name -> the version loaded now, swapped atomically on reload.

A request takes the current :class:`LoadedModel` once and keeps that object to the end, so
a reload never changes the model under a request: the new version is loaded first, then
replaces the old one in a single assignment; requests still holding the old one finish on it.

Example:
    >>> store = ModelStore.from_config(ServeConfig(models=["shapes=runs/shapes"]))  # doctest: +SKIP
    >>> store.load_all()                                                            # doctest: +SKIP
    >>> store.get("shapes").version                                                 # doctest: +SKIP
    '3f2a9c01b7de'
    >>> store.reload("shapes")                                                      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ServeConfig
from ..errors import ConfigError, ModelError
from ..inference import Predictor, load_predictor
from ..log import info
from ..registry import did_you_mean
from .batching import MicroBatcher

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ModelSource:
    """Where one served model comes from."""

    name: str
    path: Path


@dataclass
class LoadedModel:
    """One loaded version of a model with its own micro-batcher."""

    name: str
    path: Path
    predictor: Predictor
    version: str
    loaded_at: float
    batcher: MicroBatcher
    metrics: dict[str, float] | None = None
    describe: dict = field(default_factory=dict)


def parse_model_specs(specs: list[str]) -> list[ModelSource]:
    """``["runs/a", "b=runs/x.onnx"]`` -> sources; names are unique and URL-safe, paths exist."""
    sources: list[ModelSource] = []
    for spec in specs:
        name, sep, rest = spec.partition("=")
        if sep and NAME_PATTERN.match(name):
            path = Path(rest)
        else:
            path = Path(spec)
            name = path.stem if path.suffix == ".onnx" else path.resolve().name
        if not NAME_PATTERN.match(name):
            raise ConfigError(f"Model name '{name}' (from '{spec}') must be letters, digits, '_', '.' or "
                              "'-' (at most 64); give one as NAME=PATH.")
        if not path.exists():
            raise ModelError(f"'{path}' does not exist (give a run folder, model folder or .onnx file).")
        if any(s.name == name for s in sources):
            raise ConfigError(f"Two models are named '{name}'; name them apart as NAME=PATH.")
        sources.append(ModelSource(name, path))
    return sources


def model_version(path: Path) -> str:
    """A short sha256 of the model's files: the same string `imgcls predict` and exports use."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    from ..exporting import model_digest

    return model_digest(path)[:12]


def run_test_metrics(path: Path) -> dict[str, float] | None:
    """The scalar test metrics of the run holding ``path`` (``RUN/metrics.json``), if any."""
    for folder in (path, path.parent, path.parent.parent):
        file = folder / "metrics.json"
        if folder.is_dir() and file.is_file():
            try:
                test = json.loads(file.read_text()).get("test") or {}
            except (OSError, ValueError, AttributeError):
                return None
            flat = {k: v for k, v in test.items() if isinstance(v, int | float)}
            for group in ("macro", "weighted"):
                flat.update({f"{group}_{k}": v for k, v in (test.get(group) or {}).items()
                             if isinstance(v, int | float)})
            return flat or None
    return None


class ModelStore:
    """Loaded models by name; ``reload`` swaps in a new version without dropping requests."""

    def __init__(self, sources: list[ModelSource], loader: Callable[[Path], Predictor],
                 max_batch: int = 32, max_wait_ms: float = 5.0,
                 on_batch: Callable[[str, int], None] | None = None) -> None:
        if not sources:
            raise ConfigError("Give at least one model to serve.")
        self.sources = {s.name: s for s in sources}
        self.loader = loader
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self.on_batch = on_batch
        self.errors: dict[str, str] = {}
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: ServeConfig) -> ModelStore:
        def loader(path: Path) -> Predictor:
            return load_predictor(path, backend=config.backend, precision=config.precision,
                                  threads=config.threads)

        return cls(parse_model_specs(config.models), loader, config.max_batch, config.max_wait_ms)

    @property
    def names(self) -> list[str]:
        return list(self.sources)

    @property
    def default(self) -> str:
        return self.names[0]

    @property
    def ready(self) -> bool:
        return all(name in self._models for name in self.sources)

    def get(self, name: str | None = None) -> LoadedModel:
        """The current version of ``name`` (the default model when None)."""
        name = self.default if name is None else name
        if name not in self.sources:
            raise KeyError(f"Unknown model '{name}'; served: {', '.join(self.names)}."
                           f"{did_you_mean(name, self.names)}")
        try:
            return self._models[name]
        except KeyError:
            raise LookupError(f"Model '{name}' is not loaded yet.") from None

    def loaded(self) -> list[LoadedModel]:
        return [self._models[n] for n in self.sources if n in self._models]

    def load_all(self) -> None:
        """Load every model that is not loaded yet (blocking); raises on the first failure."""
        for name in self.sources:
            if name not in self._models:
                try:
                    self._install(self._load(name))
                except Exception as exc:
                    self.errors[name] = str(exc)
                    raise

    def reload(self, name: str) -> LoadedModel:
        """Load ``name`` again from its path, then swap it in; in-flight requests keep the old one."""
        if name not in self.sources:
            self.get(name)  # raises the unknown-model error
        new = self._load(name)
        old = self._install(new)
        if old is not None:
            old.batcher.close()  # finishes what is queued, then stops
        info(f"reloaded model '{name}': version {old.version if old else '-'} -> {new.version}")
        return new

    def close(self) -> None:
        for model in self.loaded():
            model.batcher.close()

    def _load(self, name: str) -> LoadedModel:
        source = self.sources[name]
        predictor = self.loader(source.path)
        predictor.name = name
        predictor.version = predictor.version or model_version(source.path)
        batcher = MicroBatcher(predictor.predict_proba, self.max_batch, self.max_wait_ms,
                               on_batch=lambda size: self._batch_done(name, size))
        return LoadedModel(name, source.path, predictor, predictor.version, time.time(), batcher,
                           run_test_metrics(source.path), predictor.describe())

    def _batch_done(self, name: str, size: int) -> None:
        if self.on_batch is not None:
            self.on_batch(name, size)

    def _install(self, model: LoadedModel) -> LoadedModel | None:
        with self._lock:
            old = self._models.get(model.name)
            self._models[model.name] = model
            self.errors.pop(model.name, None)
        return old
