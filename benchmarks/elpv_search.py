"""`imgcls search` on ELPV with caches empty: test figures with intervals, mono / poly, the ensemble.

Runs one search in this process (all three families, the default settings) with a fresh,
empty cache folder, so decoding, features, embeddings and every fit count against the
budget. Then prints, for the winner's run: test accuracy and macro-F1 (and quadratic-weighted
kappa for the 4-class task) with 95 % bootstrap intervals; accuracy of mono and poly cells
and the gap between them with its interval (`imgcls.audit`, group_by=type); what the
winner holds (members, weights, refitted or not); the budget against the wall time.
Beside it, in one table: the best single run of `benchmarks/elpv_frontier.py` (from its
results file, same split) and the previous 15-minute search (docs/benchmarks.md, issue 7).

    python benchmarks/elpv_search.py [--task elpv|elpv4] [--budget 20m] [--metric auto|accuracy|kappa ...]
        [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "out"
PREVIOUS = {"elpv": 0.834}  # `imgcls search elpv --budget 15m`, before ensembles and refit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="elpv", choices=["elpv", "elpv4"])
    parser.add_argument("--budget", default="20m")
    parser.add_argument("--metric", default="auto", help="what the search selects on")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every trial")
    args = parser.parse_args()

    import imgcls

    tag = f"{args.task}-{args.budget}" + ("" if args.metric == "auto" else f"-{args.metric}")
    out = args.out or Path("runs") / f"search-{tag}"
    with tempfile.TemporaryDirectory(prefix="imgcls-cold-cache-") as cache:
        started = time.perf_counter()
        result = imgcls.search(args.task, budget=args.budget, out=out, progress=False, metric=args.metric,
                               overrides=[f"cache_dir={cache}", *args.set])
        wall = time.perf_counter() - started
    run = result.best_run
    test = run.metrics["test"]
    audit = imgcls.audit(run.path, group_by="type", metric="accuracy", n_boot=1000, progress=False)
    accuracy = audit.report["metrics"]["accuracy"]
    row = {"task": args.task, "budget": args.budget, "metric": args.metric, "wall_seconds": wall,
           "budget_seconds": result.summary["budget_seconds"], "trials": result.summary["trials"],
           "accuracy": test["accuracy"], "accuracy_ci": test["intervals"]["accuracy"],
           "macro_f1": test["macro"]["f1"], "macro_f1_ci": test["intervals"].get("macro_f1"),
           "by_type": accuracy["by_group"], "gap": accuracy["difference"],
           "gap_ci": accuracy["difference_ci"],
           "winner": result.summary["winner"], "search": result.summary["search"],
           "budget_spent": result.summary["budget_spent"]}
    if "ordinal" in test:
        row.update(kappa=test["ordinal"]["qwk"], kappa_ci=test["ordinal"]["qwk_ci"])
    show(row)
    compare(row)
    OUT.mkdir(exist_ok=True)
    (OUT / f"search-{tag}.json").write_text(json.dumps(row, indent=1, default=float))


def show(row: dict) -> None:
    lo, hi = row["accuracy_ci"]
    print(f"\n== imgcls search {row['task']} --budget {row['budget']} (caches empty) ==")
    print(f"wall {row['wall_seconds']:.0f} s for a budget of {row['budget_seconds']:.0f} s; "
          f"{row['trials']} trials")
    print(f"test accuracy {row['accuracy']:.4f} ({lo:.3f}-{hi:.3f})")
    f1 = row["macro_f1_ci"]
    print(f"macro-F1 {row['macro_f1']:.4f}" + (f" ({f1[0]:.3f}-{f1[1]:.3f})" if f1 else ""))
    if "kappa" in row:
        lo, hi = row["kappa_ci"]
        print(f"quadratic-weighted kappa {row['kappa']:.4f} ({lo:.3f}-{hi:.3f})")
    cells = "  ".join(f"{g} {v['value']:.3f} ({v['ci'][0]:.3f}-{v['ci'][1]:.3f})"
                      for g, v in row["by_type"].items())
    print(f"by cell type: {cells}; gap {100 * row['gap']:.1f} points "
          f"({100 * row['gap_ci'][0]:.1f} to {100 * row['gap_ci'][1]:.1f})")
    record = row["search"]
    print(f"winner: {row['winner']}; validation {record['val_score']:.4f} (best single trial "
          f"{record['best_single_val_score']:.4f}); refitted {record['refitted']}")
    for m in record["members"]:
        state = "refitted" if m["refitted"] else f"not refitted ({m.get('reason', 'off')})"
        print(f"  trial {m['trial']} {m['family']} x{m['weight']:.2f}: {m['settings']}, "
              f"val {m['val_score']:.4f}, {state}")
    print(f"budget spent: {json.dumps(row['budget_spent'])}")


def compare(row: dict) -> None:
    frontier = OUT / f"frontier-{row['task']}.json"
    lines = [("imgcls search (this run)", row["accuracy"], row["wall_seconds"])]
    if frontier.is_file():
        runs = {k: v for k, v in json.loads(frontier.read_text()).items() if not k.startswith("ens-")}
        best = max(runs, key=lambda k: runs[k]["accuracy"])
        lines.append((f"best single run ({best}, frontier)", runs[best]["accuracy"],
                      runs[best]["wall_seconds"]))
    if row["task"] in PREVIOUS:
        lines.append(("previous 15-min search (issue 7)", PREVIOUS[row["task"]], 900.0))
    print("\n| | test accuracy | minutes |\n|---|---|---|")
    for name, acc, seconds in lines:
        print(f"| {name} | {acc:.4f} | {seconds / 60:.1f} |")


if __name__ == "__main__":
    main()
