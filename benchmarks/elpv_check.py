"""`imgcls check` on ELPV against cleanvision, side by side, cold and warm.

1. A class-per-folder tree of the 2,624 ELPV PNGs (hard links in a temporary folder).
2. cleanvision 0.3 `Imagelab.find_issues()` on it (the baseline), then `imgcls check` on the
   same folder with an empty cache (cold) and again (warm); the label-issue pass is timed
   separately.
3. `imgcls check elpv` (the built-in, which carries the benchmark split) to see whether
   near duplicates straddle the train/test split, and how alike each near pair really is.

    python benchmarks/elpv_check.py [--skip-cleanvision]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def build_folder(root: Path) -> Path:
    from imgcls.data import load_dataset

    ds = load_dataset("elpv")
    for i in range(len(ds)):
        target = root / ds.labels[i] / Path(ds.paths[i]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(ds.file_path(i), target)
        except OSError:
            shutil.copy2(ds.file_path(i), target)
    return root


def run_cleanvision(folder: Path) -> dict:
    from cleanvision import Imagelab

    started = time.perf_counter()
    lab = Imagelab(data_path=str(folder))
    lab.find_issues()
    seconds = time.perf_counter() - started
    summary = lab.issue_summary.set_index("issue_type")["num_images"].to_dict()
    issues = {k: int(v) for k, v in summary.items()}
    return {"seconds": seconds, "images_per_s": 2624 / seconds, "issues": issues}


def run_imgcls(folder: Path, cache: Path, labels: bool, out: Path) -> tuple[dict, object]:
    from imgcls.checks import check

    os.environ["IMGCLS_CACHE_DIR"] = str(cache)
    started = time.perf_counter()
    report = check(str(folder), out_dir=out, progress=False,
                   overrides=[f"check.labels={str(labels).lower()}"])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "timings": report.summary["timings"],
            "checks": report.summary["check_counts"], "duplicates": report.summary["duplicates"]}, report


def near_pair_similarity(report) -> list[dict]:
    """For each near-duplicate group of the built-in run: split membership and pixel difference."""
    from imgcls.data import load_dataset
    from imgcls.data.decode import decode_image

    ds = load_dataset("elpv")
    row = {p: i for i, p in enumerate(ds.paths)}
    split = ds.table["split"].to_numpy()
    out = []
    for group in report.groups:
        images = [decode_image(ds.file_path(i)).astype(np.int16) for i in group]
        diff = float(np.mean([np.abs(images[0] - img).mean() for img in images[1:]]))
        out.append({"paths": [ds.paths[i] for i in group], "splits": sorted({split[i] for i in group}),
                    "labels": sorted({ds.labels[i] for i in group}),
                    "mean_abs_pixel_difference": round(diff, 2)})
    assert all(p in row for g in out for p in g["paths"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cleanvision", action="store_true")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = build_folder(tmp / "elpv_folder")
        if not args.skip_cleanvision:
            results["cleanvision"] = run_cleanvision(folder)
            print("cleanvision:", json.dumps(results["cleanvision"]), flush=True)
        results["imgcls_cold"], _ = run_imgcls(folder, tmp / "cache", False, tmp / "out1")
        results["imgcls_warm"], _ = run_imgcls(folder, tmp / "cache", False, tmp / "out2")
        results["imgcls_with_labels_warm"], _ = run_imgcls(folder, tmp / "cache", True, tmp / "out3")
        for key in ("imgcls_cold", "imgcls_warm", "imgcls_with_labels_warm"):
            print(f"{key}:", json.dumps(results[key]), flush=True)
        results["builtin"], report = run_imgcls(Path("elpv"), tmp / "cache", False, tmp / "out4")
        results["near_groups"] = near_pair_similarity(report)
    groups = results["near_groups"]
    straddle = [g for g in groups if len(g["splits"]) > 1]
    print(f"built-in elpv: {len(groups)} duplicate groups, {len(straddle)} straddle the benchmark split; "
          f"label conflicts in {sum(len(g['labels']) > 1 for g in groups)}")
    for g in groups:
        print("  ", g)
    if "cleanvision" in results:
        cold = results["imgcls_cold"]["seconds"]
        print(f"speed-up cold vs cleanvision: {results['cleanvision']['seconds'] / cold:.1f}x "
              f"({results['cleanvision']['seconds']:.1f} s vs {cold:.1f} s)")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "elpv_check.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
