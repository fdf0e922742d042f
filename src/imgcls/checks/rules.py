"""Turn inspection records into findings: per file, outliers, duplicates, classes (or labels),
groups, and labellers who disagreed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.dataset import VOTE_PREFIX, VOTE_SUMMARY, join_labels, split_labels
from ..data.dicom import IDENTIFIER_COLUMNS
from ..data.tasks import indicator, label_names
from .findings import Finding

EXTENSION_FORMATS = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".png": "PNG", ".gif": "GIF",
    ".bmp": "BMP", ".dib": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP", ".ico": "ICO",
    ".ppm": "PPM", ".pgm": "PPM", ".pbm": "PPM", ".pnm": "PPM", ".tga": "TGA", ".dcm": "DICOM",
    ".dicom": "DICOM",
}
ERROR_HINTS = {
    "empty": "The file has no bytes; re-export or remove it from the dataset.",
    "not_image": "The content is not an image whatever its name says; remove it or fix the export.",
    "truncated": "The file ends early (interrupted copy or download); copy it again.",
    "too_many_pixels": "Over data.max_image_pixels; raise the limit if you trust the file, downsize it, or "
                       "train on tiles (data.tiles=SIZE) if its label lives in a few regions.",
    "unreadable": "It cannot be decoded; convert it to PNG or JPEG (DICOM: check the export, or install "
                  "the codec the reason names).",
    "no_pixel_data": "A DICOM object that is not an image (report, presentation state); remove it.",
}


def file_findings(records: list[dict], min_side: int, max_aspect: float, frames: int = 8) -> list[Finding]:
    """Errors for undecodable files, warnings for odd shapes and clips shorter than ``frames``
    (the frames one clip is read from: ``data.frames`` and ``data.frame_stride``), notes for
    unusual encodings."""
    ok = [r for r in records if "error" not in r]
    median_side = float(np.median([min(r["width"], r["height"]) for r in ok])) if ok else 0.0
    mostly_colour = bool(ok) and np.mean([not r["grey"] for r in ok]) >= 0.5
    out = []
    for r in records:
        if "error" in r:
            out.append(Finding(r["path"], r["error"], "error", r["reason"], ERROR_HINTS[r["error"]]))
            continue
        out += _shape_findings(r, median_side, min_side, max_aspect)
        out += _encoding_notes(r, mostly_colour)
        if r.get("format") in ("VIDEO", "FRAMES") and r["frames"] < frames:
            out.append(Finding(r["path"], "short_clip", "warning",
                               f"{r['frames']} frames, fewer than the {frames} a clip is read from "
                               "(data.frames, data.frame_stride)",
                               "Frames repeat to fill the sequence; lower data.frames (or data.frame_stride) "
                               "or drop the clip."))
    return out


def _shape_findings(r: dict, median_side: float, min_side: int, max_aspect: float) -> list[Finding]:
    out = []
    side, w, h = min(r["width"], r["height"]), r["width"], r["height"]
    ext = "." + r["path"].rsplit(".", 1)[-1].lower() if "." in r["path"] else ""
    expected = EXTENSION_FORMATS.get(ext)
    if expected and r["format"] not in (expected, "MPO" if expected == "JPEG" else expected):
        out.append(Finding(r["path"], "extension_mismatch", "warning",
                           f"named {ext} but the content is {r['format']}",
                           "Rename the file so tools that trust extensions read it correctly."))
    if side < max(min_side, 0.25 * median_side):
        out.append(Finding(r["path"], "tiny", "warning",
                           f"{w}x{h} pixels; the dataset's median short side is {median_side:.0f}",
                           "Check it is not a thumbnail or icon; tiny images carry little signal."))
    if max(w, h) / max(1, side) > max_aspect:
        out.append(Finding(r["path"], "extreme_aspect", "warning", f"{w}x{h} (aspect {max(w, h) / side:.1f})",
                           "Resizing will distort it; consider model.resize=pad or crop it."))
    return out


def _encoding_notes(r: dict, mostly_colour: bool) -> list[Finding]:
    notes = []
    mode = r["mode"]
    if mode.startswith("I;16") or mode in ("I", "F"):
        notes.append(("16bit", f"{mode} ({'16-bit' if mode.startswith('I;16') else '32-bit'}); "
                      "scaled to 8 bits when used"))
    if mode == "tiled":
        notes.append(("large_tiled", f"{r['width']}x{r['height']} tiled TIFF over data.max_image_pixels: "
                      "checked on its thumbnail; train on it with data.tiles=SIZE"))
    if mode == "CMYK":
        notes.append(("cmyk", "CMYK colour; converted to RGB when used"))
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        notes.append(("alpha", f"{mode} with transparency; composited on white when used"))
    if r.get("frames", 1) > 1 and r.get("format") == "DICOM":
        notes.append(("multi_frame", f"{r['frames']} frames; the middle one is used unless a manifest "
                      "'frame' column names one per row"))
    elif r.get("format") == "VIDEO":
        notes.append(("video", f"{r['frames']} frames at {r['fps']:g} fps ({r['duration_s']} s), "
                      f"{r['width']}x{r['height']}"))
    elif r.get("format") == "FRAMES":
        notes.append(("video", f"a folder of {r['frames']} frames, {r['width']}x{r['height']}"))
    elif r.get("frames", 1) > 1:
        notes.append(("animation", f"{r['frames']} frames; only the first is used"))
    if r.get("orientation", 1) not in (0, 1):
        notes.append(("exif_rotation", f"EXIF orientation {r['orientation']}; rotated when used"))
    if mostly_colour and r["grey"]:
        notes.append(("grey_among_colour", "grey image in a mostly colour dataset"))
    return [Finding(r["path"], check, "info", detail) for check, detail in notes]


def _robust_z(values: np.ndarray, floor: float) -> np.ndarray:
    median = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - median))
    return (values - median) / max(mad, floor)


OUTLIER_RULES = (  # check, statistic, direction, MAD floor, hint
    ("dark", "brightness", -1, 0.03, "Much darker than the rest of the dataset; check exposure."),
    ("bright", "brightness", +1, 0.03, "Much brighter than the rest of the dataset; check exposure."),
    ("low_information", "entropy", -1, 0.15, "Nearly uniform content (blank, cap on lens, solid fill)."),
    ("blurry", "sharpness", -1, 0.15, "Much less sharp than the rest of the dataset; check focus."),
)


def _nearly_blank(entropy: float, median: float) -> bool:
    """Under 1.5 bits and well under the dataset's typical image: blank whatever the spread."""
    return entropy < 1.5 and entropy < 0.5 * median


