"""Pictures of explanations: heat-map overlays, their files, and the explain.html gallery."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...core.io import atomic_open, atomic_write_text
from ...report.plots import new_figure, png_uri, to_data_uri
from ...report.render import render

OVERLAY_ALPHA = 0.65


def overlay(image: np.ndarray, attribution: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3): the image in grey under a diverging heat map; red is evidence for the
    class, blue against it, transparent where the map is near zero."""
    import matplotlib

    a = np.asarray(attribution, dtype=np.float64)
    # the 99.5th percentile, not the maximum: one extreme pixel (Integrated Gradients) would
    # otherwise wash the rest of the map out
    a = np.clip(a / max(float(np.percentile(np.abs(a), 99.5)), 1e-12), -1, 1)
    colour = matplotlib.colormaps["RdBu_r"]((a + 1) / 2)[..., :3] * 255
    alpha = OVERLAY_ALPHA * np.abs(a)[..., None]
    grey = np.asarray(image, dtype=np.float64).mean(axis=2, keepdims=True)
    return np.clip(grey * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> Path:
    from PIL import Image

    with atomic_open(path, "wb") as f:
        Image.fromarray(image).save(f, format="PNG")
    return path


def write_npy(path: Path, array: np.ndarray) -> Path:
    with atomic_open(path, "wb") as f:
        np.save(f, np.asarray(array, dtype=np.float32))
    return path


def overlay_uri(image: np.ndarray, attribution: np.ndarray) -> str:
    """An overlay as a data: URI, for self-contained reports."""
    return png_uri(overlay(image, attribution))


def importance_plot(rows: list[dict]) -> str:
    fig, ax = new_figure(5.5, 0.4 * len(rows) + 1.2)
    names = [r["group"] for r in rows][::-1]
    ax.barh(names, [r["importance"] for r in rows][::-1], xerr=[r["std"] for r in rows][::-1],
            color="#4c78a8")
    ax.set_xlabel("accuracy drop when the group is shuffled")
    return to_data_uri(fig)


def curves_plot(summary: dict, images: list[dict]) -> str:
    """Mean deletion and insertion curves of every method, the random baseline dashed."""
    fig, axes = new_figure(9, 3.2, ncols=2)
    for ax, kind in zip(axes, ("deletion", "insertion"), strict=True):
        for name in summary:
            curves = [img["methods"][name][kind] for img in images if name in img["methods"]]
            if not curves:
                continue
            mean = np.mean(np.asarray(curves), axis=0)
            x = np.linspace(0, 1, len(mean))
            ax.plot(x, mean, "--" if name == "random" else "-", label=name)
        ax.set_title(f"{kind} (share of pixels {'blurred' if kind == 'deletion' else 'restored'})")
        ax.set_xlabel("share of pixels")
        ax.set_ylabel("probability of the explained class")
        ax.set_ylim(0, 1)
    axes[1].legend(fontsize=8)
    return to_data_uri(fig)


def write_gallery(out: Path, result: dict) -> Path:
    """explain.json and explain.html in ``out``."""
    atomic_write_text(out / "explain.json", json.dumps(result, indent=2))
    figures = {"curves": curves_plot(result["summary"], result["images"]) if result["images"] else None,
               "importance": importance_plot(result["importance"]) if result.get("importance") else None}
    html = render("explain.html.j2", result=result, figures=figures, title=Path(result["run"]).name)
    atomic_write_text(out / "explain.html", html)
    return out / "explain.html"
