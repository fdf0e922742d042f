"""Batch prediction on Ray against the single-process predictor, on this machine.

`imgcls.predict(MODEL, [folder of ELPV PNGs])` - decode, resize, infer - first in this process
(the baseline: ONNX Runtime on every core, decoding in threads ahead of the model), then with
`engine="ray"` on a local Ray instance using every core (one actor per core, one ONNX Runtime
thread each). Ray's start-up is timed apart and excluded from its rate; each Ray job still pays
for starting its actors and loading the model in each. Both tables must agree. Prints images/s
and the ratio; writes benchmarks/out/ray_predict.json.

    python benchmarks/ray_predict.py [--model benchmarks/out/elpv-export-no-tta/model.onnx]
                                     [--images 64] [--batch-size 32] [--out PATH]

The model is the fp32 no-TTA export made by `python benchmarks/inference.py`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "out" / "ray_predict.json"
MODEL = Path(__file__).parent / "out" / "elpv-export-no-tta" / "model.onnx"


def elpv_folder(root: Path, limit: int | None) -> Path:
    """A folder of links to the ELPV PNGs (all 2,624, or the first ``limit``)."""
    from imgcls.data.builtins import DATASETS

    ds = DATASETS.get("elpv").load()
    folder = root / "elpv"
    folder.mkdir(parents=True)
    for i in range(len(ds) if limit is None else min(limit, len(ds))):
        src = ds.file_path(i)
        (folder / src.name).symlink_to(src)
    return folder


def timed(label: str, fn) -> tuple[object, float]:
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    print(f"  {label:44s} {seconds:6.1f} s", flush=True)
    return result, seconds


def compare(local, distributed) -> dict:
    same_paths = list(local["path"]) == list(distributed["path"])
    labels = [t["prediction"].fillna("").tolist() for t in (local, distributed)]
    diff = float((local["p1"] - distributed["p1"]).abs().max()) if same_paths else None
    return {"same_paths": same_paths, "same_predictions": labels[0] == labels[1], "max_p1_diff": diff}


def main() -> None:
    import ray

    import imgcls

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--images", type=int, default=None, help="Only the first N ELPV images.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"{args.model} is missing; make it with `python benchmarks/inference.py`.")
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = elpv_folder(Path(tmp), args.images)
        n = len(os.listdir(folder))
        print(f"{n} ELPV PNGs, {args.model}, {cores} cores (load average {load_before:.1f}):", flush=True)
        imgcls.predict(args.model, [folder], limit=8, progress=False)  # warm-up: imports, ORT start
        local, local_s = timed("single process (imgcls.predict)", lambda: imgcls.predict(
            args.model, [folder], batch_size=args.batch_size, progress=False))
        _, startup_s = timed(f"Ray start-up (local, num_cpus={cores})", lambda: ray.init(
            num_cpus=cores, include_dashboard=False, logging_level=logging.WARNING))
        try:
            distributed, ray_s = timed("Ray job (engine='ray', start-up excluded)", lambda: imgcls.predict(
                args.model, [folder], batch_size=args.batch_size, progress=False, engine="ray"))
        finally:
            ray.shutdown()
    agreement = compare(local, distributed)
    result = {"images": n, "model": str(args.model), "cores": cores, "batch_size": args.batch_size,
              "load_average_before": round(load_before, 2),
              "single_process": {"seconds": round(local_s, 2), "images_per_s": round(n / local_s, 1)},
              "ray": {"seconds": round(ray_s, 2), "images_per_s": round(n / ray_s, 1),
                      "startup_seconds": round(startup_s, 2), "threads_per_actor": 1,
                      "actors": min(cores, -(-n // args.batch_size)),
                      "images_per_s_with_startup": round(n / (ray_s + startup_s), 1)},
              "ray_vs_single_process": round(local_s / ray_s, 2), "agreement": agreement,
              "ray_version": ray.__version__}
    print(f"  single process {n / local_s:7.1f} img/s; Ray {n / ray_s:7.1f} img/s "
          f"({result['ray_vs_single_process']:.2f}x; {n / (ray_s + startup_s):.1f} img/s with start-up); "
          f"tables agree: {agreement}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"Written to {args.out}")


if __name__ == "__main__":
    main()