def outlier_findings(records: list[dict], z_limit: float) -> list[Finding]:
    """Images far from the dataset's own typical brightness, information and sharpness."""
    ok = [r for r in records if "error" not in r]
    if len(ok) < 10:
        return []
    out = []
    for check, stat, direction, floor, hint in OUTLIER_RULES:
        values = np.array([r[stat] for r in ok])
        z = _robust_z(values, floor) * direction
        median = float(np.median(values))
        for r, score in zip(ok, z, strict=True):
            if score > z_limit or (stat == "entropy" and _nearly_blank(r[stat], median)):
                out.append(Finding(r["path"], check, "warning",
                                   f"{stat} {r[stat]:.3f} vs dataset median {median:.3f} "
                                   f"({score:.1f} robust SDs)", hint))
    return out


def duplicate_findings(table: pd.DataFrame, groups: list[list[int]], kind: str) -> list[Finding]:
    """One finding per member, plus leakage across splits and label conflicts per group."""
    out = []
    paths, labels = table["path"].tolist(), table["label"].tolist()
    splits = table["split"].tolist() if "split" in table else [""] * len(table)
    for group in groups:
        others = ", ".join(paths[j] for j in group[:6]) + (" …" if len(group) > 6 else "")
        group_labels = sorted({labels[j] for j in group})
        group_splits = sorted({splits[j] for j in group} - {""})
        for j in group:
            out.append(Finding(paths[j], f"{kind}_duplicate", "warning",
                               f"group of {len(group)}: {others}",
                               "Keep one copy (imgcls check --write-manifest does)."))
            if len(group_splits) > 1:
                out.append(Finding(paths[j], "leakage", "warning",
                                   f"{kind} duplicate in splits {group_splits}: {others}",
                                   "The same image in train and test inflates test scores; keep one."))
            if len(group_labels) > 1:
                out.append(Finding(paths[j], "label_conflict", "warning",
                                   f"{kind} duplicates labelled {group_labels}: {others}",
                                   "Decide the right label; the clean manifest drops conflicting groups."))
    return out


def class_findings(table: pd.DataFrame, test_fraction: float, max_ratio: float) -> tuple[dict, list[Finding]]:
    counts = table["label"].value_counts()
    ratio = float(counts.max() / counts.min()) if len(counts) else 0.0
    summary = {"counts": {str(k): int(v) for k, v in counts.items()}, "imbalance_ratio": round(ratio, 3)}
    out = []
    if len(counts) < 2:
        out.append(Finding("", "one_class", "error", f"only class {list(counts.index)}",
                           "A classifier needs at least two classes."))
    if ratio > max_ratio:
        out.append(Finding("", "class_imbalance", "warning",
                           f"largest/smallest class = {ratio:.1f} ({counts.idxmax()}: {counts.max()}, "
                           f"{counts.idxmin()}: {counts.min()})",
                           "Consider model.class_weight=balanced and judge by balanced accuracy / macro-F1."))
    need = int(np.ceil(1 / test_fraction)) if test_fraction > 0 else 2
    for label, n in counts.items():
        small = _too_small(f"class '{label}' has", int(n), need, test_fraction,
                           "Stratified splits need at least 2 images per class")
        out += [small] if small else []
    return summary, out


