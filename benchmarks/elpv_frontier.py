"""The accuracy-versus-minutes frontier on ELPV: one row per training recipe, same split, same process.

Each recipe is an ordinary ``imgcls.train`` run with caches off (cold: decoding, features or
embeddings, training, evaluation, report), run one after the other so they share the machine
equally. The SVM row is the baseline every other row is compared with (accuracy difference
and time ratio). A row prints its exact command. Ensemble rows combine runs already made
in this output folder with equal weights (the members trained on all of the training split,
so no validation split is left to weigh them on).

Results are appended to ``benchmarks/out/frontier-<task>.json`` as each recipe finishes,
so an interrupted run keeps what it measured; ``--recipes`` picks rows.

    python benchmarks/elpv_frontier.py [--task elpv|elpv4] [--recipes svm probe ft224 ...]
                                       [--keep runs/frontier]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SOLAR = ["model.augment=crop+hflip+vflip", "train.tta=hflip+vflip"]  # flips keep a cell's label
LITE0 = "tf_efficientnet_lite0"

RECIPES: dict[str, tuple[str, list[str]]] = {
    "svm": ("svm", []),
    "probe": (LITE0, ["model.mode=linear-probe"]),
    "ft160": (LITE0, ["model.image_size=160", *SOLAR]),
    "ft224": (LITE0, ["model.image_size=224", *SOLAR]),
    "ft224-ema": (LITE0, ["model.image_size=224", "train.ema=true", *SOLAR]),
    "ft224-10ep": (LITE0, ["model.image_size=224", "train.epochs=10", *SOLAR]),
    "ft224-freeze2": (LITE0, ["model.image_size=224", "train.freeze=2", *SOLAR]),
    "ft288": (LITE0, ["model.image_size=288", *SOLAR]),
    "lite1-240": ("tf_efficientnet_lite1", ["model.image_size=240", *SOLAR]),
    "lite2-260": ("tf_efficientnet_lite2", ["model.image_size=260", *SOLAR]),
    "ft224-ordinal": (LITE0, ["model.image_size=224", "task.kind=ordinal", *SOLAR]),
}
ENSEMBLES = {"ens-ft224+svm": ("ft224", "svm"), "ens-ft224+probe+svm": ("ft224", "probe", "svm"),
             "ens-ft288+ft224+svm": ("ft288", "ft224", "svm")}


def per_type(run) -> dict:
    import pandas as pd

    preds = pd.read_csv(run.path / "predictions.csv", dtype={"label": str, "prediction": str})
    preds = preds[preds["split"] == "test"]
    return {t: float((preds.loc[preds["type"] == t, "label"] == preds.loc[preds["type"] == t, "prediction"])
                     .mean()) for t in ("mono", "poly")}


def summarise(run, wall: float) -> dict:
    test = run.metrics["test"]
    fit = run.metrics.get("model", {}).get("fit", {}) or {}
    row = {"accuracy": test["accuracy"], "accuracy_ci": test["intervals"]["accuracy"],
           "macro_f1": test["macro"]["f1"], "per_type": per_type(run), "wall_seconds": wall,
           "train_images_per_s": fit.get("train_images_per_s"), "path": str(run.path)}
    if "ordinal" in test:
        row["kappa"] = test["ordinal"]["qwk"]
    return row


def train(task: str, name: str, keep: Path) -> dict:
    import imgcls

    model, overrides = RECIPES[name]
    overrides = ["cache=false", *overrides]
    started = time.perf_counter()
    run = imgcls.train(task, model=model, out=keep / f"{task}-{name}", overwrite=True,
                       overrides=overrides, progress=False)
    row = summarise(run, time.perf_counter() - started)
    row["command"] = f"imgcls train {task} --model {model} " + " ".join(overrides)
    return row


def ensemble(task: str, name: str, keep: Path, done: dict) -> dict | None:
    import imgcls

    members = [done[m]["path"] for m in ENSEMBLES[name] if m in done]
    if len(members) < len(ENSEMBLES[name]):
        return None
    started = time.perf_counter()
    run = imgcls.train(task, model="ensemble", out=keep / f"{task}-{name}", overwrite=True,
                       overrides=["cache=false", f"model.members=[{','.join(members)}]"], progress=False)
    row = summarise(run, time.perf_counter() - started)
    # members' own training time counts: an ensemble costs what its members cost, plus its own
    row["wall_seconds"] += sum(done[m]["wall_seconds"] for m in ENSEMBLES[name])
    row["command"] = (f"imgcls train {task} --model ensemble model.members=[" +
                      ",".join(f"<{m} run>" for m in ENSEMBLES[name]) + "]")
    return row


def print_table(task: str, done: dict) -> None:
    base = done.get("svm")
    print(f"\n== {task}: accuracy against minutes ==")
    for name, r in sorted(done.items(), key=lambda kv: kv[1]["wall_seconds"]):
        lo, hi = r["accuracy_ci"]
        gap = r["per_type"]["poly"] - r["per_type"]["mono"]
        extra = f"  kappa {r['kappa']:.3f}" if "kappa" in r else ""
        vs = (f"  vs svm {100 * (r['accuracy'] - base['accuracy']):+.1f} pt, "
              f"{r['wall_seconds'] / base['wall_seconds']:.1f}x time") if base else ""
        print(f"{name:22s} {r['accuracy']:.4f} ({lo:.3f}-{hi:.3f})  F1 {r['macro_f1']:.3f}{extra}  "
              f"mono {r['per_type']['mono']:.3f} poly {r['per_type']['poly']:.3f} (gap {100 * gap:+.1f})  "
              f"{r['wall_seconds'] / 60:5.1f} min{vs}")
        print(f"{'':22s} {r['command']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="elpv", choices=["elpv", "elpv4"])
    parser.add_argument("--recipes", nargs="+", default=[*RECIPES, *ENSEMBLES])
    parser.add_argument("--keep", type=Path, default=Path("runs/frontier"))
    parser.add_argument("--again", action="store_true", help="rerun recipes already in the results file")
    args = parser.parse_args()
    unknown = set(args.recipes) - set(RECIPES) - set(ENSEMBLES)
    if unknown:
        parser.error(f"unknown recipes {sorted(unknown)}; known: {[*RECIPES, *ENSEMBLES]}")
    results = Path(__file__).parent / "out" / f"frontier-{args.task}.json"
    results.parent.mkdir(exist_ok=True)
    done = json.loads(results.read_text()) if results.is_file() else {}
    for name in args.recipes:
        if name in done and not args.again:
            continue
        row = (train(args.task, name, args.keep) if name in RECIPES
               else ensemble(args.task, name, args.keep, done))
        if row is None:
            print(f"{name}: skipped, its members have not run yet", flush=True)
            continue
        done[name] = row
        results.write_text(json.dumps(done, indent=1, default=float))
        print(f"{name}: {row['accuracy']:.4f} in {row['wall_seconds']:.0f} s", flush=True)
    print_table(args.task, done)


if __name__ == "__main__":
    main()
