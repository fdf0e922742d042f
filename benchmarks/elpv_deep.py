"""ELPV with the deep school: imgcls fine-tuning and linear probe against plain timm + PyTorch.

Baselines, run in the same process before imgcls:
- plain fine-tuning loop: timm tf_efficientnet_lite0 (same offline ImageNet weights),
  224 px RGB, eager fp32, AdamW, batch 32, every layer trained, images already decoded in
  memory (which favours it). Timed over 15 steps after one warm-up step: training images/s.
- plain linear probe: PIL decode + resize 224, eager fp32 under no_grad, scikit-learn
  LogisticRegression on the embeddings.
imgcls runs with caches off (cold: decoding, checks, report and model folder included).
Same split as every ELPV figure (the reference split shipped with the dataset).

    python benchmarks/elpv_deep.py [--tasks elpv elpv4] [--modes finetune linear-probe]
                                   [--skip-baseline] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

FINETUNE = ["model.augment=crop+hflip+vflip", "train.tta=hflip+vflip"]  # solar cells: flips keep the label


def plain_finetune_throughput(task: str, steps: int = 15, batch: int = 32) -> dict:
    import timm
    import torch
    import torch.nn.functional as F

    from imgcls.data import ImageSpec, load_dataset, load_images
    from imgcls.models.deep.pretrained import load_lite0

    ds = load_dataset(task)
    images = load_images(ds, ImageSpec(size=224, channels=3), n_jobs=2, progress=False).images
    labels = torch.tensor(np.unique(ds.labels, return_inverse=True)[1])
    torch.set_num_threads(2)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    load_lite0(model)
    model.reset_classifier(len(np.unique(ds.labels)))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)

    def step(k: int) -> None:
        idx = np.arange(k * batch, (k + 1) * batch) % len(images)
        x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        loss = F.cross_entropy(model(x), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step(0)
    started = time.perf_counter()
    for k in range(1, steps + 1):
        step(k)
    return {"train_images_per_s": steps * batch / (time.perf_counter() - started)}


def plain_probe(task: str) -> dict:
    import timm
    import torch
    from PIL import Image
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    from imgcls.data import load_dataset
    from imgcls.models.deep.pretrained import load_lite0

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


def ours(task: str, mode: str, out: Path, extra: list[str]) -> dict:
    import pandas as pd

    import imgcls

    overrides = ["cache=false", f"model.mode={mode}", *(FINETUNE if mode == "finetune" else []), *extra]
    started = time.perf_counter()
    run = imgcls.train(task, model="tf_efficientnet_lite0", out=out / f"{task}-{mode}", overwrite=True,
                       overrides=overrides, progress=False)
    wall = time.perf_counter() - started
    test = run.metrics["test"]
    preds = pd.read_csv(run.path / "predictions.csv", dtype={"label": str, "prediction": str})
    preds = preds[preds["split"] == "test"]
    per_type = {t: float((preds.loc[preds["type"] == t, "label"]
                          == preds.loc[preds["type"] == t, "prediction"]).mean()) for t in ("mono", "poly")}
    fit = run.metrics["model"].get("fit", {})
    return {"overrides": overrides, "accuracy": test["accuracy"],
            "accuracy_ci": test["intervals"]["accuracy"],
            "macro_f1": test["macro"]["f1"], "per_type": per_type, "wall_seconds": wall,
            "fit_seconds": run.metrics["timings"]["fit_seconds"],
            "train_images_per_s": fit.get("train_images_per_s"), "epochs": fit.get("epochs")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["elpv", "elpv4"])
    parser.add_argument("--modes", nargs="+", default=["finetune", "linear-probe"])
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for imgcls")
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            for mode in args.modes:
                base = None
                if not args.skip_baseline:
                    base = plain_finetune_throughput(task) if mode == "finetune" else plain_probe(task)
                mine = ours(task, mode, Path(tmp), args.set)
                results[f"{task}/{mode}"] = {"baseline": base, "imgcls": mine}
                print(f"\n== {task} {mode} ==\nimgcls: {json.dumps(mine, default=float)}", flush=True)
                if base:
                    print(f"plain: {json.dumps(base, default=float)}")
                    if mode == "finetune" and mine["train_images_per_s"]:
                        ratio = mine["train_images_per_s"] / base["train_images_per_s"]
                        print(f"training throughput imgcls/plain: {ratio:.2f}x")
                    else:
                        ratio = base["wall_seconds"] / mine["wall_seconds"]
                        print(f"wall-time ratio plain/imgcls: {ratio:.2f}x")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "elpv_deep.json").write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
