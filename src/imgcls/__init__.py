"""imgcls: image classification end to end, classical and deep, one interface.

Importing ``imgcls`` is light: heavy libraries load when a function needs them.

Example:
    >>> import imgcls
    >>> run = imgcls.train("digits", model="svm")            # doctest: +SKIP
    >>> run.metrics["accuracy"]                              # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "train": "imgcls.training",
    "Run": "imgcls.training",
    "evaluate": "imgcls.evaluation",
    "compute_metrics": "imgcls.evaluation",
    "predict": "imgcls.prediction",
    "export": "imgcls.exporting",
    "search": "imgcls.searching",
    "explain": "imgcls.explaining",
    "audit": "imgcls.auditing",
    "load_predictor": "imgcls.inference",
    "Predictor": "imgcls.inference",
    "load_dataset": "imgcls.data",
    "Dataset": "imgcls.data",
    "ImageSpec": "imgcls.data",
    "load_images": "imgcls.data",
    "assign_splits": "imgcls.data",
    "create_model": "imgcls.models",
    "load_model": "imgcls.models",
    "list_models": "imgcls.models",
    "Classifier": "imgcls.models",
    "FeatureSet": "imgcls.features",
    "RunConfig": "imgcls.config",
    "resolve_config": "imgcls.config",
    "list_datasets": "imgcls.data.builtins",
    "ImgclsError": "imgcls.errors",
    "check": "imgcls.checks",
    "ServeConfig": "imgcls.config",
    "create_app": "imgcls.serve",
    "run_server": "imgcls.serve",
    "CheckReport": "imgcls.checks",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'imgcls' has no attribute '{name}'")


def __dir__() -> list[str]:
    return __all__
