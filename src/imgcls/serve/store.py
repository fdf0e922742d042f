"""The models a server holds: name -> its loaded versions, swapped atomically on reload.

A request takes one :class:`LoadedModel` once and keeps that object to the end, so a reload
never changes the model under a request: the new version is loaded first, then becomes the
current one in a single assignment. The version it replaces stays loaded as the previous one
(at most :data:`MAX_VERSIONS` per name), reachable by its version string; an older one is
dropped, and requests still holding it finish on it.

Each model loads on its own: one that fails is recorded in ``errors`` (and reported by
``/readyz`` and ``/v1/models``) without stopping the others, and ``reload`` can load it later.

Example:
    >>> store = ModelStore.from_config(ServeConfig(models=["shapes=runs/shapes"]))  # doctest: +SKIP
    >>> store.load_all()                                                            # doctest: +SKIP
    >>> store.get("shapes").version                                                 # doctest: +SKIP
    '3f2a9c01b7de'
    >>> store.reload("shapes")                                                      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ServeConfig
from ..core.errors import ConfigError, ModelError
from ..core.log import info, warn
from ..core.registry import did_you_mean
from ..deploy import predictors
from ..deploy.loading import load_predictor
from ..deploy.predictors import Predictor
from ..runs import Run
from .batching import MicroBatcher
from .watching import DriftWatch, run_reference

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_VERSIONS = 2  # per name: the current version and the previous one


class UnknownModel(KeyError):
    """No model of that name is served."""

    def __str__(self) -> str:
        return str(self.args[0])


class NotLoaded(LookupError):
    """The model is served but has no loaded version (still loading, or it failed to load)."""

    def __init__(self, message: str, failed: bool = False) -> None:
        super().__init__(message)
        self.failed = failed


class UnknownVersion(LookupError):
    """The model is loaded, but not in the version asked for."""


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
    watch: DriftWatch | None = None  # what production images looked like (serve/watching.py)

    @property
    def browser_refusal(self) -> str | None:
        """Why the page cannot run this version in the browser; None when it can (an ONNX
        graph, with no region of interest, which the page cannot compute)."""
        if getattr(self.predictor, "onnx_file", None) is None:
            return (f"Model '{self.name}' runs on {self.predictor.backend} here, not from an ONNX export; "
                    f"export it (`imgcls export {self.path}`) and reload to run it in the browser.")
        if self.predictor.spec.roi not in (None, "none"):
            return (f"Model '{self.name}' crops a region of interest ({self.predictor.spec.roi}), which only "
                    "the server computes; use server-side inference.")
        return None


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
    return Run.open(path).model_digest()[:12]


def run_test_metrics(path: Path) -> dict[str, float] | None:
    """The scalar test metrics of the run holding ``path`` (``RUN/metrics.json``), if any."""
    run = Run.containing(path)
    test = run.metrics.get("test") if run is not None else None
    if not isinstance(test, dict):
        return None
    flat = {k: v for k, v in test.items() if _finite_number(v)}
    for group in ("macro", "weighted"):
        values = test.get(group)
        if isinstance(values, dict):
            flat.update({f"{group}_{k}": v for k, v in values.items() if _finite_number(v)})
    return flat or None


def _finite_number(value: object) -> bool:
    """A real number JSON can carry: NaN and infinities (which json.loads accepts) are left out."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class ModelStore:
    """Loaded models by name; ``reload`` swaps in a new version without dropping requests."""

    def __init__(self, sources: list[ModelSource], loader: Callable[[Path], Predictor],
                 max_batch: int = 32, max_wait_ms: float = 5.0,
                 on_batch: Callable[[str, int], None] | None = None,
                 drift: tuple[int, int, float] = (0, 100, 0.01)) -> None:
        if not sources:
            raise ConfigError("Give at least one model to serve.")
        self.sources = {s.name: s for s in sources}
        self.loader = loader
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self.on_batch = on_batch
        self.drift = drift  # (window, every, alpha); window 0: no watch
        self.errors: dict[str, str] = {}
        self._versions: dict[str, list[LoadedModel]] = {}  # newest (current) first
        self._lock = threading.Lock()
        self._loading = {name: threading.Lock() for name in self.sources}  # one load of a name at a time

    @classmethod
    def from_config(cls, config: ServeConfig) -> ModelStore:
        sources = parse_model_specs(config.models)
        threads = model_threads(config.threads, len(sources))

        def loader(path: Path) -> Predictor:
            return load_predictor(path, backend=config.backend, precision=config.precision,
                                  threads=threads, export=config.export)

        return cls(sources, loader, config.max_batch, config.max_wait_ms,
                   drift=(config.drift_window, config.drift_every, config.drift_alpha))

    @property
    def names(self) -> list[str]:
        return list(self.sources)

    @property
    def default(self) -> str:
        return self.names[0]

    @property
    def ready(self) -> bool:
        return all(self._versions.get(name) for name in self.sources)

    def get(self, name: str | None = None, version: str | None = None) -> LoadedModel:
        """The current version of ``name`` (the default model when None), or its loaded ``version``.

        Raises:
            UnknownModel: no model is called ``name`` (a KeyError).
            NotLoaded: ``name`` has no loaded version yet, or it failed to load (a LookupError).
            UnknownVersion: ``version`` is not one of the loaded versions (a LookupError).
        """
        name = self.default if name is None else name
        if name not in self.sources:
            raise UnknownModel(f"Unknown model '{name}'; served: {', '.join(self.names)}."
                               f"{did_you_mean(name, self.names)}")
        versions = self._versions.get(name)
        if not versions:
            if name in self.errors:
                raise NotLoaded(f"Model '{name}' failed to load: {self.errors[name]}", failed=True)
            raise NotLoaded(f"Model '{name}' is not loaded yet.")
        if version is None:
            return versions[0]
        for model in versions:
            if model.version == version:
                return model
        raise UnknownVersion(f"Model '{name}' has no loaded version '{version}'; loaded: "
                             f"{', '.join(m.version for m in versions)}.")

    def loaded(self) -> list[LoadedModel]:
        """The current version of every loaded model, in the order they were given."""
        return [self._versions[n][0] for n in self.sources if self._versions.get(n)]

    def versions(self, name: str) -> list[LoadedModel]:
        """The loaded versions of ``name``, current first (at most MAX_VERSIONS)."""
        return list(self._versions.get(name, ()))

    def load_all(self) -> dict[str, str]:
        """Load every model that is not loaded yet, each on its own (blocking).

        A model that fails is recorded in ``errors`` and the others still load.

        Returns:
            The errors by model name (empty when every model loaded).
        """
        for name in self.sources:
            with self._loading[name]:
                if self._versions.get(name):
                    continue
                try:
                    self._install(self._load(name))
                except Exception as exc:  # noqa: BLE001 - recorded per model; the others go on
                    self.errors[name] = str(exc) or type(exc).__name__
                    warn(f"model '{name}' failed to load from {self.sources[name].path}: {self.errors[name]}")
        return dict(self.errors)

    def reload(self, name: str) -> LoadedModel:
        """Load ``name`` again from its path, then make it the current version.

        Works on a model that is not loaded yet (say, one that failed at startup). The replaced
        version stays loaded as the previous one; the version before it is dropped (its queued
        requests finish first). When loading fails the loaded versions stay as they were.
        """
        if name not in self.sources:
            self.get(name)  # raises the unknown-model error
        with self._loading[name]:
            try:
                new = self._load(name)
            except Exception as exc:
                if not self._versions.get(name):
                    self.errors[name] = str(exc) or type(exc).__name__
                raise
            old, dropped = self._install(new)
        for model in dropped:
            model.batcher.close()  # finishes what is queued, then stops
        info(f"reloaded model '{name}': version {old.version if old else '-'} -> {new.version}")
        return new

    def close(self) -> None:
        for versions in list(self._versions.values()):
            for model in versions:
                model.batcher.close()

    def _load(self, name: str) -> LoadedModel:
        source = self.sources[name]
        predictor = self.loader(source.path)
        predictor.name = name
        predictor.version = predictor.version or model_version(source.path)
        batcher = MicroBatcher(batch_function(predictor), self.max_batch, self.max_wait_ms,
                               on_batch=lambda size: self._batch_done(name, size))
        window, every, alpha = self.drift
        watch = DriftWatch(name, predictor.version, run_reference(source.path), list(predictor.classes),
                           window, every, alpha) if window else None
        return LoadedModel(name, source.path, predictor, predictor.version, time.time(), batcher,
                           run_test_metrics(source.path), predictor.describe(), watch)

    def _batch_done(self, name: str, size: int) -> None:
        if self.on_batch is not None:
            self.on_batch(name, size)

    def _install(self, model: LoadedModel) -> tuple[LoadedModel | None, list[LoadedModel]]:
        """Make ``model`` current; returns the version it replaced and the versions dropped.

        A loaded version with the same version string is replaced (same files); of the others
        the newest stays as the previous version.
        """
        with self._lock:
            versions = self._versions.get(model.name, [])
            old = versions[0] if versions else None
            others = [m for m in versions if m.version != model.version]
            kept = [model, *others][:MAX_VERSIONS]
            self._versions[model.name] = kept  # one assignment: readers see old or new, never a mix
            self.errors.pop(model.name, None)
        dropped = [m for m in versions if not any(m is k for k in kept)]
        return old, dropped


def batch_function(predictor: Predictor) -> Callable[[np.ndarray], np.ndarray]:
    """What a model's micro-batcher runs: its probabilities, with the unknown score as one
    more column for a model with an unknown detector (see :func:`split_outputs`)."""
    if predictor.unknown is None:
        return predictor.predict_proba

    def run(batch: np.ndarray) -> np.ndarray:
        proba, scores = predictor.predict_outputs(batch)
        return np.column_stack([np.asarray(proba, np.float64), np.asarray(scores, np.float64)])

    return run


def split_outputs(out: np.ndarray, predictor: Predictor) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities, unknown scores or None) of what ``batch_function`` returned."""
    if predictor.unknown is None:
        return out, None
    return out[:, :-1], out[:, -1]


def model_threads(threads: int | None, n_models: int) -> int | None:
    """Inference threads per model: ``threads`` when set; else the cores shared among the models.

    One model gets None (the predictor's default: every core); several get
    ``max(1, cores // n_models)`` each, so they do not oversubscribe the CPU together.
    """
    if threads is not None or n_models <= 1:
        return threads
    return max(1, predictors.default_threads() // n_models)
