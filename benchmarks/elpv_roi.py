"""Regions of interest on a cluttered frame: small ELPV cells pasted onto real photos and textures.

Built reproducibly (seed 0) from real images: each ELPV cell of the reference split (2-class:
defect probability >= 0.5) is resized to a side of 25-45 % of a 320 px canvas and pasted at a
random place onto a random crop of one of scikit-image's grey photos and textures (brick,
grass, gravel, camera, coins, moon, text, page, rough wall...), rescaled at random. The cell's
true mask is written beside each image (manifest column ``mask``).

The same model (a linear probe on the offline EfficientNet-Lite0 weights, 224 px) is trained
on each version of the inputs, in one process:
- ``none``: the whole frame resized (the thing to beat);
- each automatic region method (``otsu``, ``lcc``, ``watershed``, ``grabcut``, ``saliency``),
  cropped to its region;
- ``mask``: the true mask (the ceiling);
- ``cells``: the cells alone, not pasted (the reference split as in ../shared/BENCHMARKS.md).

Test accuracy and macro-F1 with 95 % bootstrap intervals, the mean IoU of each method's box
with the true box on the test frames, and the method's time per image.

    python benchmarks/elpv_roi.py [--methods none otsu lcc watershed grabcut saliency mask cells]
                                  [--limit N] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

METHODS = ["none", "otsu", "lcc", "watershed", "grabcut", "saliency", "mask", "cells"]
CANVAS = 320
PROBE = ["model.name=tf_efficientnet_lite0", "model.mode=linear-probe", "model.image_size=224"]


def backgrounds() -> list[np.ndarray]:
    from skimage import color, data

    names = ["brick", "grass", "gravel", "camera", "coins", "moon", "text", "page", "rough_wall",
             "cell", "clock", "horse", "immunohistochemistry", "coffee", "rocket", "astronaut", "chelsea"]
    out = []
    for name in names:
        try:
            img = getattr(data, name)()
        except Exception:  # noqa: BLE001 - a sample missing from this scikit-image: skip it
            continue
        if img.ndim == 3:
            img = (color.rgb2gray(img[..., :3]) * 255).astype(np.uint8)
        if img.dtype != np.uint8:
            img = (255 * (img > 0)).astype(np.uint8) if img.dtype == bool else img.astype(np.uint8)
        out.append(img)
    return out


def build(root: Path, limit: int | None, seed: int = 0) -> tuple[Path, Path]:
    """Pasted frames with masks, and the plain cells; a manifest for each."""
    import cv2
    from PIL import Image

    from imgcls.data import load_dataset

    ds = load_dataset("elpv")
    table = ds.table
    rng = np.random.default_rng(seed)
    rows = np.arange(len(table)) if limit is None else rng.choice(len(table), limit, replace=False)
    bgs = backgrounds()
    (root / "frames").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    (root / "cells").mkdir(exist_ok=True)
    framed, cells = [], []
    for n, i in enumerate(rows):
        cell = ds.read(int(i))
        cell = cell if cell.ndim == 2 else cell[..., 0]
        label = "defective" if float(table.at[int(i), "probability"]) >= 0.5 else "functional"
        bg = bgs[rng.integers(len(bgs))]
        zoom = rng.uniform(1.0, 2.0)
        bg = cv2.resize(bg, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LINEAR)
        if min(bg.shape) < CANVAS:
            bg = cv2.resize(bg, (CANVAS, CANVAS))
        y, x = rng.integers(0, bg.shape[0] - CANVAS + 1), rng.integers(0, bg.shape[1] - CANVAS + 1)
        frame = bg[y:y + CANVAS, x:x + CANVAS].copy()
        side = int(rng.uniform(0.25, 0.45) * CANVAS)
        top, left = rng.integers(0, CANVAS - side + 1, 2)
        frame[top:top + side, left:left + side] = cv2.resize(cell, (side, side), interpolation=cv2.INTER_AREA)
        noise = rng.normal(0, 4, frame.shape)  # sensor noise over the whole frame
        frame = np.clip(frame + noise, 0, 255).astype(np.uint8)
        mask = np.zeros_like(frame)
        mask[top:top + side, left:left + side] = 255
        name = f"{n:05d}.png"
        Image.fromarray(frame).save(root / "frames" / name)
        Image.fromarray(mask).save(root / "masks" / name)
        Image.fromarray(cell).save(root / "cells" / name)
        split = table.at[int(i), "split"]
        framed.append({"path": f"frames/{name}", "label": label, "split": split, "mask": f"masks/{name}",
                       "box": (int(top), int(top + side), int(left), int(left + side))})
        cells.append({"path": f"cells/{name}", "label": label, "split": split})
    pd.DataFrame(framed).drop(columns="box").to_csv(root / "framed.csv", index=False)
    pd.DataFrame(cells).to_csv(root / "cells.csv", index=False)
    pd.DataFrame(framed).to_json(root / "boxes.json")
    return root / "framed.csv", root / "cells.csv"


def box_iou(a, b) -> float:
    top, bottom = max(a[0], b[0]), min(a[1], b[1])
    left, right = max(a[2], b[2]), min(a[3], b[3])
    inter = max(0, bottom - top) * max(0, right - left)
    area = lambda r: (r[1] - r[0]) * (r[3] - r[2])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def region_quality(root: Path, method: str) -> dict:
    """Mean IoU of the method's box with the true box on the test frames, and ms per image."""
    from imgcls.data.decode import decode_image
    from imgcls.data.roi import mask_box, region_mask

    frames = pd.read_json(root / "boxes.json")
    frames = frames[frames["split"] == "test"]
    ious, fallback, seconds = [], 0, 0.0
    for row in frames.itertuples():
        img = decode_image(root / row.path)
        mask = decode_image(root / row.mask) if method == "mask" else None
        started = time.perf_counter()
        region = region_mask(img, method, mask)
        seconds += time.perf_counter() - started
        if region is None:
            fallback += 1
            ious.append(box_iou((0, CANVAS, 0, CANVAS), tuple(row.box)))
        else:
            ious.append(box_iou(mask_box(region), tuple(row.box)))
    return {"box_iou": float(np.mean(ious)), "whole_image": fallback / len(frames),
            "ms_per_image": 1000 * seconds / len(frames)}


