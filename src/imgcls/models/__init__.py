"""Models of both schools behind one Classifier interface, registered by family name."""

from .base import (
    CAPABILITIES,
    EPOCHS,
    FEATURE_GROUPS,
    GRADIENTS,
    ONNX,
    RESUME,
    TEST_TIME_VIEWS,
    VALIDATION,
    Classifier,
    Runtime,
)
from .families import MODELS, ModelFamily, build_model, create_model, list_models, load_model

__all__ = ["CAPABILITIES", "EPOCHS", "FEATURE_GROUPS", "GRADIENTS", "MODELS", "ONNX", "RESUME",
           "TEST_TIME_VIEWS", "VALIDATION", "Classifier", "ModelFamily", "Runtime", "build_model",
           "create_model", "list_models", "load_model"]
