"""Where the labels of a labelling session live: every vote, in a database, never rewritten.

A vote is one labeller's answer about one image: a class, ``skip`` or ``unsure``; one
answer may name an image and its near-duplicates. Answers are appended in a transaction
each, so a killed server loses nothing and a restarted one continues; an undo marks the
labeller's last answer undone instead of deleting it. The current answer of a labeller
about an image is their latest vote not undone. The images themselves are never touched:
the store holds their paths relative to the dataset root.

The database is a SQLite file by default, or any SQLAlchemy URL: PostgreSQL
(``postgresql+psycopg://user@host/db``) for a team whose labellers use servers on several
machines, the same choice the search offers for its studies. One database holds many
projects; every row carries its ``project``.

Example:
    >>> store = LabelStore(":memory:")
    >>> _ = store.add("a.png", "ann", "cat"); _ = store.add("b.png", "ann", "dog")
    >>> store.undo("ann")
    'b.png'
    >>> store.answers()[["path", "labeller", "label"]].values.tolist()
    [['a.png', 'ann', 'cat']]
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd

from ..core.errors import ConfigError
from ..core.log import safe_url

KINDS = ("label", "skip", "unsure")


def store_url(store: str | Path) -> str:
    """A SQLAlchemy URL for ``store``: a URL as given, else a SQLite file (``:memory:`` too)."""
    text = str(store)
    if re.match(r"^[a-z][a-z0-9+]*://", text):
        return text
    if text == ":memory:":
        return "sqlite://"
    path = Path(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


class LabelStore:
    """Append-only votes of one ``project`` in a SQLite file or any SQLAlchemy database."""

    def __init__(self, store: str | Path, project: str = "default") -> None:
        import sqlalchemy as sa

        self.url, self.project = store_url(store), project
        kwargs = {"connect_args": {"timeout": 30, "check_same_thread": False}} if self.url.startswith(
            "sqlite") else {"pool_pre_ping": True}
        if self.url == "sqlite://":  # one in-memory database shared by every thread
            kwargs["poolclass"] = sa.pool.StaticPool
        meta = sa.MetaData()
        self._answers = sa.Table("label_answers", meta,
                                 sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                                 sa.Column("project", sa.String(200), nullable=False, index=True),
                                 sa.Column("labeller", sa.String(64), nullable=False),
                                 sa.Column("at", sa.Float, nullable=False),
                                 sa.Column("undone", sa.Boolean, nullable=False, default=False))
        self._votes = sa.Table("label_votes", meta,
                               sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                               sa.Column("answer", sa.Integer, sa.ForeignKey("label_answers.id"),
                                         nullable=False, index=True),
                               sa.Column("project", sa.String(200), nullable=False, index=True),
                               sa.Column("path", sa.Text, nullable=False),
                               sa.Column("labeller", sa.String(64), nullable=False),
                               sa.Column("label", sa.Text, nullable=False),
                               sa.Column("kind", sa.String(16), nullable=False))
        self._leases = sa.Table("label_leases", meta,
                                sa.Column("project", sa.String(200), primary_key=True),
                                sa.Column("path", sa.Text, primary_key=True),
                                sa.Column("labeller", sa.String(64), primary_key=True),
                                sa.Column("until", sa.Float, nullable=False))
        self._meta = sa.Table("label_meta", meta,
                              sa.Column("project", sa.String(200), primary_key=True),
                              sa.Column("key", sa.String(200), primary_key=True),
                              sa.Column("value", sa.Text, nullable=False))
        try:
            self._engine = sa.create_engine(self.url, **kwargs)
            if self.url.startswith("sqlite:///"):
                with self._engine.begin() as db:
                    db.exec_driver_sql("PRAGMA journal_mode=WAL")
            meta.create_all(self._engine)
        except ImportError as exc:
            raise ConfigError(f"The store {safe_url(self.url)} needs a database driver: {exc}. For "
                              "PostgreSQL: pip install 'imgcls[postgres]'.") from None
        except sa.exc.SQLAlchemyError as exc:
            raise ConfigError(f"'{safe_url(self.url)}' cannot be used as a label store "
                              f"({type(exc.orig or exc).__name__}: {exc.orig or exc}); give another store."
                              ) from None

    def close(self) -> None:
        self._engine.dispose()

    # ----- what the session was started with ------------------------------------------
    def meta(self, key: str) -> str | None:
        import sqlalchemy as sa

        t = self._meta
        with self._engine.connect() as db:
            return db.execute(sa.select(t.c.value).where(t.c.project == self.project, t.c.key == key)
                              ).scalar()

    def set_meta(self, key: str, value: str) -> None:
        t = self._meta
        self._replace(t, (t.c.project == self.project) & (t.c.key == key),
                      {"project": self.project, "key": key, "value": value})

    def _replace(self, table, where, row: dict) -> None:
        """Delete-then-insert in one transaction; when another server inserted the same key
        in between, its row and ours race, and the retry makes ours the last."""
        import sqlalchemy as sa

        for attempt in range(3):
            try:
                with self._engine.begin() as db:
                    db.execute(sa.delete(table).where(where))
                    db.execute(sa.insert(table).values(**row))
                return
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise
                time.sleep(0.05 * (attempt + 1))

    # ----- who is looking at what -------------------------------------------------------
    def lease(self, path: str, labeller: str, seconds: float) -> None:
        """``labeller`` is shown ``path`` for the next ``seconds``: others are asked something else."""
        t = self._leases
        self._replace(t, (t.c.project == self.project) & (t.c.path == path) & (t.c.labeller == labeller),
                      {"project": self.project, "path": str(path), "labeller": labeller,
                       "until": time.time() + seconds})

    def leases(self) -> pd.DataFrame:
        """Leases not expired: path, labeller."""
        import sqlalchemy as sa

        t = self._leases
        with self._engine.connect() as db:
            rows = db.execute(sa.select(t.c.path, t.c.labeller).where(
                t.c.project == self.project, t.c.until > time.time())).fetchall()
        return pd.DataFrame([tuple(r) for r in rows], columns=["path", "labeller"])

    # ----- votes ----------------------------------------------------------------------
    def add(self, path: str, labeller: str, label: str, kind: str = "label") -> int:
        """Append one vote; returns its answer's number."""
        return self.add_many([(path, labeller, label, kind)])

    def add_many(self, rows: list[tuple[str, str, str, str]]) -> int:
        """(path, labeller, label, kind) votes of one labeller as one answer, in one transaction
        (an image and its near-duplicates, or an imported manifest); returns its number."""
        import sqlalchemy as sa

        for row in rows:
            if row[3] not in KINDS:
                raise ConfigError(f"The 'kind' parameter must be one of {list(KINDS)}. Got {row[3]!r}.")
        if not rows:
            return 0
        with self._engine.begin() as db:
            inserted = db.execute(sa.insert(self._answers).values(
                project=self.project, labeller=str(rows[0][1]), at=time.time(), undone=False))
            answer = inserted.inserted_primary_key[0]
            db.execute(sa.insert(self._votes), [
                {"answer": answer, "project": self.project, "path": str(p), "labeller": str(who),
                 "label": str(lab), "kind": kind} for p, who, lab, kind in rows])
            return int(answer)

    def undo(self, labeller: str) -> str | None:
        """Mark ``labeller``'s last answer not yet undone as undone (every image it named);
        returns the path of its first image."""
        import sqlalchemy as sa

        a, v = self._answers, self._votes
        with self._engine.begin() as db:
            answer = db.execute(sa.select(a.c.id).where(a.c.project == self.project, a.c.labeller == labeller,
                                                        a.c.undone.is_(False))
                                .order_by(a.c.id.desc()).limit(1)).scalar()
            if answer is None:
                return None
            db.execute(sa.update(a).where(a.c.id == answer).values(undone=True))
            first = sa.select(v.c.path).where(v.c.answer == answer).order_by(v.c.id).limit(1)
            return db.execute(first).scalar()

    def answers(self) -> pd.DataFrame:
        """Each labeller's current answer per image: path, labeller, label, kind, at."""
        import sqlalchemy as sa

        a, v = self._answers, self._votes
        live = (sa.select(sa.func.max(v.c.id)).select_from(v.join(a, v.c.answer == a.c.id))
                .where(v.c.project == self.project, a.c.undone.is_(False)).group_by(v.c.path, v.c.labeller))
        query = (sa.select(v.c.path, v.c.labeller, v.c.label, v.c.kind, a.c.at)
                 .select_from(v.join(a, v.c.answer == a.c.id)).where(v.c.id.in_(live)).order_by(v.c.id))
        with self._engine.connect() as db:
            rows = db.execute(query).fetchall()
        return pd.DataFrame([tuple(r) for r in rows], columns=["path", "labeller", "label", "kind", "at"])

    def count(self) -> int:
        """Votes not undone."""
        import sqlalchemy as sa

        a, v = self._answers, self._votes
        query = (sa.select(sa.func.count()).select_from(v.join(a, v.c.answer == a.c.id))
                 .where(v.c.project == self.project, a.c.undone.is_(False)))
        with self._engine.connect() as db:
            return int(db.execute(query).scalar())
