"""ELPV with the deep school (linear probe so far): imgcls against a plain timm + PyTorch loop.

Baseline, run first in the same process: timm tf_efficientnet_lite0 with the same offline
ImageNet weights, PIL decode + resize to 224, eager fp32 under no_grad, batch 32, then a
scikit-learn LogisticRegression on the embeddings. imgcls: `imgcls.train("elpv",
model="tf_efficientnet_lite0")` with caches off (cold). Same split as every ELPV figure.

    python benchmarks/elpv_deep.py [--tasks elpv elpv4] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def baseline(task: str) -> dict:
    import timm
    import torch
    from PIL import Image
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    from imgcls.data import load_dataset
    from imgcls.models.pretrained import load_lite0

    ds = load_dataset(task)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0).eval()
    load_lite0(model)
    started = time.perf_counter()
    feats = []
    with torch.no_grad():
        for start in range(0, len(ds), 32):
            batch = [np.asarray(Image.open(ds.file_path(i)).convert("RGB").resize((224, 224)))
                     for i in range(start, min(start + 32, len(ds)))]
            x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            feats.append(model(x).numpy())
    embed_seconds = time.perf_counter() - started
    X, y = np.concatenate(feats), ds.labels
    split = ds.table["split"].to_numpy()
    head = LogisticRegression(max_iter=3000).fit(X[split == "train"], y[split == "train"])
    pred = head.predict(X[split == "test"])
    return {"accuracy": accuracy_score(y[split == "test"], pred),
            "macro_f1": f1_score(y[split == "test"], pred, average="macro"),
            "embed_images_per_s": len(ds) / embed_seconds,
            "wall_seconds": time.perf_counter() - started}


def ours(task: str, out: Path) -> dict:
    import pandas as pd

    import imgcls

    started = time.perf_counter()
    run = imgcls.train(task, model="tf_efficientnet_lite0", out=out / task, overwrite=True,
                       overrides=["cache=false"], progress=False)
    wall = time.perf_counter() - started
    test = run.metrics["test"]
    preds = pd.read_csv(run.path / "predictions.csv", dtype={"label": str, "prediction": str})
    preds = preds[preds["split"] == "test"]
    per_type = {t: float((preds.loc[preds["type"] == t, "label"]
                          == preds.loc[preds["type"] == t, "prediction"]).mean()) for t in ("mono", "poly")}
    return {"accuracy": test["accuracy"], "accuracy_ci": test["intervals"]["accuracy"],
            "macro_f1": test["macro"]["f1"], "per_type": per_type, "wall_seconds": wall,
            "fit_seconds": run.metrics["timings"]["fit_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["elpv", "elpv4"])
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            base = None if args.skip_baseline else baseline(task)
            mine = ours(task, Path(tmp))
            results[task] = {"baseline": base, "imgcls": mine}
            print(f"\n== {task} linear probe ==\nimgcls: {json.dumps(mine, default=float)}", flush=True)
            if base:
                print(f"plain loop: {json.dumps(base, default=float)}")
                print(f"wall-time ratio plain/imgcls: {base['wall_seconds'] / mine['wall_seconds']:.2f}x")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "elpv_deep.json").write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
