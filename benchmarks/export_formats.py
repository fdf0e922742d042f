"""Export formats side by side on ELPV: parity, file size, single-image latency and batch
throughput of every format that runs here (ONNX Runtime fp32 / int8, OpenVINO, LiteRT fp32 /
int8, ExecuTorch fp32 / int8), and Core ML's size and checked interface, in one process.

The model is a run of ELPV (2-class, reference split): ``--finetune`` trains the fine-tune
(EfficientNet-Lite0, the elpv_deep.py recipe, about 7 minutes), the default the linear probe
(minutes); ``--run`` takes an existing run. Each format is exported with ``imgcls export``
(which checks parity on the 656 test images and refuses on disagreement), with ``--tta`` views
(default none: one forward pass per image in every format); latency is the median and 99th
percentile of ``--repeats`` single-image calls, throughput images/s over batches of 32.

    python benchmarks/export_formats.py [--finetune | --run RUN] [--tta none] [--repeats 100] \
        [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

PROBE = ["model.name=tf_efficientnet_lite0", "model.mode=linear-probe", "model.image_size=224"]
FINETUNE = ["model.name=tf_efficientnet_lite0", "model.mode=finetune", "model.image_size=224",
            "model.augment=crop+hflip+vflip", "train.tta=hflip+vflip"]  # benchmarks/elpv_deep.py's recipe


def latency(fn, image: np.ndarray, repeats: int) -> tuple[float, float]:
    fn(image)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn(image)
        times.append(1000 * (time.perf_counter() - started))
    return float(np.median(times)), float(np.percentile(times, 99))


def throughput(fn, images: np.ndarray, batch: int = 32) -> float:
    fn(images[:batch])
    started = time.perf_counter()
    for s in range(0, len(images), batch):
        fn(images[s:s + batch])
    return len(images) / (time.perf_counter() - started)


def main() -> None:
    import openvino as ov

    import imgcls
    from imgcls.data import load_images
    from imgcls.deploy.exporting.executorch_format import ExecuTorchRunner
    from imgcls.deploy.exporting.litert_format import LiteRTRunner
    from imgcls.deploy.predictors import OnnxPredictor, default_threads
    from imgcls.runs import Run

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--finetune", action="store_true")
    parser.add_argument("--tta", default="none")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="export-formats-") as tmp:
        started = time.perf_counter()
        run = args.run or imgcls.train("elpv", out=Path(tmp) / "run", progress=False, overrides=[
            "cache=false", *(FINETUNE if args.finetune else PROBE)]).path
        print(f"model: {run} ({time.perf_counter() - started:.0f} s)")
        reports = {}
        for fmt in ("onnx", "openvino", "litert", "executorch", "coreml"):
            started = time.perf_counter()
            reports[fmt] = imgcls.export(run, fmt, quantize="int8" if fmt in ("onnx", "litert", "executorch")
                                         else None, tta=args.tta, out=Path(tmp) / fmt, progress=False).report
            print(f"exported {fmt} in {time.perf_counter() - started:.0f} s")
        opened = Run.open(run)
        ds, _ = opened.rows(split="test")
        images = load_images(ds, opened.model.image_spec.with_channels(3), progress=False).images
        images = np.ascontiguousarray(images[: 32 * (len(images) // 32)])
        folder = {fmt: Path(tmp) / fmt for fmt in reports}
        compiled = ov.Core().compile_model(str(folder["openvino"] / "model.xml"), "CPU", {
            "INFERENCE_NUM_THREADS": default_threads(), "INFERENCE_PRECISION_HINT": "f32"})
        output = compiled.outputs[0]
        onnx, vino, lite, pte = (reports[f] for f in ("onnx", "openvino", "litert", "executorch"))

        def size(report, *names):
            return sum(report["files"][n]["bytes"] for n in names)

        def runners(cls, path):  # one for single images, one for batches: LiteRT resizes on a change
            return cls(path), cls(path)

        lite32, lite32b = runners(LiteRTRunner, folder["litert"] / "model.tflite")
        lite8, lite8b = runners(LiteRTRunner, folder["litert"] / "model.int8.tflite")
        rows = {
            "onnx fp32": (OnnxPredictor(folder["onnx"] / "model.onnx").predict_proba, None,
                          size(onnx, "model.onnx"), onnx["parity"]),
            "onnx int8": (OnnxPredictor(folder["onnx"] / "model.int8.onnx").predict_proba, None,
                          size(onnx, "model.int8.onnx"), onnx["int8"]),
            "openvino fp32": (lambda b: compiled(b)[output], None, size(vino, "model.xml", "model.bin"),
                              vino["openvino"]),
            "litert fp32": (lite32, lite32b, size(lite, "model.tflite"), lite["litert"]),
            "litert int8": (lite8, lite8b, size(lite, "model.int8.tflite"), lite["litert"]["int8"]),
            "executorch fp32": (ExecuTorchRunner(folder["executorch"] / "model.pte"), None,
                                size(pte, "model.pte"), pte["executorch"]),
            "executorch int8": (ExecuTorchRunner(folder["executorch"] / "model.int8.pte"), None,
                                size(pte, "model.int8.pte"), pte["executorch"]["int8"]),
        }
        results = {}
        for name, (fn, batch_fn, nbytes, check) in rows.items():
            p50, p99 = latency(fn, images[:1], args.repeats)
            keys = ("top1_agreement", "max_abs_diff", "disagreements", "accuracy", "accuracy_int8",
                    "accuracy_onnx", "accuracy_change", "top1_agreement_with_fp32", "max_abs_diff_from_fp32")
            results[name] = {"MB": round(nbytes / 1e6, 2), "latency_p50_ms": round(p50, 2),
                             "latency_p99_ms": round(p99, 2),
                             "batch32_images_per_s": round(throughput(batch_fn or fn, images), 1),
                             "parity": {k: check.get(k) for k in keys if k in check}}
            print(name, json.dumps(results[name]))
        core = reports["coreml"]
        results["coreml fp32"] = {"MB": round(core["files"]["model.mlpackage"]["bytes"] / 1e6, 2),
                                  "parity": core["coreml"]["parity"], "inputs": core["coreml"]["inputs"]}
        print("coreml fp32", json.dumps(results["coreml fp32"]))
    base = results["onnx fp32"]
    print(f"\n{'format':>16} {'MB':>6} {'p50 ms':>7} {'p99 ms':>7} {'img/s b32':>10} {'vs onnx fp32':>13}")
    for name, r in results.items():
        if "batch32_images_per_s" not in r:
            print(f"{name:>16} {r['MB']:>6.1f}   (converted; {r['parity']})")
            continue
        ratio = r["batch32_images_per_s"] / base["batch32_images_per_s"]
        print(f"{name:>16} {r['MB']:>6.1f} {r['latency_p50_ms']:>7.2f} {r['latency_p99_ms']:>7.2f} "
              f"{r['batch32_images_per_s']:>10.1f} {ratio:>12.2f}x")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
