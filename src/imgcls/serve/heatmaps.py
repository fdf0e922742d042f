"""Heat maps for the web page and `POST /v1/models/{name}/explain`: why a model chose a label.

A network gets Grad-CAM (a fraction of a second), computed with the run's PyTorch model,
loaded on first use; a classical model or a bare ``.onnx`` file gets occlusion through the
served predictor (a few seconds). One map at a time per model version: the gradient hooks
of two concurrent Grad-CAM calls on one network would mix.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..config import ExplainConfig
from ..core.errors import ConfigError
from ..models import GRADIENTS
from ..review.explaining import ModelView, quick_method
from ..review.explaining.gallery import overlay_uri
from ..runs import Run
from .errors import ApiError
from .store import MAX_VERSIONS, LoadedModel


@dataclass
class HeatmapMaker:
    """Explanation views per loaded model version, built on first use; like the store, at most
    ``MAX_VERSIONS`` per model name are kept."""

    views: dict[tuple[str, str], tuple[object, threading.Lock]] = field(default_factory=dict)
    guard: threading.Lock = field(default_factory=threading.Lock)

    def view(self, model: LoadedModel):
        key = (model.name, model.version)
        with self.guard:
            if key not in self.views:
                self.views[key] = (ModelView(_classifier(model), model.predictor), threading.Lock())
                same_name = [k for k in self.views if k[0] == model.name]
                for old in same_name[:-MAX_VERSIONS]:  # reloaded away: free its network
                    del self.views[old]
            return self.views[key]

    def explain(self, model: LoadedModel, image: np.ndarray, target: str | None) -> dict:
        """Blocking (run it in a thread): the overlay of ``image``, already prepared by the
        model's predictor, and what it explains."""
        view, lock = self.view(model)
        prepared = view.from_model_input(image)
        proba = view.proba(prepared)[0]
        try:
            k = view.target_index(target, proba)
        except ConfigError as exc:
            raise ApiError(422, "unknown_target", str(exc)) from None
        method = quick_method(view)
        started = time.perf_counter()
        with lock:
            attribution = method.attribute(view, prepared, k, ExplainConfig())
        return {"method": method.name, "label": view.classes[k],
                "probability": float(np.clip(proba[k], 0, 1)), "heatmap": overlay_uri(prepared, attribution),
                "seconds": round(time.perf_counter() - started, 3)}


def _classifier(model: LoadedModel):
    """The saved Classifier of a run or model folder when it has a network (Grad-CAM); None for
    a bare .onnx file or a model explained as a black box through the served predictor."""
    if model.path.suffix == ".onnx" or not model.path.is_dir():
        return None
    clf = Run.open(model.path).model
    return clf if clf.supports(GRADIENTS) else None
