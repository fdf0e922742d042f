"""The labelling page driven by a real browser: time per label, and the estimate it shows.

150 synthetic shape images (64 px, 3 classes) are labelled on the page in headless
Chromium with the keyboard, the true class pressed for each image the page asks about
(strategy ``mix``, quick model on EfficientNet-Lite0 embeddings, refitted every 10 labels).
Printed: the time from a key press to the next image shown (p50 / p99), and at the end the
estimated accuracy the page shows beside the quick model's true accuracy on the images not
yet labelled. ``--shot`` saves a screenshot of the page (docs/img/label-page.png).

    python benchmarks/label_page.py [--labels 60] [--shot docs/img/label-page.png]
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def main() -> None:
    import uvicorn
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright

    from imgcls.data.builtins import SHAPE_CLASSES, make_shapes
    from imgcls.labelling import label
    from imgcls.labelling.app import create_label_app

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=60)
    parser.add_argument("--shot", type=Path, default=None)
    args = parser.parse_args()
    classes = list(SHAPE_CLASSES)
    with tempfile.TemporaryDirectory(prefix="label-page-") as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        ds = make_shapes(n_per_class=50, size=64, seed=3)
        order = np.random.default_rng(0).permutation(len(ds))
        truth = {}
        for k, i in enumerate(order):
            Image.fromarray(ds.read(int(i))).save(folder / f"photo_{k:03d}.png")
            truth[f"photo_{k:03d}.png"] = str(ds.labels[int(i)])
        started = time.perf_counter()
        session = label(folder, ",".join(classes), Path(tmp) / "labels.csv", serve=False, progress=False,
                        cache=False)
        print(f"session ready in {time.perf_counter() - started:.1f} s ({len(session.files)} images)")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_label_app(session), host="127.0.0.1", port=port,
                                               log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        seconds = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 820})
            page.goto(f"http://127.0.0.1:{port}/?labeller=ann")
            path = page.locator("#path")
            expect(path).not_to_have_text("", timeout=30_000)
            for _ in range(args.labels):
                shown = path.inner_text()
                began = time.perf_counter()
                page.keyboard.press(str(classes.index(truth[shown]) + 1))
                expect(path).not_to_have_text(shown, timeout=30_000)
                seconds.append(time.perf_counter() - began)
            session.wait()
            page.reload()
            expect(page.locator("#estimate")).to_contain_text("Estimated", timeout=30_000)
            if args.shot:
                args.shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.shot))
            browser.close()
        server.should_exit = True
        ms = np.asarray(seconds) * 1000
        p50, p99 = np.percentile(ms, [50, 99])
        print(f"key press -> next image: p50 {p50:.0f} ms, p99 {p99:.0f} ms over {len(ms)} labels")
        labelled = session.labelled()
        rest = [r for r in range(len(session.files)) if r not in labelled]
        model = session.learner.model
        true = np.mean([model.predict(session.learner.X[[r]])[0] == truth[session.keys[r]] for r in rest])
        estimate = session.learner.estimate
        print(f"after {len(labelled)} labels: the page's estimate {estimate['score']:.3f} "
              f"({estimate['method']}, n={estimate['n']}); the quick model on the {len(rest)} unlabelled "
              f"images {true:.3f}")


if __name__ == "__main__":
    main()
