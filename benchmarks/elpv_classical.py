"""ELPV with the classical school: imgcls's default recipe against the plain reference recipe.

Same split as ../shared BENCHMARKS (75/25, stratified by defect level x cell type, seed 0),
which is the built-in `elpv` / `elpv4` split. The reference recipe is run in this process
first: scikit-image HOG + uniform LBP (8,1)+(16,2) + 32-bin histogram at 150 px,
StandardScaler + RBF SVC with C chosen by 3-fold CV. Caches are off, so every figure is cold.

    python benchmarks/elpv_classical.py [--tasks elpv elpv4] [--model svm] [--features auto]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def reference_features(paths: list[Path]) -> np.ndarray:
    from PIL import Image
    from skimage.feature import hog, local_binary_pattern
    from skimage.transform import resize

    rows = []
    for path in paths:
        img = np.asarray(Image.open(path).convert("L"))
        img = (resize(img, (150, 150), anti_aliasing=True) * 255).astype(np.uint8)
        parts = [hog(img)]
        for points, radius in ((8, 1), (16, 2)):
            codes = local_binary_pattern(img, points, radius, method="uniform")
            parts.append(np.histogram(codes, bins=points + 2, range=(0, points + 2), density=True)[0])
        parts.append(np.histogram(img, bins=32, range=(0, 256), density=True)[0])
        rows.append(np.concatenate(parts))
    return np.asarray(rows, dtype=np.float32)


def reference_fit_eval(X, y, train, test) -> dict:
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    started = time.perf_counter()
    # Shuffled folds: labels.csv is ordered by cell type, and unshuffled folds then pick a C
    # that predicts the majority class.
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    grid = GridSearchCV(make_pipeline(StandardScaler(), SVC()), {"svc__C": [0.1, 1, 10, 100]}, cv=folds,
                        n_jobs=2).fit(X[train], y[train])
    pred = grid.predict(X[test])
    return {"accuracy": accuracy_score(y[test], pred),
            "macro_f1": f1_score(y[test], pred, average="macro"),
            "fit_seconds": time.perf_counter() - started, "pred": pred}


def by_type(labels, pred, types) -> dict:
    return {t: float(np.mean(labels[types == t] == pred[types == t])) for t in ("mono", "poly")}


def run_reference(task: str, features_cache: dict) -> dict:
    from imgcls.data import load_dataset

    ds = load_dataset(task)
    if "X" not in features_cache:
        started = time.perf_counter()
        features_cache["X"] = reference_features([ds.file_path(i) for i in range(len(ds))])
        features_cache["seconds"] = time.perf_counter() - started
    split = ds.table["split"].to_numpy()
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    result = reference_fit_eval(features_cache["X"], ds.labels, train, test)
    result["per_type"] = by_type(ds.labels[test], result.pop("pred"), ds.table["type"].to_numpy()[test])
    result["features_images_per_s"] = len(ds) / features_cache["seconds"]
    return result


def run_imgcls(task: str, model: str, features: str, out: Path, overrides: list[str]) -> dict:
    import pandas as pd

    import imgcls

    started = time.perf_counter()
    run = imgcls.train(task, model=model, features=features, out=out / task, overwrite=True,
                       overrides=["cache=false", *overrides], progress=False)
    wall = time.perf_counter() - started
    test = run.metrics["test"]
    preds = pd.read_csv(run.path / "predictions.csv", dtype={"label": str, "prediction": str})
    preds = preds[preds["split"] == "test"]
    return {"accuracy": test["accuracy"], "macro_f1": test["macro"]["f1"],
            "accuracy_ci": test["intervals"]["accuracy"],
            "per_type": by_type(preds["label"].to_numpy(), preds["prediction"].to_numpy(),
                                preds["type"].to_numpy()),
            "fit_seconds": run.metrics["timings"]["fit_seconds"], "wall_seconds": wall,
            "features": run.model.features, "images_per_s": 2624 / wall,
            "features_images_per_s": run.metrics["timings"].get("features_images_per_s")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["elpv", "elpv4"])
    parser.add_argument("--model", default="svm")
    parser.add_argument("--features", default="auto")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("overrides", nargs="*", help="imgcls key=value overrides")
    args = parser.parse_args()
    results, cache = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            ref = None if args.skip_reference else run_reference(task, cache)
            if ref:
                print(f"reference {task}: {json.dumps(ref, default=float)}", flush=True)
            ours = run_imgcls(task, args.model, args.features, Path(tmp), args.overrides)
            results[task] = {"reference": ref, "imgcls": ours}
            report(task, ref, ours)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    name = "elpv_classical" + ("-" + "-".join(args.overrides) if args.overrides else "")
    (out / f"{name}.json").write_text(json.dumps(results, indent=2, default=float))


def report(task: str, ref: dict | None, ours: dict) -> None:
    print(f"\n== {task} ==", flush=True)
    print(f"imgcls {ours['features']}: accuracy {ours['accuracy']:.4f} "
          f"(95% CI {ours['accuracy_ci'][0]:.3f}-{ours['accuracy_ci'][1]:.3f}), "
          f"macro-F1 {ours['macro_f1']:.4f}, mono/poly {ours['per_type']['mono']:.3f}/"
          f"{ours['per_type']['poly']:.3f}, fit {ours['fit_seconds']:.1f} s "
          f"(features {ours['features_images_per_s']} img/s), "
          f"whole run {ours['wall_seconds']:.1f} s ({ours['images_per_s']:.1f} img/s end to end)")
    if ref:
        print(f"reference: accuracy {ref['accuracy']:.4f}, macro-F1 {ref['macro_f1']:.4f}, "
              f"mono/poly {ref['per_type']['mono']:.3f}/{ref['per_type']['poly']:.3f}, "
              f"features {ref['features_images_per_s']:.1f} img/s, fit {ref['fit_seconds']:.1f} s")
        print(f"ratio imgcls/reference: accuracy {ours['accuracy'] / ref['accuracy']:.3f}, "
              f"macro-F1 {ours['macro_f1'] / ref['macro_f1']:.3f}")


if __name__ == "__main__":
    main()
