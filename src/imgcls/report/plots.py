"""Matplotlib figures for reports, returned as base64 PNG data URIs (no external files)."""

from __future__ import annotations

import base64
import io

import numpy as np


def new_figure(width: float, height: float, ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width, height), dpi=100)


def to_data_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def confusion_matrix_plot(cm: list[list[float]], labels: list[str], normalized: bool) -> str:
    matrix = np.asarray(cm, dtype=float)
    side = min(12.0, 2.5 + 0.45 * len(labels))
    fig, ax = new_figure(side, side * 0.85)
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalized else max(1, matrix.max()))
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 20:
        threshold = (1 if normalized else matrix.max()) / 2
        for (i, j), v in np.ndenumerate(matrix):
            text = f"{v:.2f}" if normalized else f"{int(v)}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if v > threshold else "black")
    ax.set_title("confusion matrix" + (" (row-normalised)" if normalized else " (counts)"))
    return to_data_uri(fig)


def per_class_plot(per_class: dict[str, dict], title: str = "per-class precision, recall, F1") -> str:
    labels = list(per_class)
    fig, ax = new_figure(min(14.0, 3 + 0.6 * len(labels)), 3.2)
    x = np.arange(len(labels))
    for k, metric in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (k - 1) * 0.27, [per_class[c][metric] for c in labels], 0.27, label=metric)
    ax.set_xticks(x, labels, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    return to_data_uri(fig)


def cooccurrence_plot(matrix: list[list[int]], labels: list[str], title: str) -> str:
    """A symmetric label-by-label count matrix (diagonal: each label alone)."""
    counts = np.asarray(matrix, dtype=float)
    side = min(12.0, 2.5 + 0.45 * len(labels))
    fig, ax = new_figure(side, side * 0.85)
    ax.imshow(counts, cmap="Oranges", vmin=0, vmax=max(1.0, counts.max()))
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    if len(labels) <= 20:
        for (i, j), v in np.ndenumerate(counts):
            ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=8,
                    color="white" if v > counts.max() / 2 else "black")
    ax.set_title(title)
    return to_data_uri(fig)


def precision_recall_plot(positive: np.ndarray, scores: np.ndarray, threshold: float, label: str) -> str:
    """The test split's precision-recall curve for one class, and the point the tuned threshold
    gives."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(positive, scores)
    chosen = scores >= threshold
    hit = (chosen & positive).sum()
    fig, ax = new_figure(4.2, 4.0)
    ax.plot(recall, precision, color="C0", label=f"'{label}' on the test split")
    ax.scatter([hit / max(1, positive.sum())], [hit / max(1, chosen.sum())], color="C3", zorder=3, s=40,
               label=f"threshold {threshold:.3f} (tuned on validation)")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("precision-recall")
    return to_data_uri(fig)


def reliability_plot(bins: list[dict], ece: float, before: list[dict] | None = None,
                     ece_before: float | None = None) -> str:
    """Accuracy against confidence per bin; with ``before``, the uncalibrated model's too."""
    fig, ax = new_figure(4.2, 4.0)
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfect calibration")
    curves = [(bins, "C0", "calibrated" if before else "model")]
    if before:
        curves.insert(0, (before, "C7", f"before calibration (ECE {ece_before:.3f})"))
    for points, colour, name in curves:
        if not points:
            continue
        conf = [b["confidence"] for b in points]
        acc = [b["accuracy"] for b in points]
        sizes = [20 + 180 * b["count"] / max(x["count"] for x in points) for b in points]
        ax.plot(conf, acc, "-", color=colour)
        ax.scatter(conf, acc, s=sizes, color=colour, label=f"{name} (size = images)")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(f"reliability (ECE {ece:.3f})")
    return to_data_uri(fig)


