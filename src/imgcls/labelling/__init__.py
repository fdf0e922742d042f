"""Collecting labels: ``imgcls label DATA --classes a,b,c`` starts a labelling page.

One image at a time is asked (:mod:`.session`), chosen by active learning
(:mod:`.strategies`, :mod:`.learner`: a quick model on cached embeddings, refitted in the
background), from several labellers whose votes are kept in SQLite (:mod:`.store`) and
resolved into a manifest with their agreement (:mod:`.agreement`); :mod:`.simulate`
measures the strategies against hidden labels; :mod:`.app` is the page and its API.

Example:
    >>> session = label("photos/", classes="cat,dog", out="labels.csv", serve=False)  # doctest: +SKIP
    >>> session.state()["labelled"]                                                # doctest: +SKIP
    0
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..config import cache_root, resolve_config
from .session import LabelSession

__all__ = ["LabelSession", "label"]


def label(data: str | Path, classes: str | Sequence[str], out: str | Path = "labels.csv", *,
          store: str | Path | None = None, project: str | None = None, strategy: str = "mix",
          refit_every: int = 10, random_share: float = 0.1, overlap: int = 1, rule: str = "majority",
          backbone: str = "auto", task: str = "single", host: str = "127.0.0.1", port: int = 8100,
          api_key: str | None = None, serve: bool = True, cache: bool = True,
          progress: bool = True) -> LabelSession:
    """Start (or continue) labelling ``data`` into the manifest ``out``; see the module docstring.

    Args:
        data: Folder, globs or a CSV/Parquet manifest of the images (labels in it are ignored).
        classes: The classes, comma-separated or a list.
        out: The manifest written after every vote (path, label, votes, agreed, vote_NAME).
        store: The votes' SQLite file (default ``OUT.votes.db``) or a SQLAlchemy URL
            (``postgresql+psycopg://user@host/db`` for a team); an existing one is continued.
        project: The votes' name in the store (default: the dataset folder's name).
        strategy: random, margin, entropy, diversity or mix.
        refit_every: Labels between refits of the quick model.
        random_share: Share of each batch asked at random, whatever the strategy.
        overlap: How many labellers should see each image (2+ to measure agreement).
        rule: How votes become the label: majority, reviewer:NAME or drop.
        backbone: auto, features, or a pretrained backbone's name for the image vectors.
        task: ``single`` (one class per image) or ``multilabel`` (any set of the classes,
            none included; the manifest's ``label`` joins them with '|').
        api_key: Required when ``host`` is not loopback (default $IMGCLS_API_KEY).
        serve: Serve the page until interrupted; False returns the session (tests, scripts).
    """
    names = classes.split(",") if isinstance(classes, str) else list(classes)
    cache_dir = cache_root(resolve_config(None, {})) if cache else None
    session = LabelSession(data, names, out, store=store, project=project, strategy=strategy,
                           refit_every=refit_every,
                           random_share=random_share, rule=rule, overlap=overlap, backbone=backbone,
                           cache_dir=cache_dir, progress=progress, task=task)
    if serve:
        from .app import run_label_server

        run_label_server(session, host, port, api_key or os.environ.get("IMGCLS_API_KEY"))
    return session
