"""Named, composable image -> vector extractors for the classical school.

``FeatureSet("hog+lbp+color")`` concatenates the named extractors. Extraction runs in
parallel with a progress bar and is cached on disk, keyed by the images' content and
the feature configuration.

Example:
    >>> import numpy as np
    >>> images = np.zeros((4, 64, 64), dtype=np.uint8)
    >>> FeatureSet("hog+lbp").transform(images, progress=False).shape[0]
    4
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..core.io import cached_rows
from ..core.progress import progress_bar
from ..core.registry import Registry

FEATURES_VERSION = "1"
Extractor = Callable[..., np.ndarray]
FEATURES: Registry[Extractor] = Registry(
    "feature", group="imgcls.features",
    check=lambda name, obj: None if callable(obj) else "a feature extractor is a function image -> vector")


def _grey(img: np.ndarray) -> np.ndarray:
    import cv2

    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def _hist(values: np.ndarray, bins: int, upper: float = 256.0) -> np.ndarray:
    counts, _ = np.histogram(values, bins=bins, range=(0.0, upper))
    return counts / max(1, values.size)


def _grid(img: np.ndarray, cells: int):
    h, w = img.shape[:2]
    for r in range(cells):
        for c in range(cells):
            yield img[r * h // cells : (r + 1) * h // cells, c * w // cells : (c + 1) * w // cells]


@FEATURES.register("hist")
def intensity_histogram(img: np.ndarray, bins: int = 32) -> np.ndarray:
    """Grey-level histogram."""
    return _hist(_grey(img), bins)


@FEATURES.register("color")
def colour_histograms(img: np.ndarray, bins: int = 16) -> np.ndarray:
    """RGB and HSV histograms; a grey image gives its grey-level histogram."""
    import cv2

    if img.ndim == 2:
        return _hist(img, 2 * bins)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    parts = [_hist(img[..., k], bins) for k in range(3)]
    parts.append(_hist(hsv[..., 0], bins, upper=180.0))
    parts += [_hist(hsv[..., k], bins // 2) for k in (1, 2)]
    return np.concatenate(parts)


@FEATURES.register("edges")
def edge_features(img: np.ndarray, grid: int = 4, orientations: int = 12) -> np.ndarray:
    """Canny edge density per grid cell and a magnitude-weighted Sobel orientation histogram."""
    import cv2

    grey = _grey(img)
    median = float(np.median(grey))
    edges = cv2.Canny(grey, int(max(0, 0.66 * median)), int(min(255, 1.33 * median) + 1)) > 0
    density = [cell.mean() for cell in _grid(edges, grid)]
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    magnitude, angle = cv2.cartToPolar(gx, gy)
    hist, _ = np.histogram(angle % np.pi, bins=orientations, range=(0, np.pi), weights=magnitude)
    return np.concatenate([density, hist / max(1e-6, float(magnitude.sum()))])


@FEATURES.register("lbp")
def lbp_histograms(img: np.ndarray, radii: tuple[int, ...] = (1, 2), grid: int = 4) -> np.ndarray:
    """Uniform LBP histograms at each radius (8 points at radius 1, 16 beyond), whole image
    and per grid cell."""
    from skimage.feature import local_binary_pattern

    grey = _grey(img)
    parts = []
    for radius in radii:
        points = 8 if radius == 1 else 16
        codes = local_binary_pattern(grey, points, radius, method="uniform")
        cells = [codes] + (list(_grid(codes, grid)) if grid > 1 else [])
        parts += [_hist(cell, points + 2, upper=points + 2) for cell in cells]
    return np.concatenate(parts)


@FEATURES.register("glcm")
def glcm_statistics(img: np.ndarray, levels: int = 32, distances: tuple[int, ...] = (1, 2, 4)
                    ) -> np.ndarray:
    """Grey-level co-occurrence statistics: mean and spread over four angles per distance."""
    from skimage.feature import graycomatrix, graycoprops

    grey = (_grey(img).astype(np.uint16) * levels // 256).astype(np.uint8)
    angles = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    matrix = graycomatrix(grey, list(distances), angles, levels=levels, symmetric=True, normed=True)
    props = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
    values = [graycoprops(matrix, p) for p in props]  # each (distances, angles)
    return np.concatenate([np.r_[v.mean(axis=1), np.ptp(v, axis=1)] for v in values])


@FEATURES.register("hog")
def hog_features(img: np.ndarray, cells: int = 10, orientations: int = 9) -> np.ndarray:
    """Histogram of oriented gradients over a ``cells`` x ``cells`` grid, 2x2 blocks."""
    from skimage.feature import hog

    grey = _grey(img)
    ppc = max(2, grey.shape[0] // cells)
    return hog(grey, orientations=orientations, pixels_per_cell=(ppc, ppc),
               cells_per_block=(2, 2), block_norm="L2-Hys", feature_vector=True)


@FEATURES.register("pixels")
def raw_pixels(img: np.ndarray, size: int = 32) -> np.ndarray:
    """Raw pixel values in [0, 1], downsized to at most ``size`` x ``size``."""
    import cv2

    if img.shape[0] > size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img.reshape(-1) / 255.0


def parse_feature_spec(spec: str) -> list[str]:
    names = [n.strip() for n in spec.split("+") if n.strip()]
    if not names:
        raise ConfigError("The 'model.features' parameter must name at least one extractor.")
    for name in names:
        FEATURES.get(name)  # raises with a suggestion for unknown names
    if len(set(names)) != len(names):
        raise ConfigError(f"The 'model.features' parameter repeats an extractor: '{spec}'.")
    return names


def auto_features(image_size: int, channels: int) -> str:
    """Raw pixels for tiny images; gradients, texture, edges and intensity otherwise."""
    if image_size <= 32:
        return "pixels"
    return "hog+lbp+glcm+edges+" + ("color" if channels == 3 else "hist")


@dataclass
class FeatureSet:
    """Concatenation of named extractors, with per-extractor keyword parameters."""

    spec: str
    params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = parse_feature_spec(self.spec)
        unknown = set(self.params) - set(self.names)
        if unknown:
            raise ConfigError(f"Feature parameters given for unused extractor(s) {sorted(unknown)}.")

    def extract_one(self, img: np.ndarray) -> np.ndarray:
        parts = [FEATURES.get(n)(img, **self.params.get(n, {})) for n in self.names]
        return np.concatenate([np.asarray(p, dtype=np.float32).ravel() for p in parts])

    def groups(self, img: np.ndarray) -> dict[str, slice]:
        """Which columns each extractor fills, e.g. for per-group importance."""
        out, start = {}, 0
        for name in self.names:
            width = np.asarray(FEATURES.get(name)(img, **self.params.get(name, {}))).size
            out[name] = slice(start, start + width)
            start += width
        return out

    def _extract_chunk(self, images: np.ndarray) -> np.ndarray:
        return np.stack([self.extract_one(np.asarray(img)) for img in images])

    def transform(self, images: np.ndarray, n_jobs: int = 1, cache_dir: Path | None = None,
                  progress: bool = True) -> np.ndarray:
        """Feature matrix (N, D) float32 for a stack of same-sized uint8 images."""
        if len(images) == 0:
            raise ConfigError("No images to extract features from.")
        return cached_rows(cache_dir, "features", [FEATURES_VERSION, self.spec, self.params], images,
                           lambda todo: self._run(todo, n_jobs, progress))

    def _run(self, images: np.ndarray, n_jobs: int, progress: bool) -> np.ndarray:
        chunk = 64
        starts = range(0, len(images), chunk)
        with progress_bar(len(images), f"Features {self.spec}", progress) as advance:
            if n_jobs <= 1 or len(images) <= 2 * chunk:
                blocks = []
                for s in starts:
                    blocks.append(self._extract_chunk(images[s : s + chunk]))
                    advance(len(blocks[-1]))
                return np.concatenate(blocks)
            from joblib import Parallel, delayed

            jobs = (delayed(self._extract_chunk)(images[s : s + chunk]) for s in starts)
            blocks = []
            for block in Parallel(n_jobs=n_jobs, return_as="generator")(jobs):
                blocks.append(block)
                advance(len(block))
            return np.concatenate(blocks)
