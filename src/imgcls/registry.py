"""A small name -> object registry, shared by datasets, features and model families.

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

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str]) -> str:
    """Return ' Did you mean X?' for the closest choice, or ''."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


class Registry(Generic[T]):
    """Maps names to objects; duplicates and unknown names are errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

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
        from .errors import ConfigError

        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self.names())
            hint = did_you_mean(name, self.names())
            raise ConfigError(f"Unknown {self.kind} '{name}'.{hint} Known: {known}.") from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
