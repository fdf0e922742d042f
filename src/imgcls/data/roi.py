"""Regions of interest: find the object, then crop to it, blank its background, or both.

A model spends its pixels on the object when the object fills only part of the frame (a
solar cell on a bench, a leaf on a table, a part on a conveyor). The region is a mask, from
the manifest's ``mask`` column or from a segmentation that needs no training data:

- ``otsu``: the box of every pixel brighter than Otsu's threshold (the first method, kept as is);
- ``lcc``: the largest connected component of the Otsu mask, on whichever side of the
  threshold touches the border least (so a dark object on a light table works too);
- ``watershed``: a marker watershed on the gradient, markers from the border (background)
  and the core of the largest component (object);
- ``grabcut``: OpenCV's GrabCut, started from the largest component, the border as background;
- ``saliency``: SLIC superpixels scored by their colour contrast to the border's superpixels
  (the background prior), thresholded by Otsu;
- ``mask``: the sample's own mask (any non-zero pixel is the object).

A spec's ``roi`` is ``METHOD`` (crop to the region's box), ``METHOD:blank`` (keep the frame,
black outside the region) or ``METHOD:both`` (crop, then blank). A region smaller than
``MIN_REGION`` of the frame is more likely noise than the object: the whole image is kept,
since a wrong crop is worse than none.

Example:
    >>> import numpy as np
    >>> img = np.zeros((100, 100), np.uint8); img[20:60, 30:90] = 200
    >>> crop_to_foreground(img).shape
    (40, 60)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..config.sections import ROI_METHODS, ROI_MODES
from ..core.errors import ConfigError, ImageDecodeError

AUTOMATIC = ROI_METHODS[1:-1]
MIN_AREA = 0.05  # otsu's box: a smaller one is more likely noise than the object
MIN_REGION = 0.01  # every other method: a smaller region keeps the whole image
WORK_SIDE = 192  # segmentations run on a copy at most this large, then scale back
MARGIN = 0.05  # a crop keeps this fraction of the box's side around it


def parse_roi(text: str) -> tuple[str, str]:
    """``'grabcut:blank'`` -> ``('grabcut', 'blank')``; a bare method crops."""
    method, _, mode = str(text).partition(":")
    mode = mode or "crop"
    if method not in ROI_METHODS or mode not in ROI_MODES:
        raise ConfigError(f"model.roi={text!r}: use METHOD or METHOD:MODE with METHOD one of "
                          f"{', '.join(ROI_METHODS)} and MODE one of {', '.join(ROI_MODES)} "
                          "(e.g. grabcut, lcc:blank, mask:both).")
    return method, mode


def needs_mask(roi: str) -> bool:
    return parse_roi(roi)[0] == "mask"


def foreground_box(img: np.ndarray, margin: float = 0.0) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the pixels brighter than Otsu's threshold."""
    from skimage.filters import threshold_otsu

    grey = _grey(img)
    h, w = grey.shape
    if grey.min() == grey.max():
        return 0, h, 0, w
    box = mask_box(grey > threshold_otsu(grey), margin)
    if box is None or (box[1] - box[0]) * (box[3] - box[2]) < MIN_AREA * h * w:
        return 0, h, 0, w
    return box


def mask_box(mask: np.ndarray, margin: float = 0.0) -> tuple[int, int, int, int] | None:
    """The box of a mask's pixels, widened by ``margin`` of its sides; None for an empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    h, w = mask.shape
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    dy, dx = round(margin * (bottom - top)), round(margin * (right - left))
    return int(max(0, top - dy)), int(min(h, bottom + dy)), int(max(0, left - dx)), int(min(w, right + dx))


def region_mask(img: np.ndarray, method: str, mask: np.ndarray | None = None) -> np.ndarray | None:
    """The object's mask (bool, the image's height and width), or None: keep the whole image.

    Raises:
        ImageDecodeError: ``method='mask'`` and the sample has no mask, or one of another size.
    """
    h, w = img.shape[:2]
    if method == "mask":
        return _given_mask(mask, (h, w))
    if method == "otsu":
        top, bottom, left, right = foreground_box(img)
        if (top, bottom, left, right) == (0, h, 0, w):
            return None
        out = np.zeros((h, w), bool)
        out[top:bottom, left:right] = True
        return out
    small, scale = _work_copy(img)
    found = SEGMENTERS[method](small)
    if found is None or found.mean() < MIN_REGION:
        return None
    if scale != 1.0:
        import cv2

        found = cv2.resize(found.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return found


def apply_region(img: np.ndarray, region: np.ndarray | None, mode: str) -> np.ndarray:
    """Crop to the region's box, blank outside it, or both; None leaves the image as it is."""
    if region is None:
        return img
    if mode in ("blank", "both"):
        img = np.where(region[..., None] if img.ndim == 3 else region, img, 0).astype(img.dtype)
    if mode in ("crop", "both"):
        box = mask_box(region, MARGIN)
        if box is not None:
            top, bottom, left, right = box
            img = img[top:bottom, left:right]
    return img