def tile_mosaic(bag: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
    """A bag of tiles (T, S, S, 3) as one grid image, padding left out; with ``scores`` each
    tile is dimmed by its score relative to the bag's highest and framed in red by it."""
    kept = [k for k in range(len(bag)) if bag[k].any()] or [0]
    cols = int(np.ceil(np.sqrt(len(kept))))
    rows = int(np.ceil(len(kept) / cols))
    side = bag.shape[1]
    canvas = np.full((rows * side, cols * side, 3), 255, np.uint8)
    top = float(np.max(scores[kept])) if scores is not None and np.max(scores[kept]) > 0 else 1.0
    for n, k in enumerate(kept):
        tile = bag[k].astype(np.float32)
        if scores is not None:
            weight = float(scores[k]) / top
            tile = tile * (0.25 + 0.75 * weight)
            frame = max(1, side // 16)
            red = np.array([255 * weight, 0, 0])
            tile[:frame], tile[-frame:], tile[:, :frame], tile[:, -frame:] = red, red, red, red
        r, c = divmod(n, cols)
        canvas[r * side:(r + 1) * side, c * side:(c + 1) * side] = np.clip(tile, 0, 255).astype(np.uint8)
    return canvas


def frame_strip(clip: np.ndarray, scores: np.ndarray | None = None, most: int = 16) -> np.ndarray:
    """A clip (T, S, S, 3) as one row of frames in order (up to ``most``, evenly chosen); with
    ``scores`` each frame is dimmed by its score relative to the clip's highest and underlined in
    red by it (temporal occlusion: which frames the answer rests on)."""
    picks = np.unique(np.linspace(0, len(clip) - 1, min(most, len(clip))).astype(int))
    side, gap = clip.shape[1], max(1, clip.shape[1] // 16)
    bar = max(2, side // 10)
    canvas = np.full((side + bar, len(picks) * (side + gap) - gap, 3), 255, np.uint8)
    top = float(np.max(scores)) if scores is not None and np.max(scores) > 0 else 1.0
    for n, k in enumerate(picks):
        frame = clip[k].astype(np.float32)
        left = n * (side + gap)
        if scores is not None:
            weight = float(scores[k]) / top
            frame = frame * (0.35 + 0.65 * weight)
            canvas[side:, left:left + max(1, round(side * weight))] = (220, 30, 30)
        canvas[:side, left:left + side] = np.clip(frame, 0, 255).astype(np.uint8)
    return canvas


def thumbnail_uri(img: np.ndarray, side: int = 96) -> str:
    """A PNG data URI of ``img`` scaled so its longer side is ``side`` pixels (a bag of tiles
    is shown as its mosaic)."""
    from PIL import Image

    img = np.asarray(img)
    if img.ndim == 4:
        img = tile_mosaic(img)
    pil = Image.fromarray(img)
    scale = side / max(pil.size)
    resample = Image.NEAREST if scale > 2 else Image.BILINEAR
    pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), resample)
    return png_uri(np.asarray(pil))


def png_uri(img: np.ndarray) -> str:
    """A PNG data URI of a uint8 image as it is."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(img)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def roi_preview_plot(samples: list[tuple[np.ndarray, np.ndarray | None, np.ndarray]], title: str) -> str:
    """Each sample's frame with its region outlined (red) above what the model is given.

    ``samples``: (image, region mask or None when the whole image was kept, the crop).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = max(1, len(samples))
    fig, grid = plt.subplots(2, n, figsize=(1.9 * n, 4.0), dpi=100, squeeze=False)
    for k, (image, region, crop) in enumerate(samples):
        top, bottom = grid[0][k], grid[1][k]
        top.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
        if region is not None:
            top.contour(region.astype(float), levels=[0.5], colors="red", linewidths=1.2)
        top.set_title("whole image kept" if region is None else "region", fontsize=8)
        bottom.imshow(crop, cmap="gray" if crop.ndim == 2 else None, vmin=0, vmax=255)
        bottom.set_title("model input", fontsize=8)
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    return to_data_uri(fig)
