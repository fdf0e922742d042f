"""A labelling session: the images, the votes, the quick model and what to ask next.

``LabelSession`` is what the labelling page talks to. It lists the images of DATA (a
folder, globs or a manifest; labels in it are ignored), turns each into a vector once,
keeps every vote in a :class:`.store.LabelStore` beside the manifest, and rewrites the
manifest (``--out``, atomically) after every vote, resolved by its rule. Every
``refit_every`` labels the quick model is refitted in a background thread and the next
images are chosen by the strategy. Near-duplicates (perceptual hashes a few bits apart) of
the image asked are offered with it, to be labelled as one group or split. Unreadable
files are listed and never asked. Nothing under DATA is written.

Example:
    >>> session = LabelSession("photos/", ["cat", "dog"], "labels.csv")   # doctest: +SKIP
    >>> item = session.next("ann"); session.answer("ann", item["id"], "cat")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from ..checks.duplicates import near_groups
from ..config import CheckConfig
from ..core.errors import ConfigError, DataError
from ..core.log import info, warn
from ..data.dataset import join_labels, split_labels
from ..deploy.inputs import as_dataset
from .agreement import agreement, parse_rule, resolve
from .learner import Learner, image_vectors
from .manifest import check_name, imported_answers, refuse_data_as_out, write_manifest
from .store import KINDS, LabelStore

STORE_SUFFIX = ".votes.db"
DRAWN = "random_draws"  # store metadata: the images answered as random draws (the estimate's sample)
LEASE_SECONDS = 300.0  # an image shown to one labeller is not shown to another for this long
TASKS = ("single", "multilabel")


class LabelSession:
    """See the module docstring. ``store``: the votes' SQLite file or a SQLAlchemy URL
    (PostgreSQL for a team), ``project`` their name in it (default: the dataset folder's
    name); ``overlap``: how many labellers should see each image (2 or more to measure
    agreement)."""

    def __init__(self, data: str | Path, classes: list[str], out: str | Path, *,
                 store: str | Path | None = None, project: str | None = None, strategy: str = "mix",
                 refit_every: int = 10, random_share: float = 0.1, rule: str = "majority",
                 overlap: int = 1, backbone: str = "auto", n_jobs: int = 2, cache_dir: Path | None = None,
                 seed: int = 0, progress: bool = True, task: str = "single") -> None:
        if task not in TASKS:
            raise ConfigError(f"The 'task' parameter must be one of {list(TASKS)}. Got {task!r}.")
        self.classes, self.multilabel = _check_classes(classes), task == "multilabel"
        parse_rule(rule)
        if overlap < 1 or refit_every < 1:
            raise ConfigError(f"overlap and refit_every must be at least 1. Got {overlap} and {refit_every}.")
        self.out, self.rule, self.overlap, self.refit_every = Path(out), rule, overlap, refit_every
        refuse_data_as_out(self.out, data)
        ds = as_dataset([data])
        self.root = Path(ds.root) if ds.root else Path(data) if Path(data).is_dir() else Path.cwd()
        self.store = LabelStore(store or self.out.with_name(self.out.name + STORE_SUFFIX),
                                project or self.root.resolve().name or "default")
        X, loaded = image_vectors(ds, n_jobs, cache_dir, progress, backbone)
        self.files = [str(ds.paths[r]) for r in loaded.rows]  # readable files, as found
        self.keys = [self._key(p) for p in self.files]
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.skipped = [{"path": self._key(p), "reason": r}
                        for p, r in loaded.skipped.itertuples(index=False)]
        for item in self.skipped:
            warn(f"label: skipped {item['path']}: {item['reason']}")
        self.groups = _near_duplicate_groups(loaded.images)
        self._drawn = {k for k in json.loads(self.store.meta(DRAWN) or "[]") if k in self.index}
        self.learner = Learner(X, strategy, random_share, seed, classes=tuple(self.classes),
                               multilabel=self.multilabel)
        self._lock, self._refit_lock, self._export_lock = threading.Lock(), threading.Lock(), threading.Lock()
        self._refitting: threading.Thread | None = None
        self._queue: list[int] = []
        self._fitted_on = 0  # labels the quick model was last fitted on
        if not self.store.count() and self.out.is_file():
            rows = imported_answers(self.out, self.index_key, self._check_answer, self.multilabel)
            for row in rows:  # one answer each: an undo takes back one image
                self.store.add_many([row])
            info(f"label: continuing {self.out}: {len(rows)} labels")
        self._refit(wait=True)

    # ----- files ----------------------------------------------------------------------
    def _key(self, path: str) -> str:
        """The image's path relative to the dataset root: how votes name it."""
        full = Path(path)
        if not full.is_absolute() and not full.exists():
            full = self.root / path
        try:
            return full.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return full.resolve().as_posix()

    def index_key(self, path: str) -> str | None:
        """The key of the session's image at ``path``; None when it is not one of them."""
        key = self._key(path)
        return key if key in self.index else None

    def file(self, item: int) -> Path:
        """The file of image ``item`` (an index: no path from the page is ever opened)."""
        if not 0 <= item < len(self.files):
            raise DataError(f"No image {item}; the session has {len(self.files)}.")
        path = Path(self.files[item])
        return path if path.is_absolute() or path.exists() else self.root / path

    # ----- what to ask ------------------------------------------------------------------
    def answered(self, labeller: str | None = None) -> pd.DataFrame:
        answers = self.store.answers()
        answers = answers[answers["path"].isin(self.index)]
        return answers if labeller is None else answers[answers["labeller"] == labeller]

    def next(self, labeller: str) -> dict | None:
        """The image to show ``labeller`` next, its near-duplicates and the model's guess; it is
        leased to them, so other labellers (on any server of the store) get other images."""
        labeller = check_name(labeller)
        answers, leases = self.answered(), self.store.leases()
        mine = set(answers.loc[answers["labeller"] == labeller, "path"])
        others = pd.concat([answers[["path", "labeller"]], leases[leases["labeller"] != labeller]])
        seen = others.drop_duplicates().groupby("path")["labeller"].nunique()
        full = set(seen[seen >= self.overlap].index)
        held = [p for p in leases.loc[leases["labeller"] == labeller, "path"]
                if p in self.index and p not in mine | full]
        answered_by = answers.groupby("path")["labeller"].nunique()
        # what I was shown and did not answer, then an image others labelled that needs more
        # labellers, then the strategy's queue
        wanted = [p for p in answered_by[answered_by < self.overlap].index if p not in mine | full]
        with self._lock:
            queue = [self.keys[r] for r in self._queue if self.keys[r] not in mine | full]
        key = next(iter(held + [p for p in wanted if p in self.index] + queue), None)
        if key is None:
            rest = self.learner.next(1, exclude={self.index[p] for p in mine | full if p in self.index})
            key = self.keys[rest[0]] if rest else None
        if key is None:
            return None
        self.store.lease(key, labeller, LEASE_SECONDS)
        return self.describe(self.index[key], mine)

    def describe(self, row: int, mine: set[str] = frozenset()) -> dict:
        guess = self.learner.guess(row)
        group = [g for g in self.groups.get(row, []) if g != row and self.keys[g] not in mine]
        return {"id": row, "path": self.keys[row], "group": [{"id": g, "path": self.keys[g]} for g in group],
                "guess": None if guess is None else {"label": guess[0], "probability": guess[1]}}

    # ----- answers ----------------------------------------------------------------------
    def answer(self, labeller: str, item: int, label: str, group: list[int] = ()) -> dict:
        """Record ``labeller``'s answer (a class, ``skip`` or ``unsure``) for ``item`` and the
        near-duplicates of it in ``group`` (the page sends those the labeller kept)."""
        labeller = check_name(labeller)
        kind = label if label in KINDS[1:] else "label"
        if kind == "label":
            label = self._check_answer(label)
        rows = [item, *[g for g in group if g in self.groups.get(item, [])]]
        for row in rows:
            self.file(row)  # a bad id is an error before anything is written
        self.store.add_many([(self.keys[r], labeller, label, kind) for r in rows])
        if item in self.learner.offered:  # asked as a random draw: the estimate's sample
            with self._lock:
                self._drawn.add(self.keys[item])
                drawn = sorted(self._drawn)
            self.store.set_meta(DRAWN, json.dumps(drawn))
        labelled = len(self.export())  # the manifest holds every image with a resolved label
        if labelled - self._fitted_on >= self.refit_every or self.learner.model is None:
            self._refit()
        return {"recorded": len(rows)}

    def _check_answer(self, label: str) -> str:
        """A class; for label sets, any of the classes joined by '|' ('' for none), canonical."""
        names = split_labels(label) if self.multilabel else (label,)
        unknown = [n for n in names if n not in self.classes]
        if unknown or (not self.multilabel and not label):
            what = "labels joined by '|' (or '' for none)" if self.multilabel else "one class"
            raise ConfigError(f"'{label}' is not {what} of this session ({', '.join(self.classes)}), "
                              "nor skip or unsure.")
        return join_labels(names) if self.multilabel else label

    def undo(self, labeller: str) -> dict | None:
        """Take back ``labeller``'s last answer; returns the image it was about (to show again)."""
        path = self.store.undo(check_name(labeller))
        if path is None:
            return None
        self.export()
        if path not in self.index:
            return {"path": path}
        self.store.lease(path, labeller, LEASE_SECONDS)
        return self.describe(self.index[path], set(self.answered(labeller)["path"]))

    def labelled(self, answers: pd.DataFrame | None = None) -> dict[int, str]:
        """Rows with a resolved class (of ``answers``, default the store's), for the quick model."""
        answers = self.answered() if answers is None else answers
        table = resolve(answers, self.rule, multilabel=self.multilabel)
        return {self.index[p]: str(label) for p, label in zip(table["path"], table["label"], strict=True)}

    def export(self) -> pd.DataFrame:
        """Write the manifest (one export at a time: the last one written has every vote)."""
        with self._export_lock:
            table = resolve(self.answered(), self.rule, multilabel=self.multilabel)
            return write_manifest(table, self.out, lambda key: self.file(self.index[key]))

    # ----- the quick model ------------------------------------------------------------
    def _refit(self, wait: bool = False) -> None:
        with self._refit_lock:  # one refit at a time; a request during one waits for the next
            if self._refitting is not None and self._refitting.is_alive():
                return
            labels = self.labelled()
            self._fitted_on = len(labels)
            with self._lock:
                drawn = {self.index[k] for k in self._drawn}
            thread = threading.Thread(target=self._refit_now, args=(labels, drawn), daemon=True)
            self._refitting = thread
            thread.start()
        if wait:
            thread.join()

    def _refit_now(self, labels: dict[int, str], drawn: set[int]) -> None:
        old = self.learner
        try:
            learner = Learner(old.X, old.strategy, old.random_share, old.seed, curve=list(old.curve),
                              drawn=drawn, classes=old.classes, multilabel=old.multilabel)
            learner.update(labels)
            queue = learner.next(self.refit_every * 2)
        except Exception as exc:  # noqa: BLE001 - the page goes on with the model it has
            warn(f"label: the quick model could not be refitted on {len(labels)} labels "
                 f"({type(exc).__name__}: {exc}); the previous one is kept")
            return
        with self._lock:
            self.learner, self._queue = learner, queue

    def wait(self) -> None:
        """Until the refit in flight (if any) is done (tests, shutdown)."""
        if self._refitting is not None:
            self._refitting.join()

    # ----- what the page shows ----------------------------------------------------------
    def state(self) -> dict:
        answers = self.answered()
        labels = self.labelled(answers)
        given = [n for value in labels.values()
                 for n in (split_labels(value) if self.multilabel else [value])]
        counts = pd.Series(given, dtype=object).value_counts()
        return {"classes": self.classes, "task": "multilabel" if self.multilabel else "single",
                "images": len(self.files), "labelled": len(labels),
                "per_class": {c: int(counts.get(c, 0)) for c in self.classes},
                "estimate": self.learner.estimate, "curve": self.learner.curve,
                "strategy": self.learner.strategy, "skipped": self.skipped,
                "agreement": (agreement(answers, self.classes if self.multilabel else None)
                              if answers["labeller"].nunique() > 1 else None),
                "manifest": str(self.out)}


def _check_classes(classes: list[str]) -> list[str]:
    names = [str(c).strip() for c in classes if str(c).strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError("The 'classes' parameter must name two or more different classes. "
                          f"Got {classes!r}.")
    bad = [c for c in names if c in KINDS[1:] or "|" in c or "," in c]
    if bad:
        raise ConfigError(f"Class names {bad} are reserved (skip, unsure) or hold '|' or ','.")
    return names


def _near_duplicate_groups(images: np.ndarray) -> dict[int, list[int]]:
    """Row -> the rows of its near-duplicate group (pHashes as close as `check` requires)."""
    import imagehash
    from PIL import Image

    hashes = [str(imagehash.phash(Image.fromarray(img).convert("L"))) for img in images]
    out: dict[int, list[int]] = {}
    for group in near_groups(hashes, CheckConfig().near_threshold, []):
        for row in group:
            out[row] = list(group)
    return out
