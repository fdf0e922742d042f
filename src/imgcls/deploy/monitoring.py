"""`imgcls monitor RUN NEW_DATA`: has the data drifted from what the model was tested on?

The reference is the run's test split, profiled once (:mod:`imgcls.deploy.drift`) and kept in
``RUN/monitor/reference.npz`` for that model. The new images are profiled in their order
(file order, or a manifest's rows: put them in time order) and compared window by window
(``window`` images each) and as a whole; ``drift.json`` and ``drift.html`` say which
statistics moved, from which window on, and show the new images least like the reference.

Example:
    >>> result = monitor("runs/elpv", ["incoming/"], window=100)    # doctest: +SKIP
    >>> result.drift, result.report["first_drift_window"]            # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import DataError, ImageDecodeError
from ..core.io import atomic_open, atomic_write_text
from ..core.log import info, warn
from ..core.progress import progress_bar
from ..data import Dataset
from ..data.decode import decode_image
from ..data.prepare import prepare_image, stack_prepared
from ..report import plots
from ..report.render import render
from ..runs import Run
from .drift import ALPHA, AUC_THRESHOLD, STATS, Profile, compare, domain_scores, image_stats, profile_of
from .inputs import as_dataset

EXAMPLES = 8


@dataclass
class MonitorResult:
    path: Path
    report: dict

    @property
    def drift(self) -> bool:
        return bool(self.report["overall"]["drift"])

    @property
    def html(self) -> Path:
        return self.path / "drift.html"


def monitor(run: str | Path, data: Sequence[str | Path], *, window: int = 100,
            out: str | Path | None = None, auc_threshold: float = AUC_THRESHOLD, alpha: float = ALPHA,
            progress: bool = True) -> MonitorResult:
    """Compare new images with the run's test split, window by window and as a whole.

    Args:
        run: Run folder (its test split is the reference).
        data: Files, folders, globs or one manifest, in the order they arrived.
        window: Images per window; the drift score over time is one point per window.
        out: Folder for drift.json and drift.html; default ``RUN/monitor``.
        auc_threshold, alpha: When a window drifts (see :mod:`imgcls.deploy.drift`).
    """
    if window < 20:
        raise DataError(f"The 'window' parameter must be at least 20 images. Got {window}.")
    opened = Run.open(run)
    folder = Path(out) if out is not None else opened.path / "monitor"
    clf = opened.model
    reference = reference_profile(opened, clf, progress)
    new = profile_dataset(clf, as_dataset(list(data)), progress, "Profiling new images")
    if len(new) == 0:
        raise DataError(f"None of the new images in {list(map(str, data))} could be decoded.")
    settings = {"auc_threshold": auc_threshold, "alpha": alpha}
    windows = []
    for start in range(0, len(new), window):
        part = new.subset(np.arange(start, min(start + window, len(new))))
        result = compare(reference, part, **settings)
        windows.append({"start": start, "end": start + len(part), "score": result.get("score"),
                        "drift": result["drift"], "moved": result.get("moved", [])})
    overall = compare(reference, new, **settings)
    first = next((k for k, w in enumerate(windows) if w["drift"]), None)
    report = {"run": str(opened.path), "reference": {"split": "test", "n": len(reference)},
              "new": {"n": len(new), "sources": [str(d) for d in data]}, "window": window,
              "settings": settings,
              "windows": windows, "first_drift_window": first, "overall": overall,
              "least_like_reference": least_like(reference, new), "created": time.strftime("%Y-%m-%d %H:%M")}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "drift.json", json.dumps(report, indent=2))
    atomic_write_text(folder / "drift.html", _page(report, new))
    if overall["drift"]:
        warn(f"drift: {', '.join(overall['moved'])} moved (from window {first}); see {folder / 'drift.html'}")
    else:
        info(f"no drift on {len(new)} images in {len(windows)} windows; see {folder / 'drift.html'}")
    return MonitorResult(folder, report)


def reference_profile(opened: Run, clf, progress: bool = True) -> Profile:
    """The profile of the run's test split, kept beside the run for this model."""
    digest = hashlib.sha256(opened.model_digest().encode()).hexdigest()[:16]
    cached = opened.path / "monitor" / f"reference-{digest}.npz"
    if cached.is_file():
        try:
            with np.load(cached) as npz:
                return Profile.from_npz(npz)
        except (OSError, ValueError, KeyError):
            pass
    ds, _ = opened.rows(split="test")
    profile = profile_dataset(clf, ds, progress, "Profiling the reference (test split)")
    if len(profile) < 20:
        raise DataError(f"'{opened.path}' has only {len(profile)} readable test images; a reference "
                        "needs 20.")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(cached, "wb") as fh:
            np.savez(fh, **profile.to_npz())
    except OSError as exc:  # a read-only run folder: profiled again next time
        warn(f"the drift reference could not be kept in {cached.parent}: {exc}")
    return profile


