"""A small name -> object registry, one per kind of thing (datasets, features, model families,
explanation methods, export formats), open to other installed packages.

A registry holds its built-ins; when it names an entry-point group, the objects that
installed packages publish under that group join it the first time it is read, so a
plugin adds a model family or an export format without editing imgcls. In a plugin's
``pyproject.toml``::

    [project.entry-points."imgcls.models"]
    my_net = "my_package.models:MY_FAMILY"

Example:
    >>> animals = Registry[str]("animal")
    >>> @animals.register("cat")
    ... def make_cat():
    ...     return "meow"
    >>> animals.get("cat")()
    'meow'
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import ConfigError
from .log import warn

T = TypeVar("T")

ENTRY_POINT_GROUPS = ("imgcls.models", "imgcls.features", "imgcls.explainers", "imgcls.exporters")


def did_you_mean(name: str, choices: list[str]) -> str:
    """Return ' Did you mean X?' for the closest choice, or ''."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


class Registry(Generic[T]):
    """Maps names to objects; duplicates and unknown names are errors.

    Args:
        kind: What the registry holds, as a user reads it in errors ("model", "feature").
        group: Entry-point group whose objects join the registry when it is first read;
            an object must pass ``check`` (when given) to be accepted.
        check: ``check(name, obj)`` returns a reason (str) when a plugin's object is not of
            the right kind, None when it is.
    """

    def __init__(self, kind: str, group: str | None = None,
                 check: Callable[[str, object], str | None] | None = None) -> None:
        self.kind, self.group, self.check = kind, group, check
        self._items: dict[str, T] = {}
        self._plugins_loaded = group is None

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        self._load_plugins()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self.names())
            hint = did_you_mean(name, self.names())
            raise ConfigError(f"Unknown {self.kind} '{name}'.{hint} Known: {known}.") from None

    def names(self) -> list[str]:
        self._load_plugins()
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _load_plugins(self) -> None:
        """Add what installed packages publish under ``group``; a broken plugin is skipped
        with a warning naming it, never a crash of the tool."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for point in entry_points(group=self.group):
            where = f"{point.value} (package {point.dist.name if point.dist else '?'})"
            try:
                obj = point.load()
            except Exception as exc:  # noqa: BLE001 - a plugin's import error is its own
                warn(f"{self.kind} plugin '{point.name}' from {where} failed to load: "
                     f"{type(exc).__name__}: {exc}")
                continue
            reason = self.check(point.name, obj) if self.check is not None else None
            if reason:
                warn(f"{self.kind} plugin '{point.name}' from {where} is skipped: {reason}")
            elif point.name in self._items:
                warn(f"{self.kind} plugin '{point.name}' from {where} is skipped: the name is taken")
            else:
                self._items[point.name] = obj