def crop_to_region(img: np.ndarray, roi: str = "otsu", mask: np.ndarray | None = None) -> np.ndarray:
    """The image as a model with ``roi`` sees it before resizing."""
    method, mode = parse_roi(roi)
    if method == "none":
        return img
    if method == "otsu" and mode == "crop":  # the first method's exact behaviour, no margin
        top, bottom, left, right = foreground_box(img)
        return img[top:bottom, left:right]
    return apply_region(img, region_mask(img, method, mask), mode)


crop_to_foreground = crop_to_region


def preview_samples(read: Callable[[int], tuple[np.ndarray, np.ndarray | None]], count: int, roi: str,
                    limit: int = 6) -> list[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
    """(image, region or None, what the model sees before resizing) for the first ``limit`` of
    ``count`` samples that decode, spread evenly; ``read(i)`` gives a sample's image and mask."""
    method, mode = parse_roi(roi)
    out = []
    for i in np.unique(np.linspace(0, max(0, count - 1), min(count, 3 * limit)).round().astype(int)):
        try:
            image, mask = read(int(i))
            region = region_mask(image, method, mask) if method != "none" else None
        except ImageDecodeError:
            continue
        out.append((image, region, crop_to_region(image, roi, mask)))
        if len(out) == limit:
            break
    return out


def _given_mask(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    if mask is None:
        raise ImageDecodeError("", "this model crops to each image's mask (model.roi=mask), and this "
                               "image has none: give a manifest with a 'mask' column", "no_mask")
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if mask.shape != shape:
        raise ImageDecodeError("", f"its mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                               f"{shape[1]}x{shape[0]}: masks must match their image", "bad_mask")
    region = mask > 0
    return region if region.any() else None


def _grey(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else img[..., :3].mean(axis=2)


def _work_copy(img: np.ndarray) -> tuple[np.ndarray, float]:
    import cv2

    h, w = img.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    if scale == 1.0:
        return img, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA), scale


def _border(shape: tuple[int, int], width: int = 2) -> np.ndarray:
    out = np.zeros(shape, bool)
    out[:width], out[-width:], out[:, :width], out[:, -width:] = True, True, True, True
    return out


def _largest_component(mask: np.ndarray) -> np.ndarray | None:
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if not count:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (1 + int(np.argmax(sizes)))


def _lcc(img: np.ndarray) -> np.ndarray | None:
    """The largest component of the Otsu side that touches the border least, holes filled."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    grey = _grey(img).astype(np.float32)
    if grey.min() == grey.max():
        return None
    bright = grey > threshold_otsu(grey)
    border = _border(grey.shape)
    side = bright if bright[border].mean() <= (~bright)[border].mean() else ~bright
    side = ndimage.binary_opening(side, iterations=2)
    found = _largest_component(side)
    return None if found is None else ndimage.binary_fill_holes(found)


def _watershed(img: np.ndarray) -> np.ndarray | None:
    from scipy import ndimage
    from skimage.filters import sobel
    from skimage.segmentation import watershed

    core = _lcc(img)
    if core is None:
        return None
    core = ndimage.binary_erosion(core, iterations=max(1, round(0.02 * max(core.shape))))
    if not core.any():
        return None
    markers = np.zeros(core.shape, np.int32)
    markers[_border(core.shape)] = 1
    markers[core] = 2
    grey = _grey(img).astype(np.float32) / 255.0
    return ndimage.binary_fill_holes(watershed(sobel(grey), markers) == 2)


def _grabcut(img: np.ndarray) -> np.ndarray | None:
    import cv2

    start = _lcc(img)
    rgb = np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3])
    mask = np.full(rgb.shape[:2], cv2.GC_PR_BGD, np.uint8)
    if start is not None:
        mask[start] = cv2.GC_PR_FGD
    else:
        h, w = mask.shape
        mask[h // 8: h - h // 8, w // 8: w - w // 8] = cv2.GC_PR_FGD
    mask[_border(mask.shape)] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(rgb, mask, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # a flat image gives GrabCut's mixtures nothing to fit
        return start
    found = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    return _largest_component(found)


def _saliency(img: np.ndarray) -> np.ndarray | None:
    from skimage.color import rgb2lab
    from skimage.filters import threshold_otsu
    from skimage.segmentation import slic

    rgb = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
    lab = rgb2lab(rgb)
    segments = slic(lab, n_segments=150, compactness=10, start_label=0, convert2lab=False)
    count = int(segments.max()) + 1
    sums = np.zeros((count, 3))
    np.add.at(sums, segments.ravel(), lab.reshape(-1, 3))
    mean = sums / np.maximum(np.bincount(segments.ravel(), minlength=count), 1)[:, None]
    on_border = np.unique(segments[_border(segments.shape)])
    distance = np.linalg.norm(mean[:, None] - mean[None, on_border], axis=2)
    score = np.sort(distance, axis=1)[:, : max(1, len(on_border) // 4)].mean(axis=1)  # nearest border colours
    if score.max() - score.min() < 1e-6:
        return None
    salient = (score > threshold_otsu(score))[segments]
    return _largest_component(salient)


SEGMENTERS: dict[str, Callable[[np.ndarray], np.ndarray | None]] = {
    "lcc": _lcc, "watershed": _watershed, "grabcut": _grabcut, "saliency": _saliency}
