"""Faithfulness of an attribution map: deletion and insertion curves (Petsiuk et al., 2018).

Deletion blurs the most important pixels first, a growing share at each step, and tracks
the explained class's probability: a faithful map makes it fall fast, so a *lower* area
under the curve is better. Insertion starts from the blurred image and restores pixels in
the same order: a *higher* area is better. Pixels of equal importance (LIME's and SHAP's
flat superpixels) are taken in a seeded random order, so ties favour no one.

Example:
    >>> curve = faithfulness(view, image, attribution, target=1, steps=20)   # doctest: +SKIP
    >>> curve["deletion_auc"], curve["insertion_auc"]                         # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from .methods import blurred
from .view import ModelView


def pixel_order(attribution: np.ndarray, seed: int = 0) -> np.ndarray:
    """Flat pixel indices, most important first, ties in a seeded random order."""
    flat = np.asarray(attribution, dtype=np.float64).ravel()
    tiebreak = np.random.default_rng(seed).random(flat.size)
    return np.lexsort((tiebreak, -flat))


def perturbation_stack(image: np.ndarray, attribution: np.ndarray, steps: int, seed: int = 0
                       ) -> np.ndarray:
    """2 * (steps + 1) images: the deletion sequence, then the insertion sequence."""
    h, w = image.shape[:2]
    order = pixel_order(attribution, seed)
    blur = blurred(image)
    rank = np.empty(h * w, dtype=np.int64)
    rank[order] = np.arange(h * w)
    rank = rank.reshape(h, w)
    counts = np.rint(np.linspace(0, h * w, steps + 1)).astype(np.int64)
    deletion = [np.where((rank < c)[..., None], blur, image) for c in counts]
    insertion = [np.where((rank < c)[..., None], image, blur) for c in counts]
    return np.stack(deletion + insertion)


def faithfulness(view: ModelView, image: np.ndarray, attribution: np.ndarray, target: int,
                 steps: int = 20, seed: int = 0) -> dict:
    """Deletion and insertion curves of the ``target`` probability, and their areas (0 to 1)."""
    proba = view.proba(perturbation_stack(image, attribution, steps, seed))[:, target]
    deletion, insertion = proba[: steps + 1], proba[steps + 1 :]
    return {"deletion": deletion.round(5).tolist(), "insertion": insertion.round(5).tolist(),
            "deletion_auc": area(deletion), "insertion_auc": area(insertion)}


def area(curve: np.ndarray) -> float:
    """Trapezoidal area under a curve sampled at equal steps over the fraction 0 to 1."""
    curve = np.asarray(curve, dtype=np.float64)
    return float(np.trapezoid(curve, dx=1.0 / (len(curve) - 1)))
