"""Drift on real data: a model of mono ELPV cells watching mono, poly, darkened and blurred cells.

Built reproducibly (seed 0): ELPV's mono cells are cut into the run's data (70 %, split 75/25
into train and test as usual) and a held-out production set (30 %) the run never sees. A
linear probe on the offline EfficientNet-Lite0 (224 px) is trained on the mono manifest; its
test split is the monitor's reference. Streams of new images, each profiled once:

- ``mono``: the held-out mono cells (no drift: the false-alarm rate is counted over windows
  of ``--window`` images in ``--repeats`` random orders);
- ``poly``: polycrystalline cells (another kind of cell: drift);
- ``dark``: held-out mono cells at 60 % of their light; ``blur``: with a Gaussian blur (σ 2 px);
- ``mono-then-poly``: the held-out mono cells, then as many poly cells: where the first
  warning comes, counted in images after the change.

Then ``imgcls.monitor`` on each stream's folder (the same figures through the public call),
and the server: each stream posted in requests of 10 images to a server of the run
(``serve.drift_window`` 100, ``drift_every`` 50), its ``GET /v1/models/{name}/drift``
history read back (the mono stream in ``--serve-repeats`` orders, for its false alarms).

    python benchmarks/elpv_drift.py [--window 50] [--repeats 20] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROBE = ["model.name=tf_efficientnet_lite0", "model.mode=linear-probe", "model.image_size=224"]


def build(root: Path, seed: int = 0) -> dict[str, Path]:
    import cv2
    from PIL import Image

    from imgcls.data import load_dataset

    ds = load_dataset("elpv")
    table = ds.table
    rng = np.random.default_rng(seed)
    mono = np.flatnonzero(table["type"].to_numpy() == "mono")
    poly = np.flatnonzero(table["type"].to_numpy() == "poly")
    mono = rng.permutation(mono)
    cut = int(0.7 * len(mono))
    run_rows, held = mono[:cut], mono[cut:]
    label = lambda i: "defective" if float(table.at[int(i), "probability"]) >= 0.5 else "functional"  # noqa: E731
    (root / "run").mkdir(parents=True)
    rows = []
    for i in run_rows:
        Image.fromarray(ds.read(int(i))).save(root / "run" / f"{i:05d}.png")
        rows.append({"path": f"run/{i:05d}.png", "label": label(i)})
    pd.DataFrame(rows).to_csv(root / "mono.csv", index=False)
    streams = {"mono": [(i, None) for i in held],
               "poly": [(i, None) for i in rng.choice(poly, len(held), replace=False)],
               "dark": [(i, "dark") for i in held], "blur": [(i, "blur") for i in held]}
    streams["mono-then-poly"] = streams["mono"] + streams["poly"]
    out = {}
    for name, items in streams.items():
        folder = root / name
        folder.mkdir()
        for k, (i, change) in enumerate(items):
            img = ds.read(int(i))
            if change == "dark":
                img = (img.astype(np.float32) * 0.6).astype(np.uint8)
            elif change == "blur":
                img = cv2.GaussianBlur(img, (0, 0), 2.0)
            Image.fromarray(img).save(folder / f"{k:05d}.png")  # names sort in arrival order
        out[name] = folder
    return out


def main() -> None:
    import imgcls
    from imgcls.deploy.drift import compare
    from imgcls.deploy.inputs import as_dataset
    from imgcls.deploy.monitoring import profile_dataset, reference_profile
    from imgcls.runs import Run

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--serve-repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="elpv-drift-") as tmp:
        root = Path(tmp)
        streams = build(root / "data")
        started = time.perf_counter()
        run = imgcls.train(str(root / "data" / "mono.csv"), out=root / "run", progress=False,
                           overrides=["cache=false", *PROBE])
        print(f"mono model: test accuracy {run.metrics['test']['accuracy']:.3f} "
              f"({time.perf_counter() - started:.0f} s)")
        opened = Run.open(run.path)
        clf = opened.model
        reference = reference_profile(opened, clf, progress=False)
        rng = np.random.default_rng(0)
        for name, folder in streams.items():
            t0 = time.perf_counter()
            profile = profile_dataset(clf, as_dataset([str(folder)]), False, name)
            seconds = time.perf_counter() - t0
            orders = [np.arange(len(profile))] if name == "mono-then-poly" else [
                rng.permutation(len(profile)) for _ in range(args.repeats)]
            flagged, scores, moved = [], [], {}
            for order in orders:
                for start in range(0, len(order) - args.window + 1, args.window):
                    got = compare(reference, profile.subset(order[start:start + args.window]))
                    flagged.append(got["drift"])
                    scores.append(got["score"])
                    for m in got["moved"]:
                        moved[m] = moved.get(m, 0) + 1
            entry = {"images": len(profile), "windows": len(flagged), "flagged": float(np.mean(flagged)),
                     "auc_median": float(np.median(scores)), "moved": moved,
                     "profile_images_per_s": round(len(profile) / seconds, 1)}
            if name == "mono-then-poly":
                change = len(list(streams["mono"].iterdir()))
                first = next((k for k, f in enumerate(flagged) if f), None)
                entry |= {"change_at": change, "first_warning_window": first,
                          "first_warning_at": None if first is None else first * args.window,
                          "scores": [round(s, 3) for s in scores]}
            results[name] = entry
            print(name, json.dumps({k: v for k, v in entry.items() if k != "scores"}))
        for name in ("mono", "poly", "dark", "blur"):
            done = imgcls.monitor(run.path, [str(streams[name])], window=args.window, out=root / f"m-{name}",
                                  progress=False)
            results[name]["monitor"] = {"drift": done.drift, "moved": done.report["overall"]["moved"],
                                        "first_drift_window": done.report["first_drift_window"],
                                        "auc": done.report["overall"].get("embeddings", {}).get("auc")}
            print(f"imgcls monitor {name}: {json.dumps(results[name]['monitor'])}")
        results["server"] = serve_streams(run.path, streams, args.serve_repeats)
    print(f"\n{'stream':>16} {'windows':>8} {'flagged':>8} {'median AUC':>11}  moved (windows)")
    for name, r in results.items():
        if name == "server":
            continue
        moved = ", ".join(f"{k} {v}" for k, v in sorted(r["moved"].items(), key=lambda kv: -kv[1]))
        print(f"{name:>16} {r['windows']:>8} {r['flagged']:>8.1%} {r['auc_median']:>11.3f}  {moved}")
    print(f"\n{'server stream':>16} {'checks':>7} {'flagged':>8} {'first warning at':>17}  ms/image")
    for name, r in results["server"].items():
        print(f"{name:>16} {r['checks']:>7} {r['flagged']:>8.1%} {str(r['first_warning_at']):>17}  "
              f"{r['ms_per_image']:.1f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


def serve_streams(run: Path, streams: dict[str, Path], repeats: int, batch: int = 10) -> dict:
    """Post each stream to a server of ``run``; the drift checks it made, and where it warned."""
    from fastapi.testclient import TestClient

    from imgcls.config import ServeConfig
    from imgcls.serve import create_app

    out = {}
    rng = np.random.default_rng(1)
    for name in ("mono", "poly", "dark", "blur", "mono-then-poly"):
        files = sorted(streams[name].iterdir())
        orders = [np.arange(len(files))] if name != "mono" else [rng.permutation(len(files))
                                                                  for _ in range(repeats)]
        history, first, seconds = [], None, 0.0
        for order in orders:
            app = create_app(ServeConfig(models=[f"cells={run}"], api_key=None, max_wait_ms=0,
                                         drift_window=100, drift_every=50))
            with TestClient(app) as client:
                while client.get("/readyz").status_code != 200:
                    time.sleep(0.05)
                client.get("/v1/models/cells/drift")  # starts the reference (cached by monitor above)
                started = time.perf_counter()
                for start in range(0, len(order), batch):
                    part = [files[k] for k in order[start:start + batch]]
                    client.post("/v1/predict", files=[("files", (f.name, f.read_bytes(), "image/png"))
                                                      for f in part])
                seconds += time.perf_counter() - started
                time.sleep(1.0)  # the server's last check runs in its own thread
                got = client.get("/v1/models/cells/drift").json()["history"]
            history += got
            if first is None:
                first = next((h["seen"] for h in got if h["drift"]), None)
        flagged = [h["drift"] for h in history]
        out[name] = {"checks": len(history), "flagged": float(np.mean(flagged)) if flagged else 0.0,
                     "first_warning_at": first, "scores": [round(h["score"], 3) for h in history[:40]],
                     "ms_per_image": 1000 * seconds / (len(files) * len(orders))}
        print(f"server {name}: {json.dumps({k: v for k, v in out[name].items() if k != 'scores'})}")
    return out


if __name__ == "__main__":
    main()