def profile_dataset(clf, ds: Dataset, progress: bool, title: str) -> Profile:
    """Decode each image once: its STATS from the original, the model's view from the prepared copy."""
    spec = clf.image_spec

    def one(i: int):
        try:
            image, mask = ds.read_sample(i, None, spec.window)
            return image_stats(image), prepare_image(image, spec, mask)
        except ImageDecodeError:
            return None

    rows, stats, prepared = [], [], []
    with ThreadPoolExecutor(max_workers=2) as pool, progress_bar(len(ds), title, progress) as advance:
        for i, got in enumerate(pool.map(one, range(len(ds)))):
            advance(1)
            if got is not None:
                rows.append(i)
                stats.append(got[0])
                prepared.append(got[1])
    if not rows:
        classes = [str(c) for c in clf.classes_]
        return Profile(np.zeros((0, len(STATS))), np.zeros((0, len(classes))), classes)
    files = [ds.paths[i] if ds.arrays is not None else str(ds.file_path(i)) for i in rows]
    return profile_of(clf, stack_prepared(prepared, spec), np.stack(stats), files)


def least_like(reference: Profile, new: Profile, n: int = EXAMPLES) -> list[dict]:
    """The new images a domain classifier finds most unlike the reference, on whichever view
    tells them apart best: the embeddings or the cheap statistics (a model's features may be
    blind to what moved, e.g. normalised against brightness)."""
    if len(new) < 5:
        return []
    views = [("statistics", reference.stats, new.stats)]
    if reference.embeddings is not None and new.embeddings is not None:
        views.append(("embeddings", reference.embeddings, new.embeddings))
    scored = [(name, *domain_scores(ref, win)) for name, ref, win in views]
    name, _, p = max(scored, key=lambda v: v[1])
    order = np.argsort(-p)[:n]
    return [{"path": new.paths[k], "p_new": round(float(p[k]), 4), "view": name} for k in order]


def _page(report: dict, new: Profile) -> str:
    fig, ax = plots.new_figure(7, 2.6)
    xs = [w["start"] for w in report["windows"]]
    ax.plot(xs, [w["score"] for w in report["windows"]], marker="o")
    for x, w in zip(xs, report["windows"], strict=True):
        if w["drift"]:
            ax.axvspan(x, w["end"], color="#b00020", alpha=0.12)
    if "embeddings" in report["overall"]:
        ax.axhline(report["settings"]["auc_threshold"], color="#b00020", linestyle="--", linewidth=1)
        ax.set_ylabel("domain classifier AUC")
    else:
        ax.set_ylabel("largest KS distance")
    ax.set_xlabel("new images (window start)")
    chart = plots.to_data_uri(fig)
    examples = []
    for item in report["least_like_reference"]:
        examples.append({**item, "thumbnail": _thumbnail(item["path"])})
    return render("drift.html.j2", report=report, chart=chart, examples=examples)


def _thumbnail(path: str) -> str | None:
    try:
        return plots.thumbnail_uri(decode_image(path), side=128)
    except ImageDecodeError:
        return None
