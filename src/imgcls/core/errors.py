"""Exceptions raised by imgcls. Every message names the file or field and what to do."""

from __future__ import annotations


class ImgclsError(Exception):
    """Base class: the CLI turns these into a one-line error and exit code 1."""


class ConfigError(ImgclsError, ValueError):
    """A configuration key or value is wrong."""


class DataError(ImgclsError):
    """A dataset, manifest or split cannot be used as given."""


class ModelError(ImgclsError):
    """A model folder is missing, corrupt or untrusted."""


class ImageDecodeError(ImgclsError):
    """One image cannot be decoded; callers skip it and record the reason."""

    def __init__(self, path: str, reason: str, kind: str = "unreadable") -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.kind = kind  # empty, not_image, truncated, too_many_pixels, no_pixel_data, unreadable
