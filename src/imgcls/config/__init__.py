"""One typed configuration: defaults in code, then a YAML file, then ``key=value`` overrides.

Example:
    >>> cfg = resolve_config(overrides=["model.name=random_forest", "split.test=0.2"])
    >>> cfg.model.name, cfg.split.test
    ('random_forest', 0.2)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from ..core.errors import ConfigError
from ..core.registry import did_you_mean
from .base import DECODE_TIMEOUT, PIL_DEFAULT_MAX_PIXELS
from .base import Strict as _Strict
from .sections import (
    AuditConfig,
    CheckConfig,
    DataConfig,
    DecisionConfig,
    ExplainConfig,
    ModelConfig,
    SplitConfig,
    TaskConfig,
    TrainConfig,
)
from .serve import ServeConfig

__all__ = ["DECODE_TIMEOUT", "PIL_DEFAULT_MAX_PIXELS", "AuditConfig", "CheckConfig", "DataConfig",
           "DecisionConfig", "ExplainConfig", "ModelConfig", "RunConfig", "ServeConfig", "SplitConfig",
           "TaskConfig", "TrainConfig", "cache_root", "config_to_yaml", "parse_overrides", "resolve_config",
           "resolve_n_jobs"]

class RunConfig(_Strict):
    """Everything one training run needs; saved as the run's config.yaml."""

    data: DataConfig = Field(default_factory=DataConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    decision: DecisionConfig = Field(default_factory=DecisionConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    check: CheckConfig = Field(default_factory=CheckConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    out: str | None = Field(None, description="Run folder; default runs/<data>-<model>[-N].")
    n_jobs: int = Field(0, description="Worker processes/threads; 0 means one per CPU core.")
    cache: bool = Field(True, description="Cache decoded images and features on disk.")
    cache_dir: str | None = Field(None, description="Default $IMGCLS_CACHE_DIR or ~/.cache/imgcls.")


_FREE_FORM = {"model.params", "model.feature_params"}  # dict fields whose keys are not checked here


def _known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        keys.append(key)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_known_keys(annotation, f"{key}."))
    return keys


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=x"]`` into ``{"a.b": 1, "c": "x"}``; values are YAML scalars."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Override '{item}' must look like key=value, e.g. split.test=0.2.")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        parsed[key.strip()] = _number_or_same(value)
    return parsed


def _number_or_same(value: Any) -> Any:
    """YAML 1.1 reads '1e-3' as a string; a user typing it means a number."""
    if isinstance(value, str):
        try:
            return float(value) if value.strip().lower() not in ("nan", "inf", "-inf") else value
        except ValueError:
            return value
    return value


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    known = _known_keys(RunConfig)
    free_parent = next((p for p in _FREE_FORM if key.startswith(p + ".")), None)
    if key not in known and free_parent is None:
        raise ConfigError(f"Unknown config key '{key}'.{did_you_mean(key, known)}")
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"Config key '{key}' goes below a value that is not a section.")
    node[parts[-1]] = value


def _validate(tree: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        got = err.get("input")
        if err["type"] == "extra_forbidden":
            known = _known_keys(RunConfig)
            raise ConfigError(f"Unknown config key '{field}'.{did_you_mean(field, known)}") from None
        raise ConfigError(f"The '{field}' parameter {err['msg'].lower()}. Got {got!r}.") from None


def resolve_config(
    base: RunConfig | str | Path | Mapping[str, Any] | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> RunConfig:
    """Build a validated config from defaults, an optional YAML file or mapping, and overrides."""
    if isinstance(base, RunConfig):
        tree = base.model_dump()
    elif isinstance(base, str | Path):
        tree = load_yaml(Path(base))
    else:
        tree = dict(base or {})
    _validate(tree)  # report errors in the file before blaming overrides
    items = parse_overrides(overrides) if not isinstance(overrides, Mapping) else overrides
    for key, value in items.items():
        _set_dotted(tree, key, value)
    return _validate(tree)


def load_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"Config file '{path}' does not exist.")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file '{path}' is not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"Config file '{path}' must hold a mapping of sections.")
    return tree


def config_to_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def resolve_n_jobs(n_jobs: int) -> int:
    return n_jobs if n_jobs > 0 else max(1, os.cpu_count() or 1)


def cache_root(cfg: RunConfig) -> Path | None:
    if not cfg.cache:
        return None
    default = os.environ.get("IMGCLS_CACHE_DIR") or Path.home() / ".cache" / "imgcls"
    return Path(cfg.cache_dir or default)
