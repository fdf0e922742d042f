"""Export formats side by side on ELPV: parity, file size, single-image latency and batch
throughput of ONNX Runtime fp32 / int8 and OpenVINO fp32, in one process.

The model is a run of ELPV (2-class, reference split): by default the linear probe on the
offline EfficientNet-Lite0 (224 px, minutes to train); ``--run`` takes an existing run (the
fine-tune, say). Each format is exported with ``imgcls export`` (which checks parity on the
656 test images and refuses on disagreement); latency is the median and 99th percentile of
``--repeats`` single-image calls, throughput images/s over batches of 32 test images.

    python benchmarks/export_formats.py [--run runs/elpv-finetune] [--repeats 100] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

PROBE = ["model.name=tf_efficientnet_lite0", "model.mode=linear-probe", "model.image_size=224"]


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
    from imgcls.deploy.predictors import OnnxPredictor, default_threads
    from imgcls.runs import Run

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="export-formats-") as tmp:
        run = args.run or imgcls.train("elpv", out=Path(tmp) / "run", progress=False,
                                       overrides=["cache=false", *PROBE]).path
        onnx = imgcls.export(run, quantize="int8", out=Path(tmp) / "onnx", progress=False).report
        vino = imgcls.export(run, "openvino", out=Path(tmp) / "openvino", progress=False).report
        opened = Run.open(run)
        ds, _ = opened.rows(split="test")
        images = load_images(ds, opened.model.image_spec.with_channels(3), progress=False).images
        images = np.ascontiguousarray(images[: 32 * (len(images) // 32)])
        fp32 = OnnxPredictor(Path(tmp) / "onnx" / "model.onnx")
        int8 = OnnxPredictor(Path(tmp) / "onnx" / "model.int8.onnx")
        compiled = ov.Core().compile_model(str(Path(tmp) / "openvino" / "model.xml"), "CPU", {
            "INFERENCE_NUM_THREADS": default_threads(), "INFERENCE_PRECISION_HINT": "f32"})
        output = compiled.outputs[0]
        rows = {
            "onnx fp32": (fp32.predict_proba, onnx["files"]["model.onnx"]["bytes"], onnx["parity"]),
            "onnx int8": (int8.predict_proba, onnx["files"]["model.int8.onnx"]["bytes"], onnx["int8"]),
            "openvino fp32": (lambda b: compiled(b)[output], vino["files"]["model.bin"]["bytes"]
                              + vino["files"]["model.xml"]["bytes"], vino["openvino"]),
        }
        results = {}
        for name, (fn, size, check) in rows.items():
            p50, p99 = latency(fn, images[:1], args.repeats)
            keys = ("top1_agreement", "max_abs_diff", "disagreements", "accuracy", "accuracy_int8",
                    "accuracy_onnx")
            results[name] = {"MB": round(size / 1e6, 2), "latency_p50_ms": round(p50, 2),
                             "latency_p99_ms": round(p99, 2),
                             "batch32_images_per_s": round(throughput(fn, images), 1),
                             "parity": {k: check.get(k) for k in keys if k in check}}
            print(name, json.dumps(results[name]))
    base = results["onnx fp32"]
    print(f"\n{'format':>14} {'MB':>6} {'p50 ms':>7} {'p99 ms':>7} {'img/s b32':>10} {'vs onnx fp32':>13}")
    for name, r in results.items():
        ratio = r["batch32_images_per_s"] / base["batch32_images_per_s"]
        print(f"{name:>14} {r['MB']:>6.1f} {r['latency_p50_ms']:>7.2f} {r['latency_p99_ms']:>7.2f} "
              f"{r['batch32_images_per_s']:>10.1f} {ratio:>12.2f}x")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
