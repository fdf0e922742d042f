"""Mono vs poly: per-group audit of the ELPV fine-tuned and classical runs, with intervals.

For each run, `imgcls.audit(run, group_by="type")` on its 656 test images; prints accuracy
and the recall of the defective class per cell type with 95 % bootstrap intervals, and the
gap between the types with its interval. Side by side, in the same process: fairlearn's
own bootstrap (`MetricFrame(n_boot=...)`, row resampling) of the same accuracy figures, its
time against the audit's, and the mono / poly accuracies of shared/BENCHMARKS.md.

    python benchmarks/audit_elpv.py [--deep runs/elpv-lite0] [--classical runs/elpv-svm]
                                    [--n-boot 1000] [--fairlearn-boot 200]

Runs missing on disk are trained first (see benchmarks/explain_elpv.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from explain_elpv import DEEP_RECIPE, ensure_run

OUT = Path(__file__).parent / "out"
REFERENCE = {"deep": {"mono": 0.836, "poly": 0.858}, "classical": {"mono": 0.877, "poly": 0.825}}
DEFECTIVE = "defective"


def audited(run: Path, n_boot: int, out: Path) -> dict:
    import imgcls

    started = time.perf_counter()
    result = imgcls.audit(run, group_by="type", metric=f"recall:{DEFECTIVE}", max_gap=0.05, n_boot=n_boot,
                          out=out, progress=False)
    seconds = time.perf_counter() - started
    metrics = result.report["metrics"]
    rows = {}
    for name in ("accuracy", f"recall:{DEFECTIVE}"):
        m = metrics[name]
        rows[name] = {"by_group": m["by_group"], "gap": m["difference"], "gap_ci": m["difference_ci"],
                      "low": m["min_group"], "high": m["max_group"]}
    return {"seconds": seconds, "passed": result.passed, "metrics": rows, "html": str(result.html)}


def fairlearn_bootstrap(run: Path, n_boot: int) -> dict:
    """fairlearn's row-level bootstrap of accuracy by type, on the run's test predictions."""
    import pandas as pd
    from fairlearn.metrics import MetricFrame

    table = pd.read_csv(run / "predictions.csv")
    table = table[table["split"] == "test"]
    started = time.perf_counter()
    frame = MetricFrame(metrics={"accuracy": lambda t, p: float(np.mean(t == p))},
                        y_true=table["label"].to_numpy(), y_pred=table["prediction"].to_numpy(),
                        sensitive_features=table["type"].to_numpy(), n_boot=n_boot,
                        ci_quantiles=[0.025, 0.975], random_state=0)
    seconds = time.perf_counter() - started
    return {"n_boot": n_boot, "seconds": seconds,
            "by_group_ci": {g: [float(frame.by_group_ci[i]["accuracy"][g]) for i in range(2)]
                            for g in ("mono", "poly")},
            "difference_ci_max_minus_min": [float(frame.difference_ci()[i]["accuracy"]) for i in range(2)]}


def show(name: str, result: dict, reference: dict) -> None:
    verdict = "PASS" if result["passed"] else "FAIL"
    print(f"\n{name}: audit in {result['seconds']:.2f} s ({verdict} at 5 points on recall:{DEFECTIVE})")
    for metric, m in result["metrics"].items():
        cells = "  ".join(f"{g} {v['value']:.3f} [{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]"
                          for g, v in m["by_group"].items())
        lo, hi = m["gap_ci"]
        print(f"  {metric:18s} {cells}  gap {100 * m['gap']:.1f} points ({m['high']} - {m['low']}) "
              f"[{100 * lo:.1f}, {100 * hi:.1f}]")
    print(f"  reference accuracy (shared/BENCHMARKS.md): mono {reference['mono']:.3f}, "
          f"poly {reference['poly']:.3f}")
    fl = result["fairlearn"]
    print(f"  fairlearn MetricFrame bootstrap ({fl['n_boot']} resamples, accuracy only): "
          f"{fl['seconds']:.1f} s; "
          + "  ".join(f"{g} [{a:.3f}, {b:.3f}]" for g, (a, b) in fl["by_group_ci"].items())
          + f"; its max-min gap interval [{100 * fl['difference_ci_max_minus_min'][0]:.1f}, "
          f"{100 * fl['difference_ci_max_minus_min'][1]:.1f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deep", type=Path, default=Path("runs/elpv-lite0"))
    parser.add_argument("--classical", type=Path, default=Path("runs/elpv-svm"))
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--fairlearn-boot", type=int, default=200)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, run, model, recipe in (("deep", args.deep, "tf_efficientnet_lite0", DEEP_RECIPE),
                                     ("classical", args.classical, "svm", [])):
        ensure_run(run, model, recipe)
        results[name] = audited(run, args.n_boot, OUT / f"audit-elpv-{name}")
        results[name]["fairlearn"] = fairlearn_bootstrap(run, args.fairlearn_boot)
        show(f"{name} ({run})", results[name], REFERENCE[name])
    (OUT / "audit_elpv.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {OUT / 'audit_elpv.json'}")


if __name__ == "__main__":
    main()
