""""Unknown": a score per image for how unlike the training images it is, and a threshold.

A classifier always answers with one of its classes, often confidently, for an image of a
kind it never saw. Each prediction therefore gets an *unknown score* (higher: less like
the training data) from one of three methods, and a threshold chosen on validation images
so that a stated fraction of in-distribution images (``decision.unknown_rate``, the false
rejection rate) would be called unknown:

- ``knn``: the distance to the k-th nearest training image, in the vectors the model
  decides from (the REPRESENTATION capability), by the metric its family declares
  (``representation_metric``): one minus the cosine similarity for network embeddings
  (probe, fine-tune; Sun et al., 2022), the Euclidean distance for a classical model's
  standardised features, whose length carries information (random noise gives longer
  standardised feature vectors than shapes on average; cosine discards that). Up to
  :data:`BANK` training vectors are kept with the model; k is 1 % of them, between 1 and
  :data:`K`.
- ``msp``: one minus the largest (calibrated) class probability (Hendrycks & Gimpel, 2017);
  any model.
- ``energy``: minus the log-sum-exp of the logits (Liu et al., 2020); networks with logits
  of their own.

``auto`` is ``knn`` where the model has a representation, else ``msp``. Which works is
measured in ``benchmarks/elpv_unknown.py`` (docs/benchmarks.md). The score and the
threshold travel with the model (model.json, ``unknown.safetensors`` for the bank) and into
its ONNX export.

Example:
    >>> import numpy as np
    >>> rule = Unknown("msp", threshold=0.3, rate=0.05)
    >>> rule.flags(np.array([0.1, 0.5])).tolist()
    [False, True]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError, ModelError
from .capabilities import GRADIENTS, REPRESENTATION

METHODS = ("auto", "knn", "msp", "energy", "none")
SCORES = ("knn", "msp", "energy")
BANK = 4096  # training vectors kept for knn (a seeded sample beyond that)
K = 10
BANK_FILE = "unknown.safetensors"
CHUNK = 256


@dataclass
class Unknown:
    """An unknown score and the threshold above which an image is called unknown."""

    method: str
    threshold: float
    rate: float
    k: int = K
    validation: dict = field(default_factory=dict)
    bank: np.ndarray | None = field(default=None, repr=False)  # knn: training vectors (normalised for cosine)
    metric: str = "cosine"  # knn: cosine or euclidean

    def flags(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float64) > self.threshold

    def scores(self, clf, images: np.ndarray, proba: np.ndarray | None = None) -> np.ndarray:
        """The score of each prepared image (``proba``: its probabilities, when already known)."""
        if self.method == "msp":
            return msp_score(clf.predict_proba(images) if proba is None else proba)
        if self.method == "energy":
            return energy_score(logits_of(clf, images))
        if self.bank is None:
            raise ModelError("This model's unknown detector has lost its training vectors "
                             f"({BANK_FILE}); train it again.")
        return knn_score(clf.representation(images), self.bank, self.k, self.metric)

    def to_dict(self) -> dict:
        return {"method": self.method, "threshold": float(self.threshold), "rate": float(self.rate),
                "k": int(self.k), "metric": self.metric, "validation": self.validation,
                "bank": None if self.bank is None else {"file": BANK_FILE, "rows": int(len(self.bank))}}

    def describe(self) -> str:
        return (f"{self.method} score > {self.threshold:.4g} (rejects {self.rate:.0%} of in-distribution "
                "validation images)")

    def save_bank(self, folder: Path) -> None:
        if self.bank is not None:
            from safetensors.numpy import save_file

            save_file({"bank": np.ascontiguousarray(self.bank, dtype=np.float32)}, str(folder / BANK_FILE))

    @classmethod
    def from_dict(cls, data: dict | None, folder: Path | None = None) -> Unknown | None:
        if not data:
            return None
        bank = None
        if data.get("bank") and folder is not None:
            from safetensors.numpy import load_file

            try:
                bank = load_file(str(Path(folder) / BANK_FILE))["bank"]
            except (OSError, KeyError, ValueError) as exc:
                raise ModelError(f"'{folder}': {BANK_FILE} cannot be loaded: {exc}") from None
        return cls(data["method"], float(data["threshold"]), float(data["rate"]), int(data.get("k", K)),
                   dict(data.get("validation", {})), bank, data.get("metric", "cosine"))


def available_methods(clf) -> list[str]:
    """The scores this model can give: msp always, energy and knn with a representation. A
    multi-label model only knn: its probabilities are per label, and an image with no label
    is no stranger for having none high (msp and energy would call it unknown)."""
    single = not clf.is_multilabel
    out = ["msp"] if single else []
    if clf.supports(REPRESENTATION):
        out.insert(0, "knn")
        if clf.supports(GRADIENTS) and single:
            out.append("energy")
    return out


def resolve_method(method: str, clf) -> str | None:
    """The method ``decision.unknown`` asks for on this model; None for ``none``."""
    if method not in METHODS:
        raise ConfigError(f"The 'decision.unknown' parameter must be one of {METHODS}. Got {method!r}.")
    if method == "none":
        return None
    possible = available_methods(clf)
    if method == "auto":
        return possible[0] if possible else None
    if not possible:
        raise ConfigError(f"decision.unknown={method}: a multi-label '{clf.family}' model has no unknown "
                          "score (knn needs a model with a representation: a network, a probe or "
                          "features); use decision.unknown=none.")
    if method not in possible:
        raise ConfigError(f"decision.unknown={method} is not available for a '{clf.family}' model; it can "
                          f"use {possible}.")
    return method


def fit_unknown(clf, method: str, train_images: np.ndarray, val_images: np.ndarray, rate: float,
                seed: int = 0, val_proba: np.ndarray | None = None) -> Unknown:
    """The detector: training vectors for knn, the threshold from the validation images' scores."""
    if not 0 < rate < 1:
        raise ConfigError(f"The 'decision.unknown_rate' parameter must be between 0 and 1. Got {rate}.")
    if len(val_images) < 2:
        raise ConfigError("An unknown threshold needs at least 2 validation images.")
    bank, metric = None, getattr(clf, "representation_metric", "cosine")
    if method == "knn":
        rows = np.arange(len(train_images))
        if len(rows) > BANK:
            rows = np.sort(np.random.default_rng(seed).choice(rows, BANK, replace=False))
        bank = clf.representation(train_images[rows]).astype(np.float32)
        bank = normalise(bank) if metric == "cosine" else bank
    k = int(np.clip(len(train_images) // 100, 1, K))
    detector = Unknown(method, 0.0, rate, k, bank=bank, metric=metric)
    scores = detector.scores(clf, val_images, val_proba)
    detector.threshold = float(np.quantile(scores, 1 - rate))
    detector.validation = {"n": int(len(scores)), "rejected": round(float(detector.flags(scores).mean()), 4),
                           "score_median": round(float(np.median(scores)), 6)}
    return detector


def normalise(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def knn_score(vectors: np.ndarray, bank: np.ndarray, k: int, metric: str = "cosine") -> np.ndarray:
    """The distance to the k-th nearest bank vector: one minus the cosine similarity (``bank``
    normalised), or the Euclidean distance."""
    k = min(k, len(bank))
    out = []
    if metric == "cosine":
        v = normalise(vectors)
        for start in range(0, len(v), CHUNK):
            sims = v[start:start + CHUNK] @ bank.T
            out.append(1.0 - np.partition(sims, -k, axis=1)[:, -k])
    else:
        v = np.asarray(vectors, dtype=np.float32)
        squared = (bank.astype(np.float64) ** 2).sum(axis=1)
        for start in range(0, len(v), CHUNK):
            chunk = v[start:start + CHUNK].astype(np.float64)
            d2 = (chunk ** 2).sum(axis=1)[:, None] - 2 * chunk @ bank.T.astype(np.float64) + squared[None, :]
            out.append(np.sqrt(np.maximum(np.partition(d2, k - 1, axis=1)[:, k - 1], 0.0)))
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def msp_score(proba: np.ndarray) -> np.ndarray:
    return 1.0 - np.asarray(proba, dtype=np.float64).max(axis=1)


def energy_score(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    top = z.max(axis=1)
    return -(top + np.log(np.exp(z - top[:, None]).sum(axis=1)))


def logits_of(clf, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """The network's logits of the plain view (no test-time flips)."""
    import torch

    from .deep.networks import to_tensor

    net = clf.network()
    prepared = clf.check_input(images)
    out = []
    with torch.inference_mode():
        for start in range(0, len(prepared), batch):
            out.append(net(to_tensor(prepared[start:start + batch])).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(clf.classes_)), np.float32)


def detection_metrics(in_scores: np.ndarray, out_scores: np.ndarray) -> dict:
    """How well scores tell other images (positives: higher scores) from in-distribution ones:
    AUROC, and the false-positive rate at 95 % true-positive rate in the usual sense, the
    fraction of other images accepted when 95 % of in-distribution images are."""
    from sklearn.metrics import roc_auc_score

    in_scores, out_scores = np.asarray(in_scores, np.float64), np.asarray(out_scores, np.float64)
    y = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
    cut = np.quantile(in_scores, 0.95)
    return {"auroc": float(roc_auc_score(y, np.r_[in_scores, out_scores])),
            "fpr_at_95_tpr": float(np.mean(out_scores <= cut)),
            "n_in": int(len(in_scores)), "n_out": int(len(out_scores))}
