"""Load on `imgcls serve`: micro-batching on (max_wait_ms 5, max_batch 32) against off (max_wait_ms 0).

For each setting a fresh server runs in a subprocess (uvicorn on a free loopback port); N
concurrent clients (threads, one httpx.Client each) send R requests of one real image each.
Reports throughput (requests/s, images/s), p50/p95/p99 latency and errors; the run with
micro-batching off is the baseline of the ratios. JSON goes to benchmarks/out/serve_load.json.

    python benchmarks/serve_load.py --run RUN [--clients 16] [--requests 25] [--image PATH]
    python benchmarks/serve_load.py            # trains a quick SVM on digits first
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

OUT = Path(__file__).parent / "out" / "serve_load.json"
CASES = [{"label": "micro-batching off (max_wait_ms 0) - baseline", "max_wait_ms": 0, "max_batch": 32},
         {"label": "micro-batching on (max_wait_ms 5, max_batch 32)", "max_wait_ms": 5, "max_batch": 32}]

SERVER = """
import sys, uvicorn
from imgcls.config import ServeConfig
from imgcls.serve import ModelStore, create_app
cfg = ServeConfig(models=[sys.argv[1]], port=int(sys.argv[2]), max_wait_ms=float(sys.argv[3]),
                  max_batch=int(sys.argv[4]), api_key=None)
store = ModelStore.from_config(cfg)
store.load_all()
uvicorn.run(create_app(cfg, store=store), host="127.0.0.1", port=cfg.port, log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def quick_run(folder: Path) -> Path:
    import imgcls

    return imgcls.train("digits", model="svm", out=folder / "digits-svm", overrides=["cache=false"],
                        progress=False).path


def sample_image(image: Path | None) -> tuple[str, bytes]:
    if image is not None:
        return image.name, image.read_bytes()
    from PIL import Image
    from sklearn.datasets import load_digits

    digit = (load_digits().images[0] * 16).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(digit).resize((32, 32)).save(buf, format="PNG")
    return "digit.png", buf.getvalue()


def start_server(run: Path, case: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(run), str(port), str(case["max_wait_ms"]),
                             str(case["max_batch"])], env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become ready within 120 s")


def load(url: str, image: tuple[str, bytes], clients: int, requests: int) -> dict:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client() -> None:
        nonlocal errors
        with httpx.Client(base_url=url, timeout=60) as http:
            http.get("/healthz")  # connect before the clock starts
            barrier.wait()
            for _ in range(requests):
                start = time.perf_counter()
                try:
                    ok = http.post("/v1/predict", files=[("files", image)]).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    latencies.append(time.perf_counter() - start)
                    errors += not ok

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    total = clients * requests
    return {"requests": total, "errors": errors, "seconds": round(elapsed, 3),
            "requests_per_s": round(total / elapsed, 1), "images_per_s": round((total - errors) / elapsed, 1),
            **{f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)}}


def batch_sizes(url: str) -> float | None:
    text = httpx.get(f"{url}/metrics").text
    values = {}
    for line in text.splitlines():
        if line.startswith(("imgcls_batch_size_sum", "imgcls_batch_size_count")):
            values[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
    count = values.get("imgcls_batch_size_count")
    return round(values["imgcls_batch_size_sum"] / count, 2) if count else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="Run folder to serve; default: train a quick digits SVM.")
    parser.add_argument("--image", type=Path, help="The image every request sends.")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=25, help="Requests per client.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or quick_run(Path(tmp))
        image = sample_image(args.image)
        rows = []
        for case in CASES:
            proc, url = start_server(run, case)
            try:
                load(url, image, args.clients, 2)  # warm-up
                result = load(url, image, args.clients, args.requests)
                result["mean_batch_size"] = batch_sizes(url)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            rows.append({**case, **result})
    base = rows[0]
    print(f"\n{'setting':<50} {'req/s':>8} {'img/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'batch':>6} {'x req/s':>8}")
    for row in rows:
        row["throughput_ratio"] = round(row["requests_per_s"] / base["requests_per_s"], 2)
        print(f"{row['label']:<50} {row['requests_per_s']:>8} {row['images_per_s']:>8} {row['p50_ms']:>8} "
              f"{row['p95_ms']:>8} {row['p99_ms']:>8} {row['errors']:>6} {row['mean_batch_size'] or '-':>6} "
              f"{row['throughput_ratio']:>8}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"run": str(args.run or "digits-svm (trained here)"), "clients": args.clients,
                               "requests_per_client": args.requests, "cpus": os.cpu_count(),
                               "cases": rows}, indent=2))
    print(f"\nwritten to {OUT}")


if __name__ == "__main__":
    main()
