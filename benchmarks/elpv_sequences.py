"""Sequences where one frame is not enough, built from real ELPV cells: the per-frame baseline
against temporal models (CNN + GRU, CNN + LSTM, CNN + attention) on frozen frame embeddings.

Each clip is ``--frames`` frames of one ELPV cell (the 2,624 solar-cell images, resized to
160 px), with sensor noise (Gaussian, sigma 6 grey levels) on every frame, written as an MJPEG
AVI and read back through imgcls's video path. Three direction tasks, two classes each, built
so that every single frame is distributed alike in both classes (the start of each clip is
drawn so that both classes sweep the same range):

- ``zoom``: the crop shrinks (zooming in) or grows (zooming out) around the cell's centre;
- ``rotate``: the cell turns clockwise or anticlockwise, 4 degrees a frame;
- ``light``: the exposure rises or falls, 7 % a frame.

``gru_finetuned`` (``attention_finetuned``) trains the GRU (attention head) on frozen embeddings,
then the CNN and the head together for 3 epochs over whole clips
(``model.params.finetune_epochs=3``; its "head s" includes that). ``classical`` is the
classical school (``model.name=sequence_classical``: edges, texture and colour features of
each 96 px frame, pooled over time, logistic regression). The per-frame
baseline (``model.params.temporal=frames``: a classifier on each frame's embedding,
probabilities averaged) cannot see order, so it should sit near chance; the
temporal heads should not. Reported per task and family: test accuracy with its 95 %
bootstrap interval, the training time of the head (the frame embeddings are computed once per task
and cached, the time shown separately), and clips per second at prediction (embeddings
computed, no cache) on this machine's cores.

``--explain N`` also explains the first N test clips of the GRU and classical runs
(``imgcls.explain``): whether the frame scores beat random frame orders (deletion over
frames), and the key frame's maps (Grad-CAM for the GRU, occlusion for both) against the
random map, with the seconds each took.

``--search BUDGET`` runs ``imgcls search`` on each task's clips (all three families, the
validation split carved from train, the same test clips), and reports the winner and its test
accuracy.

    python benchmarks/elpv_sequences.py [--clips 400] [--frames 8] [--tasks zoom rotate light] \
        [--explain 20] [--search 8m] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

FAMILIES = ("frames", "mean", "gru", "lstm", "attention", "classical", "gru_finetuned", "attention_finetuned")
FINETUNE_EPOCHS = 3
SIDE = 160
TRIAL_COLUMNS = ("trial", "model", "val_score", "seconds", "state", "params")


def frame(cell: np.ndarray, task: str, value: float) -> np.ndarray:
    """One frame of ``task`` at parameter ``value`` (crop share, angle in degrees, gain)."""
    import cv2

    h, w = cell.shape
    if task == "zoom":
        side = int(round(min(h, w) * value))
        top, left = (h - side) // 2, (w - side) // 2
        out = cv2.resize(cell[top:top + side, left:left + side], (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    elif task == "rotate":
        base = cv2.resize(cell, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
        matrix = cv2.getRotationMatrix2D((SIDE / 2, SIDE / 2), value, 1.0)
        out = cv2.warpAffine(base, matrix, (SIDE, SIDE), borderMode=cv2.BORDER_REFLECT)
    else:
        out = np.clip(cv2.resize(cell, (SIDE, SIDE), interpolation=cv2.INTER_AREA) * value, 0, 255)
    return out.astype(np.float32)


SWEEPS = {  # (lowest start, highest start, change per frame): the class "up" goes +, "down" goes -
    "zoom": (0.5, 1.0, 0.05), "rotate": (-30.0, 30.0, 4.0), "light": (0.55, 1.35, 0.07)}
NAMES = {"zoom": ("zoom_out", "zoom_in"), "rotate": ("anticlockwise", "clockwise"),
         "light": ("brighten", "dim")}


def write_clips(cells: list[np.ndarray], task: str, n: int, frames: int, root: Path, seed: int) -> Path:
    import cv2

    rng = np.random.default_rng(seed)
    low, high, step = SWEEPS[task]
    span = step * (frames - 1)
    for i in range(n):
        up = i % 2 == 0
        label = NAMES[task][0 if up else 1]
        start = rng.uniform(low, high - span) if up else rng.uniform(low + span, high)
        values = start + (step if up else -step) * np.arange(frames)
        cell = cells[int(rng.integers(len(cells)))]
        path = root / task / label / f"{i:04d}.avi"
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 8, (SIDE, SIDE), isColor=True)
        for v in values:
            noisy = frame(cell, task, float(v)) + rng.normal(0, 6, (SIDE, SIDE))
            noisy = np.clip(noisy, 0, 255).astype(np.uint8)
            writer.write(cv2.cvtColor(noisy, cv2.COLOR_GRAY2BGR))
        writer.release()
    return root / task


def stream_latency(run: Path, clips: np.ndarray, frames: int = 200) -> dict:
    """Per-frame latency of FrameStream (one backbone pass and the GRU over the window) on
    ``frames`` test frames, fed one at a time as a camera would."""
    from imgcls.deploy.windows import FrameStream

    stream = FrameStream(run)
    feed = clips.reshape(-1, *clips.shape[2:])[:frames]
    for f in feed[:5]:
        stream.push(f)  # warm-up
    times = []
    for f in feed:
        started = time.perf_counter()
        stream.push(f)
        times.append(1000 * (time.perf_counter() - started))
    return {"frames": len(times), "p50_ms": round(float(np.median(times)), 2),
            "p99_ms": round(float(np.percentile(times, 99)), 2),
            "fps": round(1000 / float(np.median(times)), 1)}


def camera_fps(run: Path, seconds: float) -> dict:
    """Frames per second the served page's camera (Chromium's fake device, 640 x 480, asked
    for 30 frames/s) reaches streaming to this sequence model: JPEG upload, one backbone pass,
    the head over the session's window, the bars drawn."""
    import socket
    import threading

    import httpx
    import uvicorn
    from playwright.sync_api import expect, sync_playwright

    from imgcls.config import ServeConfig
    from imgcls.serve import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ServeConfig(models=[f"clips={run}"], port=port,
                                                                   api_key=None)),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    while not server.started or httpx.get(f"{url}/readyz").status_code != 200:
        time.sleep(0.1)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
            page = browser.new_page()
            page.goto(url + "/")
            expect(page.locator("#model-info")).to_contain_text("frames per clip", timeout=30_000)
            page.click("#tab-camera")
            page.select_option("#fps", "30")
            page.click("#camera-toggle")
            while page.evaluate("() => window.imgclsStats.frames") < 10:
                time.sleep(0.1)
            page.evaluate("() => { window.imgclsStats.frames = 0; window.imgclsStats.ms = []; }")
            started = time.perf_counter()
            time.sleep(seconds)
            stats = page.evaluate("() => window.imgclsStats")
            elapsed = time.perf_counter() - started
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    ms = np.array(stats["ms"])
    return {"seconds": round(elapsed, 1), "frames": stats["frames"],
            "fps": round(stats["frames"] / elapsed, 2),
            "request_ms_p50": round(float(np.median(ms)), 1),
            "request_ms_p99": round(float(np.percentile(ms, 99)), 1)}


