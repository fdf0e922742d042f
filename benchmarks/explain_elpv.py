"""Faithfulness and speed of explanations on ELPV test images, against a random baseline.

For the deep run (EfficientNet-Lite0 fine-tune) and the classical run (SVM on HOG/LBP/GLCM/
edges/histogram), explain a seeded sample of test images with each method and, in the same
process, with a random attribution map; report per method the mean deletion area (lower is
more faithful), its ratio to the random map's, the insertion area, the share of images on
which the method beats random, and seconds per explanation on this machine. The deep run
also gets the model-randomisation sanity check (Grad-CAM, Integrated Gradients).

    python benchmarks/explain_elpv.py [--deep runs/elpv-lite0] [--classical runs/elpv-svm]
                                      [--n 50] [--n-classical 10] [--deep-methods gradcam+lime]
                                      [--tag NAME]

Runs missing on disk are trained first: `imgcls train elpv --model tf_efficientnet_lite0
model.augment=crop+hflip+vflip train.tta=hflip+vflip` (about 7 minutes) and `imgcls train
elpv --model svm` (about 2 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "out"
DEEP_RECIPE = ["model.augment=crop+hflip+vflip", "train.tta=hflip+vflip"]


def ensure_run(path: Path, model: str, overrides: list[str]) -> Path:
    import imgcls

    if not (path / "model").is_dir():
        imgcls.train("elpv", model=model, out=path, overrides=overrides, progress=False)
    return path


def test_sample(run: Path, n: int, seed: int = 0) -> list[str]:
    """Absolute paths of ``n`` test images of the run's split, a seeded random sample."""
    from imgcls import Run

    ds = Run.open(run).dataset()
    test = np.flatnonzero(ds.table["split"].to_numpy() == "test")
    picked = np.random.default_rng(seed).choice(test, size=min(n, len(test)), replace=False)
    return [str(ds.file_path(int(i))) for i in sorted(picked)]


def measure(run: Path, n: int, methods: str, sanity: bool, name: str) -> dict:
    import imgcls

    images = test_sample(run, n)
    started = time.perf_counter()
    result = imgcls.explain(run, images, methods=methods, out=OUT / f"explain-{name}", sanity=sanity,
                        progress=False)
    wall = time.perf_counter() - started
    random_deletion = result.summary["random"]["deletion_auc"]
    rows = {m: {**s, "ratio_to_random": s["deletion_auc"] / random_deletion}
            for m, s in result.summary.items()}
    by_class = _by_predicted_class(result.images)
    return {"run": str(run), "images": len(result.images), "methods": rows, "by_predicted_class": by_class,
            "sanity": result.sanity, "wall_seconds": wall, "threads": os.cpu_count()}


def _by_predicted_class(images: list[dict]) -> dict:
    out: dict = {}
    for label in sorted({img["prediction"] for img in images}):
        subset = [img for img in images if img["prediction"] == label]
        out[label] = {m: float(np.mean([img["methods"][m]["deletion_auc"] for img in subset]))
                      for m in subset[0]["methods"]} | {"n": len(subset)}
    return out


def print_table(title: str, result: dict) -> None:
    print(f"\n{title}: {result['images']} images, {result['wall_seconds']:.0f} s in all")
    header = ("method", "s/expl", "deletion", "vs random", "insertion", "beats rnd")
    print(f"{header[0]:22s}" + "".join(f" {h:>9s}" for h in header[1:]))
    for m, s in result["methods"].items():
        beats = "-" if s["beats_random"] is None else f"{100 * s['beats_random']:.0f} %"
        print(f"{m:22s} {s['seconds']:7.2f} {s['deletion_auc']:9.3f} {s['ratio_to_random']:8.2f}x "
              f"{s['insertion_auc']:9.3f} {beats:>9s}")
    for s in result["sanity"]:
        print(f"sanity {s['method']}: mean Spearman {s['mean_spearman']:.3f} -> "
              f"{'passed' if s['passed'] else 'FAILED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deep", type=Path, default=Path("runs/elpv-lite0"))
    parser.add_argument("--classical", type=Path, default=Path("runs/elpv-svm"))
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--n-classical", type=int, default=10)
    parser.add_argument("--deep-methods", default="gradcam+integrated_gradients+occlusion+lime+shap")
    parser.add_argument("--classical-methods", default="occlusion+lime+shap")
    parser.add_argument("--tag", default="", help="Suffix of the output names, to keep an earlier run.")
    args = parser.parse_args()
    tag = f"-{args.tag}" if args.tag else ""
    OUT.mkdir(parents=True, exist_ok=True)
    results = {}
    if args.n:
        ensure_run(args.deep, "tf_efficientnet_lite0", DEEP_RECIPE)
        results["deep"] = measure(args.deep, args.n, args.deep_methods, True, f"elpv-deep{tag}")
        print_table("deep (EfficientNet-Lite0 fine-tune)", results["deep"])
    if args.n_classical:
        ensure_run(args.classical, "svm", [])
        results["classical"] = measure(args.classical, args.n_classical, args.classical_methods, False,
                                       f"elpv-classical{tag}")
        print_table("classical (SVM)", results["classical"])
    path = OUT / f"explain_elpv{tag}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
