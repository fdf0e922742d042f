"""DICOM datasets in `imgcls check`: modalities mixed in one dataset, pixel spacing that varies,
and a header field that gives the class away.

Broken files and files without pixel data are file findings like any undecodable image
(:mod:`imgcls.checks.rules`); this module reads the header columns the dataset gained at load
(:mod:`imgcls.data.dicom`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .findings import Finding

SPACING_TOLERANCE = 0.2  # relative difference from the median spacing that is reported
_SPACING_HINT = ("Objects appear at another scale in these images; resample to one spacing before "
                 "training, or check that the scanner setting is not tied to the class.")


def dicom_findings(table: pd.DataFrame) -> tuple[dict, list[Finding]]:
    """A summary of the DICOM header columns and findings about them ({} and [] without any)."""
    if "Modality" not in table.columns:
        return {}, []
    summary, out = {}, []
    modalities = table["Modality"].astype(str).replace("", "(none)").value_counts()
    summary["modalities"] = {str(k): int(v) for k, v in modalities.items()}
    if len(modalities) > 1:
        said = ", ".join(f"{k}: {v}" for k, v in modalities.items())
        out.append(Finding("", "mixed_modalities", "warning", f"modalities {said}",
                           "A model learns one kind of image; train one per modality, or make sure "
                           "every class has every modality (otherwise the modality is the answer)."))
    out += _spacing_findings(table, summary)
    out += _revealing_fields(table)
    return summary, out


def _spacing_findings(table: pd.DataFrame, summary: dict) -> list[Finding]:
    if "PixelSpacing" not in table.columns:
        return []
    spacing = pd.to_numeric(table["PixelSpacing"], errors="coerce").to_numpy(dtype=float)
    known = np.isfinite(spacing) & (spacing > 0)
    if not known.any():
        return []
    median = float(np.median(spacing[known]))
    summary["pixel_spacing_mm"] = {"median": round(median, 4), "min": round(float(spacing[known].min()), 4),
                                   "max": round(float(spacing[known].max()), 4)}
    off = known & (np.abs(spacing - median) > SPACING_TOLERANCE * median)
    return [Finding(str(path), "inconsistent_spacing", "warning",
                    f"pixel spacing {value:.3g} mm vs the dataset's median {median:.3g} mm", _SPACING_HINT)
            for path, value in zip(table["path"].to_numpy()[off], spacing[off], strict=True)]


def _revealing_fields(table: pd.DataFrame) -> list[Finding]:
    """A scanner field whose every value belongs to one class: a shortcut a model will take."""
    out = []
    for column in ("Manufacturer", "ManufacturerModelName", "BodyPartExamined"):
        if column not in table.columns:
            continue
        values = table[column].astype(str)
        if values.nunique() < 2 or table["label"].nunique() < 2:
            continue
        classes_per_value = table.groupby(values)["label"].nunique()
        if (classes_per_value == 1).all():
            pairs = table.groupby(values)["label"].first()
            said = ", ".join(f"{v} -> {c}" for v, c in pairs.items())
            out.append(Finding("", "header_predicts_label", "warning",
                               f"{column} alone gives the class: {said}",
                               "The model may learn the scanner, not the finding; collect each class "
                               f"from every scanner; audit by it (imgcls audit RUN --group-by {column})."))
    return out