def run(method: str, framed: Path, cells: Path, out: Path) -> dict:
    import imgcls

    started = time.perf_counter()
    data = cells if method == "cells" else framed
    roi = [] if method in ("none", "cells") else [f"model.roi={method}"]
    result = imgcls.train(str(data), out=out / method, overwrite=True, progress=False,
                          overrides=["cache=false", *PROBE, *roi])
    test = result.metrics["test"]
    return {"accuracy": test["accuracy"], "macro_f1": test["macro"]["f1"],
            "intervals": test.get("intervals", {}), "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="*", default=METHODS, choices=METHODS)
    parser.add_argument("--limit", type=int, default=None, help="use this many ELPV cells (default all)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="elpv-roi-") as tmp:
        root = Path(tmp)
        framed, cells = build(root / "data", args.limit)
        print(f"frames: {pd.read_csv(framed)['split'].value_counts().to_dict()}")
        for method in args.methods:
            results[method] = run(method, framed, cells, root / "runs")
            if method not in ("none", "cells"):
                results[method] |= region_quality(root / "data", method)
            print(method, json.dumps({k: v for k, v in results[method].items() if k != "intervals"}))
    base = results.get("none")
    print(f"\n{'input':>10} {'accuracy':>22} {'macro-F1':>22} {'box IoU':>8} {'whole':>6} {'ms/img':>7} "
          f"{'vs none':>8}")
    for name, r in results.items():
        ci = r["intervals"]
        cells_ = [f"{r[k]:.3f} ({ci[k][0]:.3f}-{ci[k][1]:.3f})" if k in ci else f"{r[k]:.3f}"
                  for k in ("accuracy", "macro_f1")]
        iou = f"{r['box_iou']:.2f}" if "box_iou" in r else "-"
        whole = f"{r['whole_image']:.0%}" if "whole_image" in r else "-"
        ms = f"{r['ms_per_image']:.0f}" if "ms_per_image" in r else "-"
        gain = f"{r['accuracy'] - base['accuracy']:+.3f}" if base else "-"
        print(f"{name:>10} {cells_[0]:>22} {cells_[1]:>22} {iou:>8} {whole:>6} {ms:>7} {gain:>8}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
