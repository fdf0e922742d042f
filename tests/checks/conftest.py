"""A small, learnable, duplicate-free dataset (stripes vs dots) and one holding every defect."""

from __future__ import annotations

import io
import struct

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import (
    SIZE,
    colourise,
    dots,
    stripes,
    write_bomb_png,
    write_empty,
    write_text_as_png,
    write_truncated_jpeg,
)


def make_clean(root, n=30, seed=0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for label, make in (("stripes", stripes), ("dots", dots)):
        for k in range(n):
            path = root / label / f"{label}{k:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(colourise(make(rng), rng)).save(path)
            rows.append({"path": f"{label}/{path.name}", "label": label,
                         "site": "a" if k % 2 else "b"})
    return rows


@pytest.fixture
def clean_folder(tmp_path):
    make_clean(tmp_path / "clean")
    return tmp_path / "clean"


def _cmyk_jpeg(path):
    Image.new("CMYK", (SIZE, SIZE), (0, 120, 120, 0)).save(path, "JPEG")


def _animated_gif(path):
    frames = [Image.fromarray(colourise(stripes(np.random.default_rng(s)), np.random.default_rng(s)))
              for s in (50, 51)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)


def _exif_rotated_jpeg(path, rng):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(colourise(dots(rng), rng)).save(path, "JPEG", exif=exif, quality=95)


@pytest.fixture
def defect_manifest(tmp_path):
    """Every defect once, in a manifest with splits and a metadata column."""
    root = tmp_path / "defects"
    rows = make_clean(root, n=30, seed=1)
    rng = np.random.default_rng(7)
    img_dir = root / "odd"
    img_dir.mkdir()

    def add(name, label="stripes", split="", site="a"):
        rows.append({"path": f"odd/{name}", "label": label, "split": split, "site": site})
        return img_dir / name

    base = colourise(stripes(rng), rng)
    Image.fromarray(base).save(add("dup_a.png", split="train"))
    Image.fromarray(base).save(add("dup_b.png", split="test"))                  # exact + leakage
    Image.fromarray(base).save(add("dup_c.png", label="dots", split="train"))   # label conflict
    near = np.clip(base.astype(int) + 3, 0, 255).astype(np.uint8)
    Image.fromarray(near).save(add("near.jpg"), quality=90)                     # near duplicate
    write_truncated_jpeg(add("truncated.jpg"))
    write_empty(add("empty.png"))
    write_text_as_png(add("notes.png"))
    (add("garbage.png")).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))         # unreadable
    write_bomb_png(add("bomb.png"))
    Image.fromarray(colourise(dots(rng), rng)).save(add("jpeg_named.png"), "JPEG")  # mismatch
    Image.fromarray(colourise(dots(rng), rng)[:6, :6]).save(add("tiny.png"))
    Image.fromarray(np.tile(colourise(stripes(rng), rng), (1, 6, 1))).save(add("wide.png"))
    Image.fromarray(stripes(rng).astype(np.uint16) * 257).save(add("deep16.png"))
    _cmyk_jpeg(add("cmyk.jpg"))
    rgba = np.dstack([colourise(dots(rng), rng), np.full((SIZE, SIZE), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(add("alpha.png"))
    _animated_gif(add("anim.gif"))
    _exif_rotated_jpeg(add("rotated.jpg"), rng)
    Image.fromarray(stripes(rng)).save(add("grey.png"))                          # grey among colour
    Image.fromarray((colourise(dots(rng), rng) * 0.08).astype(np.uint8)).save(add("dark.png"))
    Image.fromarray(255 - (colourise(dots(rng), rng) * 0.05).astype(np.uint8)).save(add("bright.png"))
    Image.fromarray(np.full((SIZE, SIZE, 3), 128, np.uint8)).save(add("flat.png"))  # low information
    import cv2

    blurred = cv2.GaussianBlur(colourise(dots(rng), rng), (0, 0), 6)
    Image.fromarray(blurred).save(add("blurred.png"))
    Image.fromarray(colourise(stripes(rng), rng)).save(add("mislabelled.png", label="dots"))
    for k in range(3):
        Image.fromarray(colourise(dots(rng), rng)).save(add(f"rare{k}.png", label="rare", site="b"))
    table = pd.DataFrame(rows)
    table["split"] = table["split"].fillna("")
    manifest = root / "manifest.csv"
    table.to_csv(manifest, index=False)
    return manifest


def png_bytes(arr) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, "PNG")
    return buffer.getvalue()


__all__ = ["png_bytes", "struct"]
