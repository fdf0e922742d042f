"""Regions of interest in `imgcls check`: masks that cannot be used, and what a region method cuts.

A manifest's ``mask`` column is checked image by image (a missing or unreadable file, a size
that does not match the image, a mask with no object). With ``check.roi=METHOD`` the report
shows the method's region on sample images and how often it kept the whole image, since a
wrong crop is worse than none.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import ImageDecodeError
from ..data import Dataset
from ..data.decode import decode_image
from ..data.roi import parse_roi, preview_samples
from ..report.plots import roi_preview_plot
from .findings import Finding

SAMPLED = 60  # images a region method is tried on for its summary
_MASK_HINT = ("Fix the manifest's 'mask' column: one binary or label image per row, the image's "
              "size, non-zero on the object (or leave the cell empty for no mask).")


def mask_findings(ds: Dataset, records: list[dict]) -> list[Finding]:
    """A finding for each row whose mask ``model.roi=mask`` could not use."""
    if not ds.has_masks:
        return []
    out = []
    for i, record in enumerate(records):
        path = ds.mask_path(i)
        if path is None or record.get("error"):
            continue
        try:
            mask = decode_image(path, ds.max_image_pixels, None, ds.decode_timeout)
        except ImageDecodeError as exc:
            out.append(Finding(ds.paths[i], "bad_mask", "error", f"mask {path.name}: {exc.reason}",
                               _MASK_HINT))
            continue
        h, w = mask.shape[:2]
        if (w, h) != (record.get("width"), record.get("height")):
            out.append(Finding(ds.paths[i], "bad_mask", "error",
                               f"mask {path.name} is {w}x{h}, the image {record.get('width')}x"
                               f"{record.get('height')}", _MASK_HINT))
        elif not mask.any():
            out.append(Finding(ds.paths[i], "empty_mask", "warning",
                               f"mask {path.name} marks no pixel: the whole image will be used", _MASK_HINT))
    return out


def roi_summary(ds: Dataset, roi: str) -> dict | None:
    """How often ``roi``'s method kept the whole image and what share of the frame its region
    covers, on up to SAMPLED images spread over the dataset, with the preview figure."""
    method, _ = parse_roi(roi)
    if method == "none":
        return None
    samples = preview_samples(ds.read_sample, len(ds), roi, limit=SAMPLED)
    shares = [1.0 if region is None else float(region.mean()) for _, region, _ in samples]
    shown = samples[:: max(1, len(samples) // 6)][:6]
    return {"method": roi, "sampled": len(samples), "whole_image": sum(r is None for _, r, _ in samples),
            "median_share": round(float(np.median(shares)), 3) if shares else None,
            "preview": roi_preview_plot(shown, f"region of interest: {roi}") if shown else None}
