"""Model-randomisation sanity check (Adebayo et al., 2018, "Sanity checks for saliency maps").

An explanation that stays the same when the network's weights are replaced by random ones
shows the image, not what the model learned. We explain the same images with the trained
network and with a copy whose every layer is re-initialised, and compare the maps by
Spearman rank correlation of their absolute values: a method passes when the correlation
is low.

Example:
    >>> check = randomisation_check(view, images, "gradcam")     # doctest: +SKIP
    >>> check["passed"], round(check["mean_spearman"], 2)        # doctest: +SKIP
    (True, 0.08)
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from ...config import ExplainConfig
from ...core.errors import ConfigError
from .methods import METHODS, Attribute
from .view import ModelView

GRADIENT_METHODS = ("gradcam", "integrated_gradients")
MAX_SPEARMAN = 0.5


def randomised(module, seed: int = 0):
    """A deep copy of ``module`` with every layer's parameters and statistics re-initialised."""
    import torch

    clone = copy.deepcopy(module)
    torch.manual_seed(seed)
    for layer in clone.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
        if hasattr(layer, "reset_running_stats"):
            layer.reset_running_stats()
    return clone.eval()


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    rho = spearmanr(np.abs(a).ravel(), np.abs(b).ravel()).statistic
    return 0.0 if np.isnan(rho) else float(rho)


def randomisation_check(view: ModelView, images: list[np.ndarray], method: str | Attribute = "gradcam",
                        cfg: ExplainConfig | None = None, seed: int = 0) -> dict:
    """Spearman correlation of each image's map under the trained and a randomised network.

    Args:
        view: The trained model (deep school).
        images: Prepared uint8 (H, W, 3) images.
        method: A gradient method, which reads the network directly, or an attribution
            function ``(view, image, target, cfg) -> map`` to check.
    """
    if isinstance(method, str) and method not in GRADIENT_METHODS:
        raise ConfigError(f"The randomisation check runs on {', '.join(GRADIENT_METHODS)}; "
                          f"got '{method}'.")
    cfg = cfg or ExplainConfig()
    attribute = METHODS.get(method).attribute if isinstance(method, str) else method
    random_view = dataclasses.replace(view, _logits=randomised(view.logits_module(), seed))
    rows = []
    for image in images:
        target = view.target_index(None, view.proba(image)[0])
        trained = attribute(view, image, target, cfg)
        scrambled = attribute(random_view, image, target, cfg)
        rows.append(spearman(trained, scrambled))
    mean = float(np.mean(rows)) if rows else float("nan")
    name = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    return {"method": name, "spearman": [round(r, 4) for r in rows], "mean_spearman": mean,
            "threshold": MAX_SPEARMAN, "passed": bool(rows) and mean < MAX_SPEARMAN}
