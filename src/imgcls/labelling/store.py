"""Where the labels of a labelling session live: every vote, in SQLite, never rewritten.

A vote is one labeller's answer about one image: a class, ``skip`` or ``unsure``; one
answer may name an image and its near-duplicates. Answers are appended in a transaction
each, so a killed server loses nothing and a restarted one continues; an undo marks the
labeller's last answer undone instead of deleting it. The
current answer of a labeller about an image is their latest vote not undone. The images
themselves are never touched: the store holds their paths relative to the dataset root.

Example:
    >>> store = LabelStore(":memory:")
    >>> _ = store.add("a.png", "ann", "cat"); _ = store.add("b.png", "ann", "dog")
    >>> store.undo("ann")
    'b.png'
    >>> store.answers()[["path", "labeller", "label"]].values.tolist()
    [['a.png', 'ann', 'cat']]
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pandas as pd

from ..core.errors import ConfigError

KINDS = ("label", "skip", "unsure")
SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    labeller TEXT NOT NULL,
    label TEXT NOT NULL,
    kind TEXT NOT NULL,
    at REAL NOT NULL,
    answer INTEGER NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS votes_by_labeller ON votes (labeller, undone, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class LabelStore:
    """Append-only votes in one SQLite file (``:memory:`` for tests); safe across threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"'{self.path}' is not a label store ({exc}); give another --store "
                              "path.") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    # ----- what the session was started with ------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # ----- votes ----------------------------------------------------------------------
    def add(self, path: str, labeller: str, label: str, kind: str = "label") -> int:
        """Append one vote; returns its answer's number."""
        return self.add_many([(path, labeller, label, kind)])

    def add_many(self, rows: list[tuple[str, str, str, str]]) -> int:
        """(path, labeller, label, kind) votes as one answer, in one transaction (an image and
        its near-duplicates, or an imported manifest); returns the answer's number."""
        for row in rows:
            if row[3] not in KINDS:
                raise ConfigError(f"The 'kind' parameter must be one of {list(KINDS)}. Got {row[3]!r}.")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            answer = int(self._db.execute("SELECT COALESCE(MAX(answer), 0) + 1 FROM votes").fetchone()[0])
            self._db.executemany(
                "INSERT INTO votes (path, labeller, label, kind, at, answer) VALUES (?, ?, ?, ?, ?, ?)",
                [(str(p), str(who), str(lab), kind, time.time(), answer) for p, who, lab, kind in rows])
            self._db.execute("COMMIT")
            return answer

    def undo(self, labeller: str) -> str | None:
        """Mark ``labeller``'s last answer not yet undone as undone (every image it named);
        returns the path of its first image."""
        with self._lock:
            row = self._db.execute("SELECT answer FROM votes WHERE labeller = ? AND undone = 0 "
                                   "ORDER BY id DESC LIMIT 1", (labeller,)).fetchone()
            if row is None:
                return None
            first = self._db.execute("SELECT path FROM votes WHERE answer = ? ORDER BY id LIMIT 1",
                                     (row[0],)).fetchone()
            self._db.execute("UPDATE votes SET undone = 1 WHERE answer = ? AND labeller = ?",
                             (row[0], labeller))
            return str(first[0])

    def answers(self) -> pd.DataFrame:
        """Each labeller's current answer per image: path, labeller, label, kind, at."""
        query = ("SELECT path, labeller, label, kind, at FROM votes WHERE id IN ("
                 "SELECT MAX(id) FROM votes WHERE undone = 0 GROUP BY path, labeller) ORDER BY id")
        with self._lock:
            rows = self._db.execute(query).fetchall()
        return pd.DataFrame(rows, columns=["path", "labeller", "label", "kind", "at"])

    def labellers(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT labeller FROM votes ORDER BY labeller").fetchall()
        return [r[0] for r in rows]

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM votes WHERE undone = 0").fetchone()[0])
