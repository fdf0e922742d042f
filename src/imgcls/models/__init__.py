"""Models of both schools behind one Classifier interface, registered by family name."""

from .base import (
    CAPABILITIES,
    EMBEDDINGS,
    EPOCHS,
    FEATURE_GROUPS,
    FRAME_GRADIENTS,
    GRADIENTS,
    ONNX,
    REPRESENTATION,
    RESUME,
    SEQUENCE,
    TEST_TIME_VIEWS,
    TILES,
    VALIDATION,
    Classifier,
    Runtime,
)
from .choice import ModelChoice, choose_model
from .families import MODELS, ModelFamily, build_model, create_model, list_models, load_model

__all__ = ["CAPABILITIES", "EMBEDDINGS", "EPOCHS", "FEATURE_GROUPS", "FRAME_GRADIENTS", "GRADIENTS", "MODELS",
           "ONNX",
           "REPRESENTATION", "RESUME", "SEQUENCE",
           "TEST_TIME_VIEWS", "TILES", "VALIDATION", "Classifier", "ModelChoice",
           "ModelFamily", "Runtime", "build_model", "choose_model", "create_model", "list_models",
           "load_model"]
