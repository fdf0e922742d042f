"""Region-of-interest cropping: keep the foreground box, found by Otsu's threshold.

Useful when the object fills only part of the frame (a solar cell on a dark bench, a
leaf on a table): the model then spends its pixels on the object.

Example:
    >>> import numpy as np
    >>> img = np.zeros((100, 100), np.uint8); img[20:60, 30:90] = 200
    >>> crop_to_foreground(img).shape
    (40, 60)
"""

from __future__ import annotations

import numpy as np

ROI_METHODS = ("none", "otsu")
MIN_AREA = 0.05  # a smaller box is more likely noise than the object: keep the whole image


def foreground_box(img: np.ndarray, margin: float = 0.0) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the pixels brighter than Otsu's threshold."""
    from skimage.filters import threshold_otsu

    grey = img if img.ndim == 2 else img[..., :3].mean(axis=2)
    h, w = grey.shape
    if grey.min() == grey.max():
        return 0, h, 0, w
    mask = grey > threshold_otsu(grey)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if (bottom - top) * (right - left) < MIN_AREA * h * w:
        return 0, h, 0, w
    dy, dx = round(margin * (bottom - top)), round(margin * (right - left))
    return max(0, top - dy), min(h, bottom + dy), max(0, left - dx), min(w, right + dx)


def crop_to_foreground(img: np.ndarray, method: str = "otsu") -> np.ndarray:
    if method == "none":
        return img
    if method != "otsu":
        raise ValueError(f"Unknown ROI method {method!r}; use one of {ROI_METHODS}.")
    top, bottom, left, right = foreground_box(img)
    return img[top:bottom, left:right]
