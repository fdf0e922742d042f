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
import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from ..checks.duplicates import near_groups
from ..core.errors import ConfigError, DataError
from ..core.io import atomic_write_text
from ..core.log import info, warn
from ..data.dataset import join_labels, split_labels
from ..deploy.inputs import as_dataset
from .agreement import agreement, parse_rule, resolve
from .learner import Learner, image_vectors
from .store import KINDS, LabelStore

STORE_SUFFIX = ".votes.db"
IMPORTED = "imported"  # the labeller of a partial manifest's labels
DRAWN = "random_draws"  # store metadata: the images asked as random draws (the estimate's sample)
NEAR_BITS = 4
TASKS = ("single", "multilabel")  # pHash bits apart to count as near-duplicates (as `check` does)


class LabelSession:
    """See the module docstring. ``store``: the votes' SQLite file or a SQLAlchemy URL
    (PostgreSQL for a team), ``project`` their name in it (default: the dataset folder's
    name); ``overlap``: how many labellers should see each image (2 or more to measure
    agreement)."""

    def __init__(self, data: str | Path, classes: list[str], out: str | Path, *,
                 store: str | Path | None = None, project: str | None = None, strategy: str = "mix",
                 refit_every: int = 10,
                 random_share: float = 0.1,
                 rule: str = "majority", overlap: int = 1, backbone: str = "auto", n_jobs: int = 2,
                 cache_dir: Path | None = None, seed: int = 0, progress: bool = True,
                 task: str = "single") -> None:
        if task not in TASKS:
            raise ConfigError(f"The 'task' parameter must be one of {list(TASKS)}. Got {task!r}.")
        self.classes, self.multilabel = _check_classes(classes), task == "multilabel"
        parse_rule(rule)
        if overlap < 1 or refit_every < 1:
            raise ConfigError(f"overlap and refit_every must be at least 1. Got {overlap} and {refit_every}.")
        self.out, self.rule, self.overlap, self.refit_every = Path(out), rule, overlap, refit_every
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
        drawn = json.loads(self.store.meta(DRAWN) or "[]")  # random draws of an earlier run
        self.learner = Learner(X, strategy, random_share, seed, classes=tuple(self.classes),
                               drawn={self.index[k] for k in drawn if k in self.index},
                               multilabel=self.multilabel)
        self._lock = threading.Lock()
        self._refitting: threading.Thread | None = None
        self._queue: list[int] = []
        self._fitted_on = 0  # labels the quick model was last fitted on
        self._continue_manifest()
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
        """The image to show ``labeller`` next, its near-duplicates and the model's guess."""
        answers = self.answered()
        mine = set(answers.loc[answers["labeller"] == labeller, "path"])
        seen = answers.groupby("path")["labeller"].nunique()
        full = set(seen[seen >= self.overlap].index)
        # an image others labelled but that still needs more labellers comes first
        wanted = [self.index[p] for p in seen[seen < self.overlap].index if p not in mine and p in self.index]
        with self._lock:
            queue = [r for r in self._queue if self.keys[r] not in mine and self.keys[r] not in full]
        row = next(iter(wanted + queue), None)
        if row is None:
            taken = {self.index[p] for p in mine | full}
            rest = self.learner.next(1, exclude=taken)
            row = rest[0] if rest else None
        return None if row is None else self.describe(row, mine)

    def describe(self, row: int, mine: set[str] = frozenset()) -> dict:
        guess = self.learner.guess(row)
        group = [g for g in self.groups.get(row, []) if g != row and self.keys[g] not in mine]
        return {"id": row, "path": self.keys[row], "group": [{"id": g, "path": self.keys[g]} for g in group],
                "guess": None if guess is None else {"label": guess[0], "probability": guess[1]}}

    # ----- answers ----------------------------------------------------------------------
    def answer(self, labeller: str, item: int, label: str, group: list[int] = ()) -> dict:
        """Record ``labeller``'s answer (a class, ``skip`` or ``unsure``) for ``item`` and the
        near-duplicates of it in ``group`` (the page sends those the labeller kept)."""
        labeller = _check_name(labeller)
        kind = label if label in KINDS[1:] else "label"
        if kind == "label":
            label = self._check_answer(label)
        rows = [item, *[g for g in group if g in self.groups.get(item, [])]]
        for row in rows:
            self.file(row)  # a bad id is an error before anything is written
        self.store.add_many([(self.keys[r], labeller, label, kind) for r in rows])
        self.export()
        if len(self.labelled()) - self._fitted_on >= self.refit_every or self.learner.model is None:
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
        path = self.store.undo(labeller)
        if path is None:
            return None
        self.export()
        return self.describe(self.index[path]) if path in self.index else {"path": path}

    def labelled(self) -> dict[int, str]:
        """Rows with a resolved class, for the quick model."""
        table = resolve(self.answered(), self.rule, multilabel=self.multilabel)
        return {self.index[p]: str(label) for p, label in zip(table["path"], table["label"], strict=True)}

    def export(self) -> pd.DataFrame:
        """Write the manifest: resolved labels, every vote; paths relative to its folder."""
        table = resolve(self.answered(), self.rule, multilabel=self.multilabel)
        paths = [os.path.relpath(self.file(self.index[p]).resolve(), self.out.resolve().parent)
                 for p in table["path"]]
        table = table.assign(path=[Path(p).as_posix() for p in paths])
        self.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out, table.to_csv(index=False))
        return table

    def _continue_manifest(self) -> None:
        """Labels of an existing manifest at ``out`` become votes, when the store is new."""
        if self.store.count() or not self.out.is_file():
            return
        old = pd.read_csv(self.out, keep_default_na=False, dtype=str)
        if not {"path", "label"} <= set(old.columns):
            raise DataError(f"'{self.out}' exists but has no path and label columns; give another --out.")
        rows = []
        for path, label in zip(old["path"], old["label"], strict=True):
            key = self._key(str(self.out.parent / path))
            try:
                answer = self._check_answer(label)
            except ConfigError:
                continue  # a class this session does not have
            if key in self.index:
                rows.append((key, IMPORTED, answer, "label"))
        self.store.add_many(rows)
        info(f"label: continuing {self.out}: {len(rows)} labels")

    # ----- the quick model ------------------------------------------------------------
    def _refit(self, wait: bool = False) -> None:
        if self._refitting is not None and self._refitting.is_alive():
            return
        labels = self.labelled()
        self._fitted_on = len(labels)
        thread = threading.Thread(target=self._refit_now, args=(labels,), daemon=True)
        self._refitting = thread
        thread.start()
        if wait:
            thread.join()

    def _refit_now(self, labels: dict[int, str]) -> None:
        old = self.learner
        learner = Learner(old.X, old.strategy, old.random_share, old.seed, curve=list(old.curve),
                          drawn=set(old.drawn), classes=old.classes, multilabel=old.multilabel)
        learner.update(labels)
        queue = learner.next(self.refit_every * 2)
        self.store.set_meta(DRAWN, json.dumps(sorted(self.keys[r] for r in learner.drawn)))
        with self._lock:
            self.learner, self._queue = learner, queue

    def wait(self) -> None:
        """Until the refit in flight (if any) is done (tests, shutdown)."""
        if self._refitting is not None:
            self._refitting.join()

    # ----- what the page shows ----------------------------------------------------------
    def state(self) -> dict:
        answers = self.answered()
        labels = self.labelled()
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


def _check_name(name: str) -> str:
    name = str(name).strip()
    if not name or len(name) > 64 or not all(ch.isalnum() or ch in "-_." for ch in name):
        raise ConfigError(f"A labeller's name must be 1-64 letters, digits, '-', '_' or '.'. Got {name!r}.")
    return name


def _near_duplicate_groups(images: np.ndarray) -> dict[int, list[int]]:
    """Row -> the rows of its near-duplicate group (pHash within ``NEAR_BITS`` bits)."""
    import imagehash
    from PIL import Image

    hashes = [str(imagehash.phash(Image.fromarray(img).convert("L"))) for img in images]
    out: dict[int, list[int]] = {}
    for group in near_groups(hashes, NEAR_BITS, []):
        for row in group:
            out[row] = list(group)
    return out