def searched(folder: Path, budget: str, frames: int, out: Path) -> dict:
    """``imgcls search`` over the sequence families: its trials, winner and test accuracy."""
    import imgcls

    started = time.perf_counter()
    result = imgcls.search(str(folder), budget=budget, out=out, progress=False,
                           overrides=[f"data.frames={frames}", f"cache_dir={out / 'cache'}"])
    table = result.leaderboard
    done = table[table["state"] == "complete"]
    return {"budget": budget, "wall_s": round(time.perf_counter() - started, 1), "trials": len(table),
            "completed": len(done), "winner": result.summary.get("winner"),
            "val_score": result.summary.get("best_val_score"), "test": result.summary.get("best_test"),
            "trials_table": [{k: row.get(k) for k in TRIAL_COLUMNS} for row in table.to_dict("records")]}


def explained(run: Path, ds, n: int, classical: bool, out: Path) -> dict:
    """Frame-score and key-frame faithfulness over the first ``n`` test clips."""
    import imgcls

    paths = [str(ds.file_path(i)) for i in range(min(n, len(ds)))]
    started = time.perf_counter()
    result = imgcls.explain(run, paths, methods="occlusion" if classical else "gradcam+occlusion", out=out,
                            progress=False)
    keep = ("seconds", "deletion_auc", "insertion_auc", "beats_random")
    return {"clips": len(result.images), "seconds_per_clip": round((time.perf_counter() - started)
                                                                  / max(1, len(result.images)), 2),
            "frames": {k: round(v, 4) if isinstance(v, float) else v for k, v in result.temporal.items()},
            "key_frame": {m: {k: None if s[k] is None else round(s[k], 4) for k in keep}
                          for m, s in result.summary.items()}}


