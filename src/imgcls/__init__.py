"""imgcls: image classification end to end, classical and deep, one interface.

Importing ``imgcls`` is light: heavy libraries load when a function needs them.

Example:
    >>> import imgcls
    >>> run = imgcls.train("digits", model="svm")            # doctest: +SKIP
    >>> run.metrics["test"]["accuracy"]                      # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from .core.version import __version__

# public name -> (module, attribute): the verbs, their results, and the pieces to build on
_LAZY = {
    # verbs
    "check": ("imgcls.checks", "check"),
    "train": ("imgcls.training", "train"),
    "evaluate": ("imgcls.evaluation", "evaluate"),
    "predict": ("imgcls.deploy.prediction", "predict"),
    "export": ("imgcls.deploy.exporting", "export"),
    "explain": ("imgcls.review.explaining", "explain"),
    "audit": ("imgcls.review.auditing", "audit"),
    "monitor": ("imgcls.deploy.monitoring", "monitor"),
    "search": ("imgcls.searching", "search"),
    "label": ("imgcls.labelling", "label"),
    "run_server": ("imgcls.serve", "run_server"),
    "create_app": ("imgcls.serve", "create_app"),
    # their results
    "CheckReport": ("imgcls.checks", "CheckReport"),
    "Run": ("imgcls.runs", "Run"),
    "EvaluationResult": ("imgcls.evaluation", "EvaluationResult"),
    "ExportResult": ("imgcls.deploy.exporting", "ExportResult"),
    "ExplainResult": ("imgcls.review.explaining", "ExplainResult"),
    "AuditResult": ("imgcls.review.auditing", "AuditResult"),
    "MonitorResult": ("imgcls.deploy.monitoring", "MonitorResult"),
    "SearchResult": ("imgcls.searching", "SearchResult"),
    "LabelSession": ("imgcls.labelling", "LabelSession"),
    # building blocks
    "load_dataset": ("imgcls.data", "load_dataset"),
    "list_datasets": ("imgcls.data.builtins", "list_datasets"),
    "Dataset": ("imgcls.data", "Dataset"),
    "ImageSpec": ("imgcls.data", "ImageSpec"),
    "prepare_images": ("imgcls.data", "prepare_images"),
    "load_images": ("imgcls.data", "load_images"),
    "create_model": ("imgcls.models", "create_model"),
    "list_models": ("imgcls.models", "list_models"),
    "load_model": ("imgcls.runs", "load_run_model"),
    "list_runs": ("imgcls.runs", "list_runs"),
    "Classifier": ("imgcls.models", "Classifier"),
    "Runtime": ("imgcls.models", "Runtime"),
    "load_predictor": ("imgcls.deploy.loading", "load_predictor"),
    "Predictor": ("imgcls.deploy.predictors", "Predictor"),
    "compute_metrics": ("imgcls.evaluation.metrics", "compute_metrics"),
    # configuration and errors
    "RunConfig": ("imgcls.config", "RunConfig"),
    "ServeConfig": ("imgcls.config", "ServeConfig"),
    "resolve_config": ("imgcls.config", "resolve_config"),
    "ImgclsError": ("imgcls.core.errors", "ImgclsError"),
    "ConfigError": ("imgcls.core.errors", "ConfigError"),
    "DataError": ("imgcls.core.errors", "DataError"),
    "ModelError": ("imgcls.core.errors", "ModelError"),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'imgcls' has no attribute '{name}'")


def __dir__() -> list[str]:
    return __all__
