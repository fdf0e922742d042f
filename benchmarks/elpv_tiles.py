"""Large images: one small ELPV cell on a 2,048 px canvas of real texture, as tiled TIFFs.

Built reproducibly (seed 0) from real images: a random subset of the ELPV reference split
(2-class: defect probability >= 0.5) keeps its split; each cell is resized to a side of 6-12 %
of the canvas (123-246 px, 0.4-1.4 % of the area) and pasted at a random place onto a
2,048 x 2,048 canvas built from one of scikit-image's textures and photos (brick, grass,
gravel, rough wall...), mirrored to fill it, with sensor noise. The label is the cell's: the
evidence is a few tiles of a picture that is mostly texture. Canvases are written as tiled
TIFFs (256 px tiles), read tile by tile by the MIL models.

Compared in one process, same frozen backbone (offline EfficientNet-Lite0):
- ``whole``: the canvas resized to 224 px, a linear probe (the thing to beat);
- ``mil-attention``, ``mil-mean``, ``mil-max``: data.tiles=256, 64 tiles per canvas resized
  to ``--tile-size`` px, gated-attention pooling and its mean / max baselines (the tile
  embeddings are computed once and shared through the cache);
- ``cells``: the cells alone at 224 px (the ceiling).

Test accuracy and macro-F1 with 95 % bootstrap intervals, training time, and at prediction
(each in a fresh process, on the test canvases, batches of 8): images/s and the process's
peak resident memory (VmHWM, model included).

    python benchmarks/elpv_tiles.py [--limit 400] [--tile-size 160] [--methods ...] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

METHODS = ["whole", "mil-attention", "mil-mean", "mil-max", "cells"]
CANVAS = 2048
TILE = 256
PROBE = ["model.name=tf_efficientnet_lite0", "model.mode=linear-probe", "model.image_size=224"]


def textures() -> list[np.ndarray]:
    from skimage import color, data

    out = []
    for name in ["brick", "grass", "gravel", "rough_wall", "camera", "moon", "text", "page", "coins"]:
        try:
            img = getattr(data, name)()
        except Exception:  # noqa: BLE001 - a sample missing from this scikit-image: skip it
            continue
        img = (color.rgb2gray(img[..., :3]) * 255).astype(np.uint8) if img.ndim == 3 else img.astype(np.uint8)
        out.append(img)
    return out


def canvas_of(texture: np.ndarray, rng) -> np.ndarray:
    import cv2

    zoom = rng.uniform(1.0, 2.5)
    tex = cv2.resize(texture, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LINEAR)
    reps = (CANVAS // tex.shape[0] + 2, CANVAS // tex.shape[1] + 2)
    tiled = np.block([[tex if (r + c) % 2 == 0 else tex[::-1, ::-1] for c in range(reps[1])]
                      for r in range(reps[0])])
    y, x = rng.integers(0, tiled.shape[0] - CANVAS + 1), rng.integers(0, tiled.shape[1] - CANVAS + 1)
    return tiled[y:y + CANVAS, x:x + CANVAS].copy()


def build(root: Path, limit: int, seed: int = 0) -> tuple[Path, Path]:
    import cv2
    import tifffile
    from PIL import Image

    from imgcls.data import load_dataset

    ds = load_dataset("elpv")
    table = ds.table
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(table), min(limit, len(table)), replace=False)
    texs = textures()
    for folder in ("canvases", "cells"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    canvases, cells = [], []
    for n, i in enumerate(rows):
        cell = ds.read(int(i))
        cell = cell if cell.ndim == 2 else cell[..., 0]
        label = "defective" if float(table.at[int(i), "probability"]) >= 0.5 else "functional"
        canvas = canvas_of(texs[rng.integers(len(texs))], rng)
        side = int(rng.uniform(0.06, 0.12) * CANVAS)
        top, left = rng.integers(0, CANVAS - side + 1, 2)
        small = cv2.resize(cell, (side, side), interpolation=cv2.INTER_AREA)
        canvas[top:top + side, left:left + side] = small
        canvas = np.clip(canvas + rng.normal(0, 4, canvas.shape), 0, 255).astype(np.uint8)
        name = f"{n:05d}"
        tifffile.imwrite(root / "canvases" / f"{name}.tif", canvas, tile=(TILE, TILE), compression="zlib")
        Image.fromarray(cell).save(root / "cells" / f"{name}.png")
        split = table.at[int(i), "split"]
        canvases.append({"path": f"canvases/{name}.tif", "label": label, "split": split})
        cells.append({"path": f"cells/{name}.png", "label": label, "split": split})
    pd.DataFrame(canvases).to_csv(root / "canvases.csv", index=False)
    pd.DataFrame(cells).to_csv(root / "cells.csv", index=False)
    return root / "canvases.csv", root / "cells.csv"


def overrides(method: str, tile_size: int) -> list[str]:
    if method in ("whole", "cells"):
        return PROBE
    pooling = method.split("-", 1)[1]
    return ["model.name=mil", f"model.image_size={tile_size}", f"data.tiles={TILE}", "data.max_tiles=64",
            f"model.params.pooling={pooling}"]


def run(method: str, data: Path, out: Path, cache: Path, tile_size: int) -> dict:
    import imgcls

    started = time.perf_counter()
    result = imgcls.train(str(data), out=out / method, overwrite=True, progress=False,
                          overrides=[f"cache_dir={cache}", *overrides(method, tile_size)])
    test = result.metrics["test"]
    return {"accuracy": test["accuracy"], "macro_f1": test["macro"]["f1"],
            "intervals": test.get("intervals", {}), "train_seconds": round(time.perf_counter() - started, 1),
            "fit": result.metrics.get("timings", {})}


PREDICT = """
import json, sys, time
import pandas as pd
import imgcls
from imgcls.deploy.loading import load_predictor
run, manifest = sys.argv[1], sys.argv[2]
table = pd.read_csv(manifest)
files = [str(__import__('pathlib').Path(manifest).parent / p) for p in table[table.split == 'test'].path]
predictor = load_predictor(run, backend='torch')
imgcls.predict(predictor, files[:2], progress=False)  # warm up
started = time.perf_counter()
out = imgcls.predict(predictor, files, progress=False, batch_size=8)
seconds = time.perf_counter() - started
# VmHWM, this process's own peak: ru_maxrss would carry the parent's over fork + exec
peak = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM'))
print(json.dumps({"images_per_s": len(files) / seconds, "peak_mb": peak / 1024,
                  "errors": int((out.error != '').sum())}))
