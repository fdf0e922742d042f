"""CPU inference speed of an exported run: model alone, then the whole `imgcls predict`.

Part 1, the model alone on random uint8 input (224 px for EfficientNet-Lite0), batch 1 and
32, all in this process: torch eager fp32 on contiguous NCHW (the baseline), the best torch
path found here (channels-last, inference mode, optionally bf16), ONNX Runtime fp32 and
int8 (the run's export). Each row gives images/s, the ratio to eager, and the fraction of
the arithmetic limit: FLOPs per image (torch's FlopCounterMode) against a measured fp32
matrix-multiply peak on the same threads.

Part 2, the whole job as a user runs it: `imgcls.predict(RUN, [folder of ELPV PNGs],
output=CSV)` - decode, resize, infer, write - with ONNX Runtime fp32 and int8 and the
torch backend as the baseline, plus accuracy of each against the labels.

    python benchmarks/inference.py [--run runs/elpv-lite0] [--seconds 4] [--images N]

Without --run's folder, it first trains the ELPV fine-tune recipe (about 7 minutes).
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).parent / "out" / "inference.json"
RECIPE = ["model.augment=crop+hflip+vflip", "train.tta=hflip+vflip"]


def rate(fn, batch: int, seconds: float) -> float:
    fn()  # warm-up: allocations, ORT's first-run graph work
    started, n = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        fn()
        n += batch
    return n / (time.perf_counter() - started)


def matmul_peak(threads: int, seconds: float) -> float:
    """fp32 GFLOP/s of a large matrix multiply: the arithmetic ceiling of this CPU."""
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    per_call = 2 * 2048**3
    return rate(lambda: a @ b, 1, seconds) * per_call / 1e9


def flops_per_image(module, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        module(torch.zeros(1, size, size, 3, dtype=torch.uint8))
    return counter.get_total_flops()


def model_rows(run: Path, seconds: float, threads: int) -> tuple[list[dict], dict]:
    import imgcls
    from imgcls.exporting.graph import inference_module
    from imgcls.inference import OnnxPredictor

    clf = imgcls.load_model(run)
    module = inference_module(clf)  # uint8 NHWC -> probabilities, exactly what the export holds
    size = clf.image_spec.size
    flops = flops_per_image(module, size)
    peak = matmul_peak(threads, seconds)
    onnx = {p: OnnxPredictor(run / "export" / f, threads)
            for p, f in (("fp32", "model.onnx"), ("int8", "model.int8.onnx"))}
    net = module.logits.net
    rows = []
    for batch in (1, 32):
        x = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        nchw = torch.from_numpy(x).permute(0, 3, 1, 2).float().contiguous()
        mean, std = module.logits.mean, module.logits.std
        torch.set_num_threads(threads)
        cases = {
            "torch eager fp32, NCHW (baseline)": _eager(net, nchw, mean, std),
            "torch channels-last, inference mode": _best_torch(net, nchw, mean, std, bf16=False),
            "torch channels-last, bf16 autocast": _best_torch(net, nchw, mean, std, bf16=True),
            "ONNX Runtime fp32": lambda x=x: onnx["fp32"].predict_proba(x),
            "ONNX Runtime int8": lambda x=x: onnx["int8"].predict_proba(x),
        }
        speeds = {name: rate(fn, batch, seconds) for name, fn in cases.items()}
        base = speeds["torch eager fp32, NCHW (baseline)"]
        for name, speed in speeds.items():
            rows.append({"batch": batch, "path": name, "images_per_s": round(speed, 1),
                         "vs_eager": round(speed / base, 2),
                         "of_fp32_limit": round(speed * flops / (peak * 1e9), 2)})
            print(f"  batch {batch:2d}  {name:38s} {speed:7.1f} img/s  {speed / base:5.2f}x eager  "
                  f"{rows[-1]['of_fp32_limit']:.0%} of limit", flush=True)
    return rows, {"gflop_per_image": round(flops / 1e9, 3), "matmul_peak_gflops": round(peak, 1),
                  "limit_images_per_s": round(peak * 1e9 / flops, 1), "threads": threads}


def _eager(net, nchw, mean, std):
    net = copy.deepcopy(net).to(memory_format=torch.contiguous_format).eval()

    def run():
        with torch.no_grad():
            return net((nchw - mean) / std).softmax(1)
    return run


def _best_torch(net, nchw, mean, std, bf16: bool):
    cl = nchw.contiguous(memory_format=torch.channels_last)
    net = copy.deepcopy(net).to(memory_format=torch.channels_last).eval()

    def run():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return net((cl - mean) / std).float().softmax(1)
    return run


def job_rows(run: Path, limit: int | None) -> list[dict]:
    import pandas as pd

    import imgcls
    from imgcls.data.builtins import DATASETS

    ds = DATASETS.get("elpv").load()
    folder = Path(ds.root) / "images"
    truth = dict(zip([Path(p).name for p in ds.paths], ds.labels, strict=True))
    rows = []
    for backend, precision in (("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8")):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "predictions.csv"
            started = time.perf_counter()
            imgcls.predict(run, [folder], output=out, backend=backend, precision=precision,
                           limit=limit, progress=False)
            seconds = time.perf_counter() - started
            pred = pd.read_csv(out)
        labels = pred["path"].map(lambda p: truth.get(Path(p).name))
        accuracy = float((pred["prediction"] == labels).mean())
        rows.append({"backend": backend, "precision": precision, "images": len(pred),
                     "seconds": round(seconds, 1), "images_per_s": round(len(pred) / seconds, 1),
                     "accuracy_all_images": round(accuracy, 4), "errors": int(pred["error"].notna().sum())})
        print(f"  predict {backend:5s} {precision}: {len(pred)} images in {seconds:.1f} s = "
              f"{len(pred) / seconds:.1f} img/s, accuracy {accuracy:.4f}", flush=True)
    base = rows[0]["images_per_s"]
    for row in rows:
        row["vs_torch_backend"] = round(row["images_per_s"] / base, 2)
    return rows


def ensure_run(run: Path) -> None:
    import imgcls
    from imgcls.exporting import export

    if not (run / "model").is_dir():
        print(f"{run} missing: training the ELPV fine-tune recipe first", flush=True)
        imgcls.train("elpv", model="tf_efficientnet_lite0", out=run, overrides=RECIPE, progress=False)
    if not (run / "export" / "model.int8.onnx").is_file():
        export(run, quantize="int8", progress=False)


def main() -> None:
    from imgcls.inference import default_threads

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/elpv-lite0"))
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--images", type=int, default=None, help="limit the predict job (default all)")
    args = parser.parse_args()
    ensure_run(args.run)
    threads = default_threads()
    export_report = json.loads((args.run / "export" / "export.json").read_text())
    print(f"Model alone ({threads} threads):", flush=True)
    rows, limit = model_rows(args.run, args.seconds, threads)
    print(f"  {limit['gflop_per_image']} GFLOP/image, matmul peak {limit['matmul_peak_gflops']} GFLOP/s "
          f"-> limit {limit['limit_images_per_s']} img/s")
    print("Whole predict job over the ELPV PNG folder:", flush=True)
    jobs = job_rows(args.run, args.images)
    result = {"run": str(args.run), "model": rows, "limit": limit, "predict": jobs,
              "export_parity": export_report["parity"], "int8": export_report.get("int8"),
              "torch": torch.__version__}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(f"Written to {OUT}")


if __name__ == "__main__":
    main()
