"""CPU inference speed of an exported run: model alone, then the whole `imgcls predict`.

Part 1, the model alone on random uint8 input (224 px for EfficientNet-Lite0), batch 1 and
32, all in this process: torch eager fp32 on contiguous NCHW (the baseline), the best torch
path found here (channels-last, inference mode, optionally bf16), ONNX Runtime fp32 and
int8 (the run's export). Each row gives images/s, the ratio to eager, and the fraction of
the arithmetic limit: FLOPs per image (torch's FlopCounterMode) against a measured fp32
matrix-multiply peak on the same threads.

Part 2, the whole job as a user runs it: `imgcls.predict(MODEL, [folder of the 656 ELPV
test PNGs], output=CSV)` - decode, resize, infer, write - on the torch backend (the saved
run with its 3 test-time views: the baseline), then ONNX Runtime with the same views, and
fp32 / int8 exports without test-time augmentation; test accuracy of each.

    python benchmarks/inference.py [--run runs/elpv-lite0] [--seconds 4]

Without --run's folder, it first trains the ELPV fine-tune recipe (about 7 minutes), and
it exports what is missing (the no-TTA copies go to benchmarks/out/elpv-export-no-tta).
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


def model_rows(run: Path, no_tta: Path, seconds: float, threads: int) -> tuple[list[dict], dict]:
    import imgcls
    from imgcls.deploy.exporting.graph import inference_module
    from imgcls.deploy.predictors import OnnxPredictor

    clf = imgcls.load_model(run)
    clf.set_tta("none")  # one forward pass per image in every row
    module = inference_module(clf)  # uint8 NHWC -> probabilities, exactly what the export holds
    size = clf.image_spec.size
    flops = flops_per_image(module, size)
    peak = matmul_peak(threads, seconds)
    onnx = {p: OnnxPredictor(no_tta / f, threads)
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


def elpv_test_folder(root: Path) -> tuple[Path, dict]:
    """A folder of links to the ELPV test-split PNGs (the images no model here trained on)."""
    from imgcls.config import SplitConfig
    from imgcls.data import assign_splits
    from imgcls.data.builtins import DATASETS

    ds = assign_splits(DATASETS.get("elpv").load(), SplitConfig())  # honours the reference split
    folder = root / "elpv-test"
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in np.flatnonzero(ds.table["split"].to_numpy() == "test"):
        src = Path(ds.file_path(i))
        (folder / src.name).symlink_to(src)
        truth[src.name] = ds.labels[i]
    return folder, truth


def job_rows(run: Path, no_tta: Path) -> list[dict]:
    import pandas as pd

    import imgcls

    cases = [("torch (the saved run, 3 TTA views)", run, "torch", "fp32"),
             ("ONNX Runtime fp32, 3 TTA views", run, "onnx", "fp32"),
             ("ONNX Runtime fp32, no TTA", no_tta / "model.onnx", "onnx", "fp32"),
             ("ONNX Runtime int8, no TTA", no_tta / "model.int8.onnx", "onnx", "fp32")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder, truth = elpv_test_folder(Path(tmp))
        for label, model, backend, precision in cases:
            out = Path(tmp) / "predictions.csv"
            started = time.perf_counter()
            imgcls.predict(model, [folder], output=out, backend=backend, precision=precision,
                           progress=False)
            seconds = time.perf_counter() - started
            pred = pd.read_csv(out)
            labels = pred["path"].map(lambda p: truth[Path(p).name])
            accuracy = float((pred["prediction"] == labels).mean())
            rows.append({"path": label, "images": len(pred), "seconds": round(seconds, 1),
                         "images_per_s": round(len(pred) / seconds, 1), "test_accuracy": round(accuracy, 4),
                         "errors": int(pred["error"].notna().sum())})
            print(f"  {label:36s} {len(pred)} images in {seconds:5.1f} s = {len(pred) / seconds:6.1f} img/s, "
                  f"test accuracy {accuracy:.4f}", flush=True)
        rows.append(decode_only(no_tta / "model.onnx", folder))
    base = rows[0]["images_per_s"]
    for row in rows:
        row["vs_torch_backend"] = round(row["images_per_s"] / base, 2)
    return rows


def decode_only(model: Path, folder: Path) -> dict:
    """The same job with a model that costs nothing: the rate decoding alone allows."""
    import imgcls
    from imgcls import Predictor, load_predictor

    real = load_predictor(model)

    class Free(Predictor):
        classes, spec, backend = real.classes, real.spec, "none"

        def predict_proba(self, batch):
            return np.full((len(batch), len(self.classes)), 1 / len(self.classes), np.float32)

    started = time.perf_counter()
    table = imgcls.predict(Free(), [folder], progress=False)
    seconds = time.perf_counter() - started
    print(f"  {'decode + resize only (no model)':36s} {len(table)} images in {seconds:5.1f} s = "
          f"{len(table) / seconds:6.1f} img/s", flush=True)
    return {"path": "decode + resize only (no model)", "images": len(table), "seconds": round(seconds, 1),
            "images_per_s": round(len(table) / seconds, 1), "test_accuracy": None, "errors": 0}


def ensure_exports(run: Path, no_tta: Path) -> None:
    import imgcls
    from imgcls import export

    if not (run / "model").is_dir():
        print(f"{run} missing: training the ELPV fine-tune recipe first", flush=True)
        imgcls.train("elpv", model="tf_efficientnet_lite0", out=run, overrides=RECIPE, progress=False)
    if not (run / "export" / "model.onnx").is_file():
        export(run, progress=False)
    if not (no_tta / "model.int8.onnx").is_file():
        export(run, quantize="int8", tta="none", out=no_tta, progress=False)


def main() -> None:
    from imgcls.deploy.predictors import default_threads

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/elpv-lite0"))
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    no_tta = OUT.parent / "elpv-export-no-tta"
    ensure_exports(args.run, no_tta)
    threads = default_threads()
    export_report = json.loads((no_tta / "export.json").read_text())
    print(f"Model alone, one forward pass per image ({threads} threads):", flush=True)
    rows, limit = model_rows(args.run, no_tta, args.seconds, threads)
    print(f"  {limit['gflop_per_image']} GFLOP/image, matmul peak {limit['matmul_peak_gflops']} GFLOP/s "
          f"-> limit {limit['limit_images_per_s']} img/s")
    print("Whole `imgcls.predict` job over a folder of the 656 ELPV test PNGs:", flush=True)
    jobs = job_rows(args.run, no_tta)
    result = {"run": str(args.run), "model": rows, "limit": limit, "predict": jobs,
              "export_parity": export_report["parity"], "int8": export_report.get("int8"),
              "torch": torch.__version__}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(f"Written to {OUT}")


if __name__ == "__main__":
    main()
