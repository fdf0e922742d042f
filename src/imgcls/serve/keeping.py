"""Opt-in, bounded storage of the images the server answered (``serve.keep_requests``).

Off by default: the server keeps nothing of a request but the drift statistics. With
``keep_requests=N`` each model keeps the last N uploaded images, byte for byte as sent,
under ``keep_dir/<model>/``, each beside a ``.json`` with the answer (version, label,
confidence, unknown score, time). The oldest are deleted as new ones arrive, so the folder
never holds more than N images per model. The folder is an image folder: ``imgcls monitor RUN
keep_dir/<model>`` checks it for drift, ``imgcls label keep_dir/<model>`` labels it.

Writes happen on a background thread (a request never waits for the disk) through a bounded
queue; when the disk cannot keep up, images are dropped and counted, never queued without
limit. Each file is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections import deque
from pathlib import Path

from ..core.io import atomic_open, atomic_write_text
from ..data.decode import sniff_format

log = logging.getLogger("imgcls.serve")
SUFFIXES = {"png": ".png", "jpeg": ".jpg", "gif": ".gif", "bmp": ".bmp", "tiff": ".tif", "webp": ".webp",
            "dicom": ".dcm"}
KEPT_SUFFIXES = {*SUFFIXES.values(), ".bin"}
QUEUE = 256


class RequestKeeper:
    """Keeps the last ``limit`` images per model under ``root``."""

    def __init__(self, root: str | Path, limit: int) -> None:
        self.root, self.limit = Path(root), int(limit)
        self.kept: dict[str, deque[Path]] = {}
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE)
        self._thread = threading.Thread(target=self._run, name="imgcls-keep", daemon=True)
        self._thread.start()

    def keep(self, model: str, version: str, items: list[tuple[bytes, dict]]) -> None:
        """Queue (image bytes, answer) pairs; never blocks."""
        for data, answer in items:
            try:
                self._queue.put_nowait((model, version, data, answer))
            except queue.Full:
                self.dropped += 1

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._write(*item)
            except OSError as exc:
                self.dropped += 1
                log.warning("could not keep a request image under %s: %s", self.root, exc)

    def _write(self, model: str, version: str, data: bytes, answer: dict) -> None:
        folder = self.root / model
        if model not in self.kept:
            folder.mkdir(parents=True, exist_ok=True)
            self.kept[model] = deque(sorted(p for p in folder.iterdir() if p.suffix in KEPT_SUFFIXES))
        kept = self.kept[model]
        stamp = time.time()
        name = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime(stamp))}-{int(stamp * 1e6) % 10**6:06d}-" \
               f"{hashlib.sha256(data).hexdigest()[:12]}"
        path = folder / (name + SUFFIXES.get((sniff_format(data[:140]) or "").lower(), ".bin"))
        with atomic_open(path, "wb") as out:
            out.write(data)
        atomic_write_text(path.with_suffix(".json"), json.dumps(
            {"model": model, "version": version, "time": round(stamp, 3), **answer}))
        kept.append(path)
        while len(kept) > self.limit:
            old = kept.popleft()
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)