"""


def predict_speed(run_dir: Path, manifest: Path) -> dict:
    """Prediction in a fresh process with an empty cache: nothing embedded ahead of time."""
    import os

    with tempfile.TemporaryDirectory(prefix="elpv-tiles-cache-") as cache:
        done = subprocess.run([sys.executable, "-c", PREDICT, str(run_dir), str(manifest)],
                              capture_output=True, text=True, check=True,
                              env={**os.environ, "IMGCLS_CACHE_DIR": cache})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="*", default=METHODS, choices=METHODS)
    parser.add_argument("--limit", type=int, default=400, help="ELPV cells (canvases) to use")
    parser.add_argument("--tile-size", type=int, default=160, help="side the 256 px tiles are resized to")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="elpv-tiles-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        canvases, cells = build(root / "data", args.limit)
        print(f"canvases: {pd.read_csv(canvases)['split'].value_counts().to_dict()} "
              f"built in {time.perf_counter() - started:.0f} s")
        for method in args.methods:
            data = cells if method == "cells" else canvases
            results[method] = run(method, data, root / "runs", root / "cache", args.tile_size)
            results[method] |= predict_speed(root / "runs" / method, data)
            print(method, json.dumps({k: v for k, v in results[method].items() if k != "intervals"}))
    base = results.get("whole")
    print(f"\n{'method':>14} {'accuracy':>22} {'macro-F1':>22} {'train s':>8} {'img/s':>7} {'peak MB':>8} "
          f"{'vs whole':>9}")
    for name, r in results.items():
        ci = r["intervals"]
        shown = [f"{r[k]:.3f} ({ci[k][0]:.3f}-{ci[k][1]:.3f})" if k in ci else f"{r[k]:.3f}"
                 for k in ("accuracy", "macro_f1")]
        gain = f"{r['accuracy'] - base['accuracy']:+.3f}" if base else "-"
        print(f"{name:>14} {shown[0]:>22} {shown[1]:>22} {r['train_seconds']:>8.0f} "
              f"{r['images_per_s']:>7.2f} {r['peak_mb']:>8.0f} {gain:>9}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
