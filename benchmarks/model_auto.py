"""`model.name=auto` (the new default) against the old default (`svm`) on every built-in dataset.

For each dataset, both run in this process with caches off (cold: decoding, features or
embeddings, fitting, report), after one untimed warm-up of each code path so that neither
pays the one-off library imports: the printed rows give what auto chose and why, test
accuracy with its 95 % interval, macro-F1 and wall time, and the ratios auto / svm.

    python benchmarks/model_auto.py [--datasets digits shapes elpv elpv4] [--also small_cnn]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def run(task: str, model: str, out: Path) -> dict:
    import imgcls

    started = time.perf_counter()
    result = imgcls.train(task, model=model, out=out / f"{task}-{model}", overwrite=True,
                          overrides=["cache=false"], progress=False)
    test = result.metrics["test"]
    return {"task": task, "asked": model, "model": result.config.model.name, "mode": result.config.model.mode,
            "choice": result.metrics.get("model_choice", {}).get("reason"),
            "accuracy": test["accuracy"], "accuracy_ci": test["intervals"]["accuracy"],
            "macro_f1": test["macro"]["f1"], "wall_seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "shapes", "elpv", "elpv4"])
    parser.add_argument("--also", nargs="*", default=[], help="other families to run beside them")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for warm in ("svm", "auto"):  # imports (scikit-learn; torch for the probe) paid here
            run("shapes", warm, Path(tmp) / "warm-up")
        for task in args.datasets:
            results = {m: run(task, m, Path(tmp)) for m in ["svm", "auto", *args.also]}
            old, new = results["svm"], results["auto"]
            print(f"\n== {task} ==  auto chose {new['model']}"
                  + (f" ({new['mode']})" if new["model"] != "svm" else "") + f": {new['choice']}")
            for name, r in results.items():
                lo, hi = r["accuracy_ci"]
                print(f"  {name:10s} accuracy {r['accuracy']:.4f} ({lo:.3f}-{hi:.3f})  macro-F1 "
                      f"{r['macro_f1']:.4f}  wall {r['wall_seconds']:6.1f} s")
            ratio = new["wall_seconds"] / old["wall_seconds"]
            print(f"  auto / svm: accuracy {new['accuracy'] / old['accuracy']:.3f}, macro-F1 "
                  f"{new['macro_f1'] / max(old['macro_f1'], 1e-9):.3f}, time {ratio:.2f}x")
            rows += results.values()
    print("\n" + json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
