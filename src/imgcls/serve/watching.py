"""The server's watch on production data: per model version, the last ``serve.drift_window``
images it answered, compared with the run's test split every ``serve.drift_every`` images.

Only statistics are kept (:mod:`imgcls.deploy.drift`): each image's size, brightness,
contrast and sharpness, and the probabilities the model gave, never the image. The
reference is the run's test split, profiled once and kept beside the run
(``RUN/monitor/reference-*.npz``, which ``imgcls monitor`` writes too); it is built in a
background thread at the first request when missing, and a model served from a lone ``.onnx`` file, or whose
run's data is not on this machine, has none (``GET /v1/models/{name}/drift`` says why).

A window crossing into drift logs a warning; ``/metrics`` exposes ``imgcls_drift_score``
and ``imgcls_drift`` per model and version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..core.errors import ModelError
from ..deploy.drift import MIN_WINDOW, Profile, compare
from ..deploy.monitoring import reference_profile
from ..runs import Run

log = logging.getLogger("imgcls.serve")
HISTORY = 200  # comparisons kept for the drift-over-time answer


class DriftWatch:
    """A bounded window of what one model version saw, and its comparisons with the reference."""

    def __init__(self, name: str, version: str, reference: Callable[[], Profile], classes: list[str],
                 window: int = 500, every: int = 100, alpha: float = 0.01) -> None:
        self.name, self.version, self.classes = name, version, list(classes)
        self.window, self.every, self.alpha = window, every, alpha
        self._stats: deque = deque(maxlen=window)
        self._proba: deque = deque(maxlen=window)
        self._lock = threading.Lock()
        self._checking = threading.Lock()
        self.seen = 0
        self._since = 0
        self.reference: Profile | None = None
        self.reference_error: str | None = None
        self.last: dict | None = None
        self.history: deque = deque(maxlen=HISTORY)
        self._ready = threading.Event()
        self._build = reference
        self._started = False

    def start(self) -> None:
        """Build the reference in a background thread, once (at the first request or question)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._load_reference, daemon=True, name=f"imgcls-drift-{self.name}").start()

    def _load_reference(self) -> None:
        try:
            self.reference = self._build()
        except Exception as exc:  # noqa: BLE001 - no reference: the watch says why, serving goes on
            self.reference_error = str(exc) or type(exc).__name__
            log.info("model '%s': no drift reference (%s)", self.name, self.reference_error)
        finally:
            self._ready.set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        self.start()
        return self._ready.wait(timeout)

    def add(self, stats: np.ndarray, proba: np.ndarray) -> None:
        """Record a request's images (their statistics and probabilities); every ``every``
        images, compare the window in a background thread."""
        self.start()
        with self._lock:
            self._stats.extend(np.asarray(stats, np.float64))
            self._proba.extend(np.asarray(proba, np.float64))
            self.seen += len(stats)
            self._since += len(stats)
            due = self._since >= self.every and len(self._stats) >= MIN_WINDOW
            if due:
                self._since = 0
        if due and self.reference is not None:
            threading.Thread(target=self.check, daemon=True).start()

    def check(self) -> dict | None:
        """Compare the current window with the reference now (None without a reference)."""
        if self.reference is None:
            return None
        with self._checking:
            with self._lock:
                if len(self._stats) < MIN_WINDOW:
                    return None
                window = Profile(np.stack(self._stats), np.stack(self._proba), self.classes)
                seen = self.seen
            result = compare(self.reference, window, alpha=self.alpha)
            result.update(seen=seen, at=time.time())
            was = bool(self.last and self.last["drift"])
            self.last = result
            self.history.append({"seen": seen, "at": result["at"], "score": result["score"],
                                 "drift": result["drift"], "moved": result["moved"]})
        if result["drift"] and not was:
            log.warning("model '%s' version %s: drift over its last %d images: %s moved", self.name,
                        self.version, result["n"], ", ".join(result["moved"]))
        elif was and not result["drift"]:
            log.info("model '%s' version %s: no drift over its last %d images", self.name, self.version,
                     result["n"])
        return result

    def status(self) -> dict:
        """What ``GET /v1/models/{name}/drift`` answers."""
        self.start()
        with self._lock:
            held = len(self._stats)
        reference = None if self.reference is None else {"split": "test", "n": len(self.reference)}
        out = {"model": self.name, "version": self.version, "window": self.window, "every": self.every,
               "images_seen": self.seen, "images_held": held, "reference": reference,
               "status": ("no_reference" if self.reference_error else "loading_reference"
                          if self.reference is None else "waiting" if self.last is None else
                          "drift" if self.last["drift"] else "ok"),
               "reason": self.reference_error, "history": list(self.history)}
        if self.last is not None:
            out["last"] = {k: self.last[k] for k in ("n", "seen", "at", "score", "drift", "moved", "tests",
                                                     "p_limit") if k in self.last}
        return out


def run_reference(path: Path) -> Callable[[], Profile]:
    """How the reference of the model served from ``path`` is built: the profile of its run's
    test split (cached beside the run), profiled by the run's own model."""
    def build() -> Profile:
        run = Run.containing(path)
        if run is None or run.config is None:
            raise ModelError(f"'{path}' is not part of a run folder with its data; serve the run folder "
                             "to watch for drift")
        return reference_profile(run, run.model, progress=False)

    return build
