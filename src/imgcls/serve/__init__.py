"""The REST server and web page: ``create_app(settings)`` and ``run_server(config)``.

Importing this package loads FastAPI; ``import imgcls`` does not.

Example:
    >>> from imgcls.config import ServeConfig
    >>> from imgcls.serve import create_app
    >>> app = create_app(ServeConfig(models=["runs/shapes"]))     # doctest: +SKIP
"""

from __future__ import annotations

from ..config import ServeConfig
from .app import create_app
from .server import run_server
from .store import ModelStore

__all__ = ["ModelStore", "ServeConfig", "create_app", "run_server"]
