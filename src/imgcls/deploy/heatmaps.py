"""Tile heat maps of a tiled (MIL) model's predictions: which tiles of each large image carried
the label, painted on a thumbnail and written as ``<name>.heatmap.png`` (and the scores as
``<name>.heatmap.npy``, NaN where no tile was kept).

Example:
    >>> imgcls.predict("runs/slides", ["slide.tif"], heatmaps="maps/")      # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import PIL_DEFAULT_MAX_PIXELS
from ..core.errors import ConfigError, ImageDecodeError
from ..core.io import atomic_open
from ..data.decode import decode_image
from ..data.tiles import TILED, ArrayTiles, heatmap, tile_bag
from ..models import TILES

OVERLAY_ALPHA = 0.55


def tiled_model(predictor):
    """The in-process model behind ``predictor`` if it learns from tiles, else a clear error."""
    clf = getattr(predictor, "clf", None)
    if clf is None or not clf.supports(TILES):
        raise ConfigError("Tile heat maps (--heatmaps) need a model trained on tiles (data.tiles=SIZE, "
                          "model.name=mil), run in-process.")
    return clf


def image_heatmap(clf, path: str | Path, max_pixels: int | None = PIL_DEFAULT_MAX_PIXELS
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(thumbnail (h, w[, 3]) uint8, tile scores painted on it (h, w) float, NaN off the tiles)."""
    spec = clf.image_spec
    source = decode_image(path, max_pixels, TILED, window=spec.window)
    source = source if hasattr(source, "thumbnail") else ArrayTiles(source)
    thumb, _ = source.thumbnail()
    shape = source.shape
    bag, boxes = tile_bag(source, spec)
    scores = clf.tile_scores(bag[None])[0][:len(boxes)]
    return thumb, heatmap(shape, boxes, scores, side=max(thumb.shape[:2]))


def overlay(thumb: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The thumbnail in grey under the heat map (inferno, scaled to the image's highest tile)."""
    import matplotlib

    top = float(np.nanmax(heat)) if np.isfinite(heat).any() else 0.0
    level = np.nan_to_num(heat / top if top > 0 else heat, nan=0.0)
    colour = matplotlib.colormaps["inferno"](level)[..., :3] * 255
    alpha = np.where(np.isfinite(heat), OVERLAY_ALPHA, 0.0)[..., None]
    grey = thumb.astype(np.float64) if thumb.ndim == 2 else thumb[..., :3].astype(np.float64).mean(axis=2)
    return np.clip(grey[..., None] * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)


def write_heatmaps(predictor, paths: list[str], folder: str | Path, errors: list[str]) -> list[str]:
    """One overlay PNG and score array per readable image; returns the PNG paths ('' where the
    image had an error or could not be read again)."""
    from PIL import Image

    clf = tiled_model(predictor)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written, seen = [], set()
    for path, error in zip(paths, errors, strict=True):
        if error:
            written.append("")
            continue
        stem = Path(path).stem
        name = stem if stem not in seen else f"{stem}-{len(seen)}"
        seen.add(name)
        try:
            thumb, heat = image_heatmap(clf, path)
        except ImageDecodeError:
            written.append("")
            continue
        target = folder / f"{name}.heatmap.png"
        with atomic_open(target, "wb") as fh:
            Image.fromarray(overlay(thumb, heat)).save(fh, format="PNG")
        with atomic_open(folder / f"{name}.heatmap.npy", "wb") as fh:
            np.save(fh, heat.astype(np.float32))
        written.append(str(target))
    return written
