"""The offline web export on ELPV, in headless Chromium opened from a file path.

Exports a run with ``imgcls export RUN --format web``, opens ``web/index.html`` as a
``file://`` URL, drops ``--images`` ELPV test images (real PNG files, 300 px) on the page and
compares each page answer with ONNX Runtime in Python on the same file (top-1 agreement and
the largest probability difference; the page's resize is the only step outside the graph).
Every request the page makes is recorded: none may go to a server. Then the camera tab runs
on Chromium's fake camera (``--use-fake-device-for-media-stream``) for ``--seconds`` and the
frames per second and per-frame latency (p50 / p99) are read off the page.

    python benchmarks/web_export.py [--run RUN] [--tta none] [--images 100] [--seconds 15] \
        [--screenshot docs/img/web-export.png]

Without ``--run`` it trains the ELPV linear probe on the offline EfficientNet-Lite0 (minutes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

PROBE = ["model.name=tf_efficientnet_lite0", "model.mode=linear-probe", "model.image_size=224"]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    import imgcls
    from imgcls.data.decode import decode_image
    from imgcls.deploy.predictors import OnnxPredictor
    from imgcls.runs import Run

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--quantize", choices=["int8"], default=None)
    parser.add_argument("--tta", default=None, help="none, hflip, hflip+vflip (default: the run's)")
    parser.add_argument("--screenshot", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="web-export-") as tmp:
        run = args.run or imgcls.train("elpv", out=Path(tmp) / "run", progress=False,
                                       overrides=["cache=false", *PROBE]).path
        started = time.perf_counter()
        result = imgcls.export(run, "web", quantize=args.quantize, tta=args.tta, out=Path(tmp) / "export",
                               progress=False)
        export_s = time.perf_counter() - started
        report = result.report
        ds, _ = Run.open(run).rows(split="test")
        paths = [ds.file_path(i) for i in range(min(args.images, len(ds)))]
        onnx = OnnxPredictor(result.path / report["web"]["model"])
        started = time.perf_counter()
        expected = np.concatenate([onnx.predict_images([decode_image(p)]) for p in paths])
        python_ms = 1000 * (time.perf_counter() - started) / len(paths)
        requests: list[str] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda req: requests.append(req.url))
            started = time.perf_counter()
            page.goto((result.path / "web" / "index.html").as_uri())
            expect(page.locator("body[data-ready='1']")).to_have_count(1, timeout=120_000)
            load_s = time.perf_counter() - started
            page.set_input_files("#files", [str(p) for p in paths])
            expect(page.locator("#status")).to_contain_text("Done", timeout=600_000)
            status = page.locator("#status").inner_text()
            cards = page.locator(".card")
            got = np.array([json.loads(cards.nth(i).get_attribute("data-probabilities"))
                            for i in range(len(paths))])
            if args.screenshot:
                page.set_input_files("#files", [str(p) for p in paths[:6]])
                expect(page.locator("#status")).to_contain_text("Done: 6", timeout=60_000)
                page.screenshot(path=str(args.screenshot))
            page.click("#tab-camera")
            page.click("#camera-toggle")
            page.wait_for_function("window.imgclsStats.frames >= 3", timeout=120_000)
            page.evaluate("window.imgclsStats.ms = []; window.imgclsStats.frames = 0")
            time.sleep(args.seconds)
            stats = page.evaluate("window.imgclsStats")
            if args.screenshot:
                page.screenshot(path=str(args.screenshot.with_name(args.screenshot.stem + "-camera.png")))
            browser.close()
    page_ms = float(status.split(" in ")[1].split(" ms")[0]) / len(paths)
    flips = int((got.argmax(1) != expected.argmax(1)).sum())
    servers = [u for u in requests if u.split(":", 1)[0] not in ("file", "blob", "data")]
    ms = np.array(stats["ms"])
    figures = {
        "model": report["web"]["model"], "tta": report["tta"],
        "folder_MB": round(report["files"]["web"]["bytes"] / 1e6, 1),
        "export_s": round(export_s, 1), "page_load_s": round(load_s, 2), "images": len(paths),
        "top1_agreement_with_onnxruntime": round(1 - flips / len(paths), 4), "disagreements": flips,
        "max_abs_diff": round(float(np.abs(got - expected).max()), 5),
        "browser_ms_per_image": round(page_ms, 1), "python_onnxruntime_ms_per_image": round(python_ms, 1),
        "requests": len(requests), "requests_to_a_server": servers,
        "camera_fps": round(stats["fps"], 2), "camera_frames": stats["frames"],
        "camera_ms_p50": round(float(np.median(ms)), 1) if len(ms) else None,
        "camera_ms_p99": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
        "page_errors": errors}
    print(json.dumps(figures, indent=2))
    print(f"\nbrowser / Python ONNX Runtime time per image: {page_ms / python_ms:.2f}x")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
