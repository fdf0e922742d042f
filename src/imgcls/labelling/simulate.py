"""Active learning with the real labels hidden and revealed on request (an oracle).

The pool's labels are known but shown to the learner only for the images it asks about, in
batches, as a labeller would give them; after each batch the quick model is refitted and
scored on held-out test images it never sees. The curves of several strategies, over
several seeds, say how many labels each needs: the measure of what active learning saves.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (60, 2)), rng.normal(4, 1, (60, 2))]
    >>> y = np.array(["a"] * 60 + ["b"] * 60, dtype=object)
    >>> curve = simulate(X, y, np.arange(0, 120, 4), "random", budget=20, batch=10)
    >>> [point["labels"] for point in curve], curve[-1]["accuracy"] > 0.9
    ([10, 20], True)
"""

from __future__ import annotations

import numpy as np

from ..core.errors import ConfigError
from .learner import Learner, estimate_accuracy, normalise


def simulate(X: np.ndarray, y: np.ndarray, test: np.ndarray, strategy: str, *, budget: int, batch: int,
             seed: int = 0, random_share: float = 0.1, first: int | None = None,
             estimate: bool = False) -> list[dict]:
    """The test accuracy of the quick model after each batch of revealed labels.

    Args:
        X: Every image's vector (N, D).
        y: Every image's true label (the oracle's).
        test: Rows held out for scoring; the others form the pool.
        strategy: Which rows to ask (:mod:`.strategies`).
        budget: Labels to reveal in all.
        batch: Labels revealed between refits.
        first: Size of the first batch (default ``batch``), chosen with no model yet.
        estimate: Also record the estimate the labelling page would show, and at the last point
            (``estimate_all_labels``) the plain cross-validation on every label.
    """
    if budget <= 0 or batch <= 0:
        raise ConfigError(f"budget and batch must be positive. Got {budget} and {batch}.")
    X = normalise(X)
    y = np.asarray(y).astype(str)
    is_test = np.zeros(len(X), dtype=bool)
    is_test[test] = True
    test_rows = np.flatnonzero(is_test)
    learner = Learner(X, strategy=strategy, random_share=random_share, seed=seed)
    revealed: dict[int, str] = {}
    curve: list[dict] = []
    size = first or batch
    while len(revealed) < budget:
        asked = learner.next(min(size, budget - len(revealed)), exclude=set(test_rows.tolist()))
        if not asked:
            break
        revealed.update({r: y[r] for r in asked})
        learner.drawn |= learner.offered & set(asked)  # every row asked is answered here
        learner.update(revealed, estimate)
        model = learner.model
        accuracy = float(np.mean(model.predict(X[test_rows]) == y[test_rows])) if model is not None else None
        curve.append({"labels": len(revealed), "accuracy": accuracy,
                      "estimate": None if learner.estimate is None else learner.estimate["score"]})
        size = batch
    if estimate and curve:  # beside it, what cross-validation on every label (no draws) would say
        rows = np.fromiter(revealed, dtype=int)
        plain = estimate_accuracy(X[rows], y[rows], seed)
        curve[-1]["estimate_all_labels"] = None if plain is None else plain["score"]
    return curve


def labels_to_reach(curve: list[dict], accuracy: float) -> int | None:
    """The fewest labels at which ``curve`` reaches ``accuracy``; None if it never does."""
    for point in curve:
        if point["accuracy"] is not None and point["accuracy"] >= accuracy - 1e-12:
            return point["labels"]
    return None