def main() -> None:
    import elpv_dataset
    from PIL import Image

    import imgcls
    from imgcls.data import load_images
    from imgcls.runs import Run

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--tasks", nargs="+", default=list(SWEEPS))
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--camera-seconds", type=float, default=15.0,
                        help="seconds of the served page's camera streaming to the GRU (0: skip)")
    parser.add_argument("--explain", type=int, default=0,
                        help="explain this many test clips of the gru and classical runs (0: skip)")
    parser.add_argument("--search", default=None, help="budget of an imgcls search per task, e.g. 8m")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    images = sorted((Path(elpv_dataset.__file__).parent / "data" / "images").glob("*.png"))
    cells = [np.asarray(Image.open(p).convert("L")) for p in images[::3]]
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="elpv-sequences-") as tmp:
        for task in args.tasks:
            started = time.perf_counter()
            folder = write_clips(cells, task, args.clips, args.frames, Path(tmp) / "clips",
                                 seed=list(SWEEPS).index(task))  # the same clips whichever tasks run
            print(f"{task}: {args.clips} clips written in {time.perf_counter() - started:.0f} s")
            cache = Path(tmp) / f"cache-{task}"
            results[task] = {}
            for family in args.families:
                started = time.perf_counter()
                classical = family == "classical"  # per-frame features pooled over time, logistic regression
                run = imgcls.train(str(folder), model="sequence_classical" if classical else "sequence",
                                   out=Path(tmp) / f"run-{task}-{family}", progress=False, overrides=[
                                       f"data.frames={args.frames}",
                                       f"model.image_size={96 if classical else 160}",
                                       f"cache_dir={cache}", "split.val=0",
                                       *([] if classical else [
                                           f"model.params.temporal={family.split('_')[0]}"]),
                                       *([f"model.params.finetune_epochs={FINETUNE_EPOCHS}"]
                                         if family.endswith("_finetuned") else [])])
                wall = time.perf_counter() - started
                metrics = json.loads((run.path / "metrics.json").read_text())
                test, timings = metrics["test"], metrics["timings"]
                lo, hi = test["intervals"]["accuracy"]
                opened = Run.open(run.path)
                ds, _ = opened.rows(split="test")
                clips = load_images(ds, opened.model.image_spec, progress=False).images
                model = imgcls.load_model(run.path / "model")  # no cache: embeddings computed
                started = time.perf_counter()
                model.predict_proba(clips)
                speed = len(clips) / (time.perf_counter() - started)
                results[task][family] = {
                    "accuracy": round(test["accuracy"], 4), "ci95": [round(lo, 3), round(hi, 3)],
                    "n_test": test["n"],
                    "embed_s": timings.get("features_seconds"),
                    "head_s": round((timings.get("estimator_seconds") or 0)
                                    + (timings.get("finetune_seconds") or 0), 3),
                    "run_wall_s": round(wall, 1), "predict_clips_per_s": round(speed, 1)}
                if args.explain and family in ("gru", "classical"):
                    results[task][family]["explain"] = explained(run.path, ds, args.explain, classical,
                                                                 Path(tmp) / f"explain-{task}-{family}")
                    print("explain", json.dumps(results[task][family]["explain"]))
                if family == "gru" and "stream" not in results:
                    results["stream"] = stream_latency(run.path, clips)
                    print("stream", json.dumps(results["stream"]))
                    if args.camera_seconds:
                        results["camera"] = camera_fps(run.path, args.camera_seconds)
                        print("camera", json.dumps(results["camera"]))
                print(task, family, json.dumps(results[task][family]))
            if args.search:
                results[task]["search"] = searched(folder, args.search, args.frames,
                                                   Path(tmp) / f"search-{task}")
                print(task, "search", json.dumps(results[task]["search"]))
    print(f"\n{'task':>7} {'family':>10} {'accuracy':>9} {'95% CI':>14} {'head s':>7} {'embed s':>8} "
          f"{'clips/s':>8}")
    for task, rows in results.items():
        if task in ("stream", "camera"):
            continue
        for family, r in rows.items():
            if family == "search":
                print(f"{task:>7} {'search':>10} {r['winner']}: test {r['test']}")
                continue
            print(f"{task:>7} {family:>10} {r['accuracy']:>9.3f} {str(r['ci95']):>14} "
                  f"{r['head_s'] or 0:>7.1f} "
                  f"{r['embed_s'] or 0:>8.1f} {r['predict_clips_per_s']:>8.1f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
