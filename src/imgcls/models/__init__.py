"""Models of both schools behind one Classifier interface, registered by family name."""

from . import classical, deep  # noqa: F401 - register the families of both schools
from .base import MODELS, Classifier, ModelFamily, create_model, list_models, load_model

__all__ = ["MODELS", "Classifier", "ModelFamily", "create_model", "list_models", "load_model"]