def _too_small(subject: str, n: int, need: int, test_fraction: float, rule: str) -> Finding | None:
    """A class (or label) on fewer than 2 images (error) or too few to show up in the test split."""
    if n < 2:
        return Finding("", "class_too_small", "error", f"{subject} {n} image", f"{rule}; add images.")
    if n < need:
        return Finding("", "class_too_small", "warning",
                       f"{subject} {n} images; a {test_fraction:.0%} test split may hold none of it",
                       "Add images or lower split.test.")
    return None


def group_findings(table: pd.DataFrame, columns: list[str], max_groups: int = 50,
                   min_count: int = 5) -> tuple[dict, list[Finding]]:
    """Per metadata column: images per group and class; notes on absent or thin groups."""
    summary, out = {}, []
    for column in columns:
        values = table[column].astype(str)
        if values.nunique() > max_groups or values.nunique() < 2:
            continue
        crosstab = pd.crosstab(values, table["label"])
        summary[column] = {g: {str(k): int(v) for k, v in row.items()} for g, row in crosstab.iterrows()}
        for group, row in crosstab.iterrows():
            for label, n in row.items():
                if n < min_count:
                    out.append(Finding("", "group_representation", "info",
                                       f"{column}={group} has {n} image(s) of class '{label}'",
                                       "Per-group figures for it will be unreliable; collect more."))
    return summary, out


def multilabel_findings(table: pd.DataFrame, test_fraction: float, max_ratio: float
                        ) -> tuple[dict, list[Finding]]:
    """Multi-label: images per label, labels per image, label co-occurrence; labels too rare
    to split, on every image, or far outnumbered by the images without them."""
    labels = table["label"].tolist()
    names = label_names(labels)
    Y = indicator(labels, names).astype(int)
    counts = Y.sum(axis=0)
    per_image = Y.sum(axis=1)
    summary = {"counts": {n: int(c) for n, c in zip(names, counts, strict=True)},
               "multilabel": True, "no_label": int((per_image == 0).sum()),
               "labels_per_image": {"mean": round(float(per_image.mean()), 3) if len(Y) else 0.0,
                                    "max": int(per_image.max()) if len(Y) else 0},
               "cooccurrence": {"labels": names, "counts": (Y.T @ Y).tolist()}}
    out = []
    if len(names) < 2:
        out.append(Finding("", "one_class", "error", f"only label(s) {names}",
                           "A multi-label task needs at least two labels."))
    need = int(np.ceil(1 / test_fraction)) if test_fraction > 0 else 2
    for name, n in zip(names, counts, strict=True):
        if n == len(Y):
            out.append(Finding("", "label_everywhere", "error", f"label '{name}' is on every image",
                               "There is nothing to learn about it; drop it or add images without it."))
        elif small := _too_small(f"label '{name}' is on", int(n), need, test_fraction,
                                 "Iterative stratification needs at least 2 images per label"):
            out.append(small)
        elif (len(Y) - n) / n > max_ratio:
            out.append(Finding("", "class_imbalance", "warning",
                               f"label '{name}' is on {n} of {len(Y)} images ({n / len(Y):.1%})",
                               "Consider train.multilabel_loss=asymmetric; judge it by its average "
                               "precision, not accuracy."))
    co = Y.T @ Y
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if counts[i] and co[i, j] == counts[i] == counts[j]:
                out.append(Finding("", "labels_always_together", "note",
                                   f"labels '{names[i]}' and '{names[j]}' are always on the same images",
                                   "A model cannot tell them apart; merge them or add images with one "
                                   "alone."))
    return summary, out


def vote_columns(columns) -> list[str]:
    """The per-labeller answer columns of a manifest that ``imgcls label`` wrote."""
    return [c for c in columns if str(c).startswith(VOTE_PREFIX)]


def group_columns(table: pd.DataFrame, columns: list[str]) -> list[str]:
    """The metadata ``columns`` that may name groups: not the votes of a labelled manifest, nor
    DICOM identifiers (one group per patient or study says nothing and would list them)."""
    votes = vote_columns(table.columns)
    return [c for c in columns if c not in votes and not (votes and c in VOTE_SUMMARY)
            and c not in IDENTIFIER_COLUMNS]


def vote_findings(table: pd.DataFrame, multilabel: bool = False) -> list[Finding]:
    """Images whose labellers gave different classes (``skip`` and ``unsure`` are no class);
    for label sets, different sets (where '' is the set of none, an answer too)."""
    columns = vote_columns(table.columns)
    if len(columns) < 2:
        return []
    out = []
    for path, row in zip(table["path"], table[columns].fillna("").astype(str).to_numpy(), strict=True):
        given = {c[len(VOTE_PREFIX):]: (join_labels(split_labels(v)) if multilabel else v)
                 for c, v in zip(columns, row, strict=True)
                 if v not in ("nan", "skip", "unsure") and (multilabel or v)}
        if len(set(given.values())) > 1:
            said = ", ".join(f"{name}={value or '(none)'}" for name, value in given.items())
            out.append(Finding(str(path), "labeller_disagreement", "warning", f"labellers answered {said}",
                               "Look at it again, or resolve it with `imgcls label ... --export-only "
                               "--rule reviewer:NAME` (or drop it: --rule drop)."))
    return out
