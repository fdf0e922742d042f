"""The base of every config model: strict fields, and errors that name the key.

Example:
    >>> class Demo(Strict):
    ...     size: int = 1
    >>> Demo.from_options(size="big")       # doctest: +SKIP
    ConfigError: The 'size' parameter input should be a valid integer...
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from ..core.errors import ConfigError

PIL_DEFAULT_MAX_PIXELS = 89_478_485
DECODE_TIMEOUT = 60.0  # seconds one file may take; a legitimate 89-megapixel image takes a few


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    _key_prefix: ClassVar[str] = ""  # how users name the fields, e.g. 'explain.' in key=value overrides

    @classmethod
    def from_options(cls, **values: Any) -> Self:
        """Validate like the constructor, raising ConfigError with the field's name."""
        try:
            return cls(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = cls._key_prefix + ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"The '{field}' parameter {err['msg'].lower()}. "
                              f"Got {err.get('input')!r}.") from None
