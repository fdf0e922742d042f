"""Active learning against hidden labels: how many labels each strategy needs.

The labelling page's loop, simulated with an oracle: the real labels are hidden and
revealed only for the images a strategy asks about, a batch at a time; after each batch
the quick model (a logistic regression on the image vectors the page uses) is refitted and
scored on held-out test images. Strategies: ``random`` (the baseline, in the same run),
``margin``, ``entropy``, ``diversity`` (k-centre) and ``mix`` (k-centre among the most
uncertain), each with 10 % random picks except ``random`` itself, over several seeds.

- ``elpv``: the 2-class ELPV cells (reference split: its 656 test cells held out),
  EfficientNet-Lite0 embeddings at 224 px (offline ImageNet weights);
- ``digits``: scikit-learn's digits (25 % held out, stratified, seed 0), hand-made features
  of the 8 px images.

Printed: mean test accuracy (and its spread over seeds) at fixed label counts, and the
labels each strategy needs to reach the accuracy that random order reaches with the full
budget (on the mean curve), with the saving against that budget. The cross-validated
estimate the page shows (on the random draws) and the plain cross-validation on every label
are printed beside the true accuracy at the end.

    python benchmarks/active_learning.py [--data elpv digits] [--seeds 5] [--out al.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

STRATEGIES = ("random", "margin", "entropy", "diversity", "mix")
SETTINGS = {"elpv": {"budget": 400, "batch": 20}, "digits": {"budget": 300, "batch": 10}}


def vectors(name: str):
    from imgcls.config import SplitConfig
    from imgcls.data import assign_splits, load_dataset
    from imgcls.labelling.learner import image_vectors

    ds = load_dataset(name)
    if name == "elpv":
        ds = assign_splits(ds, SplitConfig())  # the reference split
    else:
        ds = assign_splits(ds, SplitConfig(test=0.25, val=0.0, seed=0))
    started = time.perf_counter()
    X, loaded = image_vectors(ds, progress=False, backbone="auto")
    seconds = time.perf_counter() - started
    rows = loaded.rows
    y = ds.labels[rows].astype(str)
    test = np.flatnonzero(ds.table["split"].to_numpy()[rows] == "test")
    print(f"{name}: {len(X)} images, {X.shape[1]} dims in {seconds:.0f} s; {len(test)} test, "
          f"{len(X) - len(test)} in the pool; classes {pd_counts(y)}")
    return X, y, test


def pd_counts(y: np.ndarray) -> dict:
    names, counts = np.unique(y, return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts, strict=True)}


def run(name: str, seeds: int) -> dict:
    from imgcls.labelling.simulate import labels_to_reach, simulate

    X, y, test = vectors(name)
    setting = SETTINGS[name]
    curves: dict[str, list] = {}
    for strategy in STRATEGIES:
        started = time.perf_counter()
        curves[strategy] = [simulate(X, y, test, strategy, seed=s, estimate=True, **setting)
                            for s in range(seeds)]
        print(f"  {strategy}: {time.perf_counter() - started:.1f} s for {seeds} seeds")
    labels = [p["labels"] for p in curves["random"][0]]
    mean = {k: np.mean([[p["accuracy"] or 0 for p in c] for c in v], axis=0) for k, v in curves.items()}
    spread = {k: np.std([[p["accuracy"] or 0 for p in c] for c in v], axis=0) for k, v in curves.items()}
    target = float(mean["random"][-1])
    budget = setting["budget"]
    result = {"labels": labels, "target": target, "budget": budget, "strategies": {}}
    checkpoints = [c for c in (20, 50, 100, 200, 300, 400) if c in labels]
    print(f"\n{name}: mean test accuracy (sd over {seeds} seeds) by labels")
    print(f"{'strategy':>10} " + " ".join(f"{c:>13}" for c in checkpoints) + "  labels to reach random@"
          f"{budget} ({target:.3f})")
    for k in STRATEGIES:
        curve = [{"labels": n, "accuracy": float(a)} for n, a in zip(labels, mean[k], strict=True)]
        need = labels_to_reach(curve, target)
        last = [c[-1] for c in curves[k]]
        estimate = np.mean([p["estimate"] for p in last if p["estimate"] is not None])
        plain = np.mean([p["estimate_all_labels"] for p in last if p.get("estimate_all_labels") is not None])
        at = [labels.index(c) for c in checkpoints]
        cells = " ".join(f"{mean[k][i]:.3f}±{spread[k][i]:.3f}" for i in at)
        saving = f"{need} ({1 - need / budget:+.0%} saved)" if need else f"not reached by {budget}"
        print(f"{k:>10} {cells}  {saving}; at the end the page's estimate {estimate:.3f}, cross-validation "
              f"on every label {plain:.3f}, true {mean[k][-1]:.3f}")
        result["strategies"][k] = {"mean": mean[k].tolist(), "sd": spread[k].tolist(), "labels_needed": need,
                                   "final_estimate": float(estimate), "final_cv_all_labels": float(plain)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default=None, help="write the curves as JSON")
    args = parser.parse_args()
    results = {name: run(name, args.seeds) for name in args.data}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
