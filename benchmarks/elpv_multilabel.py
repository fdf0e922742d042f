"""A real multi-label benchmark built from ELPV: 2x2 mosaics of solar cells, one label per cell
type and defect grade present.

No labelled multi-label image set ships on PyPI, so this one is made reproducibly from real
images: the ELPV cells of the reference split are shuffled (seed 0) and laid out four to a
600x600 mosaic, train cells into train mosaics and test cells into test mosaics (no cell
crosses the split). A mosaic carries the label ``mono`` or ``poly`` when it holds a cell of
that type, and ``defect_33``, ``defect_67``, ``defect_100`` when it holds a cell of that
defect probability (functional cells add no label). Written to a temporary folder as PNG
files and a manifest with a ``labels`` column.

Run side by side, on the same mosaics:
- baseline: plain PyTorch, the same frozen EfficientNet-Lite0 (offline ImageNet weights, 224 px)
  and a single linear layer with a sigmoid per label, trained with BCE (Adam, full batch,
  300 steps), every label at probability 0.5;
- imgcls: an SVM on hand-made features (one per label), a linear probe on Lite0 and a
  fine-tuned Lite0, each with per-label thresholds tuned for F1 on a validation split
  (10 % of the train mosaics), and the probe also at 0.5 (``decision.target=threshold``), so
  that the effect of the thresholds is seen apart from the model;
- ``search``: ``imgcls search`` over both schools (selected by validation mAP, 10 % of the
  train mosaics), ``--budget`` (default 5m), its winner refitted and tested once.

Micro-F1, macro-F1 and mAP on the test mosaics, with 95 % bootstrap intervals.

    python benchmarks/elpv_multilabel.py [--models svm probe probe-0.5 finetune search] [--budget 5m]
                                         [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

GRADES = {0.33: "defect_33", 0.67: "defect_67", 1.0: "defect_100"}  # defect probability, rounded
MODELS = {
    "svm": ["model.name=svm"],
    "probe": ["model.name=tf_efficientnet_lite0", "model.mode=linear-probe", "model.image_size=224"],
    "probe-0.5": ["model.name=tf_efficientnet_lite0", "model.mode=linear-probe", "model.image_size=224",
                  "decision.target=threshold"],
    "finetune": ["model.name=tf_efficientnet_lite0", "model.image_size=224",
                 "model.augment=crop+hflip+vflip", "train.tta=hflip+vflip"],
}
SEARCH = "search"


def cell_labels(row) -> set[str]:
    out = {str(row.type)}
    grade = GRADES.get(round(float(row.probability), 2))
    if grade:
        out.add(grade)
    return out


def build_mosaics(root: Path, seed: int = 0) -> Path:
    """The mosaics and ``manifest.csv`` (path, labels, split) under ``root``."""
    from PIL import Image

    from imgcls.data import load_dataset

    ds = load_dataset("elpv")
    table = ds.table
    rng = np.random.default_rng(seed)
    rows = []
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        cells = rng.permutation(np.flatnonzero(table["split"].to_numpy() == split))
        for m in range(len(cells) // 4):
            picked = cells[4 * m:4 * m + 4]
            mosaic = np.zeros((600, 600), np.uint8)
            labels: set[str] = set()
            for q, i in enumerate(picked):
                img = ds.read(int(i))
                img = img if img.ndim == 2 else img[..., 0]
                mosaic[300 * (q // 2):300 * (q // 2) + 300, 300 * (q % 2):300 * (q % 2) + 300] = \
                    np.asarray(Image.fromarray(img).resize((300, 300)))
                labels |= cell_labels(table.iloc[int(i)])
            name = f"{split}_{m:04d}.png"
            Image.fromarray(mosaic).save(root / name)
            rows.append({"path": name, "labels": "|".join(sorted(labels)), "split": split})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def plain_baseline(manifest: Path) -> dict:
    """Frozen Lite0 embeddings, one linear layer + sigmoid per label, BCE, threshold 0.5."""
    import timm
    import torch

    from imgcls.data import ImageSpec, load_images
    from imgcls.data.sources import from_manifest
    from imgcls.data.tasks import indicator, label_names
    from imgcls.evaluation.multilabel import multilabel_metrics
    from imgcls.models.deep.pretrained import load_lite0

    started = time.perf_counter()
    ds = from_manifest(manifest, multilabel=True)
    ds.table["label"] = ds.table["label"].astype(str)
    images = load_images(ds, ImageSpec(size=224, channels=3), n_jobs=2, progress=False).images
    torch.set_num_threads(2)
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    load_lite0(net)
    net.eval()
    with torch.inference_mode():
        feats = torch.cat([net(torch.from_numpy(images[s:s + 32]).permute(0, 3, 1, 2).float() / 127.5 - 1)
                           for s in range(0, len(images), 32)])
    names = label_names(ds.labels)
    y = torch.from_numpy(indicator(ds.labels, names).astype(np.float32))
    train = torch.from_numpy(ds.table["split"].to_numpy() == "train")
    head = torch.nn.Linear(feats.shape[1], len(names))
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(300):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(feats[train]), y[train])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        proba = torch.sigmoid(head(feats[~train])).numpy()
    truth = ds.labels[~train.numpy()]
    decided = ["|".join(n for n, on in zip(names, row, strict=True) if on) for row in proba >= 0.5]
    m = multilabel_metrics(truth, proba, names, decided)
    return {**_figures(m), "seconds": round(time.perf_counter() - started, 1)}


def _figures(m: dict) -> dict:
    return {"micro_f1": m["micro"]["f1"], "macro_f1": m["macro"]["f1"], "map": m["map"],
            "subset_accuracy": m["subset_accuracy"], "hamming_loss": m["hamming_loss"],
            "intervals": m["intervals"],
            "per_label": {k: {"f1": v["f1"], "ap": v["ap"], "support": v["support"],
                              "threshold": v.get("threshold")} for k, v in m["per_label"].items()}}


def ours(name: str, manifest: Path, out: Path, budget: str = "5m") -> dict:
    import imgcls

    started = time.perf_counter()
    if name == SEARCH:
        result = imgcls.search(str(manifest), budget=budget, out=out / name, progress=False,
                               overrides=["cache=false", "task.kind=multilabel", "split.val=0.1"])
        summary = result.summary
        print(f"search: {summary['trials']} trials; winner {summary.get('winner')}, validation mAP "
              f"{summary.get('best_val_score', float('nan')):.3f}")
        seconds = round(time.perf_counter() - started, 1)
        return {**_figures(result.best_run.metrics["test"]), "seconds": seconds,
                "winner": summary.get("winner"), "trials": summary["trials"]}
    run = imgcls.train(str(manifest), out=out / name, overwrite=True, progress=False,
                       overrides=["cache=false", "task.kind=multilabel", "split.val=0.1", *MODELS[name]])
    return {**_figures(run.metrics["test"]), "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=[*MODELS, SEARCH])
    parser.add_argument("--budget", default="5m", help="the search's budget (--models search)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="elpv-multilabel-") as tmp:
        manifest = build_mosaics(Path(tmp) / "mosaics")
        table = pd.read_csv(manifest, keep_default_na=False)
        counts = pd.Series([n for v in table["labels"] for n in v.split("|") if n]).value_counts()
        print(f"mosaics: {table['split'].value_counts().to_dict()}; images with each label: "
              f"{counts.to_dict()}")
        if not args.skip_baseline:
            results["baseline"] = plain_baseline(manifest)
        for name in args.models:
            results[name] = ours(name, manifest, Path(tmp), args.budget)
    base = results.get("baseline")
    print(f"\n{'model':>10} {'micro-F1':>18} {'macro-F1':>18} {'mAP':>18} {'subset':>7} {'s':>6}")
    for name, r in results.items():
        ci = r["intervals"]
        cells = [f"{r[k]:.3f} ({ci[k][0]:.3f}-{ci[k][1]:.3f})" for k in ("micro_f1", "macro_f1", "map")]
        print(f"{name:>10} {cells[0]:>18} {cells[1]:>18} {cells[2]:>18} {r['subset_accuracy']:7.3f} "
              f"{r['seconds']:6.0f}")
    if base:
        for name, r in results.items():
            if name != "baseline":
                print(f"{name} vs baseline: micro-F1 {r['micro_f1'] - base['micro_f1']:+.3f}, macro-F1 "
                      f"{r['macro_f1'] - base['macro_f1']:+.3f}, mAP {r['map'] - base['map']:+.3f}")
    for name, r in results.items():
        print(f"{name} per label F1: " + ", ".join(f"{k} {v['f1']:.2f}" for k, v in r["per_label"].items()))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
