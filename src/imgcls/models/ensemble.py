"""An ensemble of fitted models of any families: a weighted average of their probabilities.

Weights come from greedy forward selection with replacement on validation probabilities
(Caruana et al., 2004, as AutoGluon does): start empty, add the member that most improves the
validation score of the average, repeat; a member chosen twice weighs twice. Without a
validation split every member weighs the same.

The ensemble's prepared images are those of its largest member; a member that takes another
size, channel count or crop gets them prepared again from that stack (a ROI crop the ensemble
already made is not made twice). Saved as ``model.json`` (weights, members) and
``members/<k>/``, each a model folder of its own family, loaded as that family loads it.

Example:
    >>> ensemble = EnsembleClassifier(["runs/a/model", "runs/b/model"])   # doctest: +SKIP
    >>> ensemble.fit(val_images, val_labels, val=(val_images, val_labels)).weights_  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..core.errors import ConfigError, ModelError
from ..core.io import atomic_dir
from ..core.log import info
from ..data.prepare import ImageSpec, prepare_images
from ..data.tasks import indicator
from .base import (
    EMBEDDINGS,
    FORMAT_VERSION,
    ONNX,
    VALIDATION,
    Classifier,
    read_model_json,
    versions,
    write_model_json,
)
from .label_scores import quick_multilabel_score

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..data.facts import DataFacts

ROUNDS = 25
MEMBERS = "members"


def greedy_selection(probas: Sequence[np.ndarray], y: np.ndarray, score: Callable[[np.ndarray], float],
                     rounds: int = ROUNDS) -> np.ndarray:
    """How often each candidate is picked by greedy forward selection with replacement, as
    weights summing to 1. ``score(proba)`` rates an average (higher is better); ties go to the
    lower log loss, so a flat accuracy still lets the better-calibrated member in. ``y``: class
    indices, or a 0/1 matrix (N, labels) for per-label probabilities (binary log loss)."""
    counts = np.zeros(len(probas))
    total = np.zeros_like(probas[0], dtype=np.float64)
    for n in range(rounds):
        trials = [(total + p) / (n + 1) for p in probas]
        ranked = [(score(t), -_log_loss(t, y)) for t in trials]
        best = max(range(len(probas)), key=lambda k: ranked[k])
        counts[best] += 1
        total += probas[best]
    return counts / counts.sum()


def _log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    if y.ndim == 2:  # independent labels
        return float(-np.mean(np.log(np.clip(np.where(y > 0, proba, 1 - proba), 1e-12, 1))))
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1))))


class EnsembleClassifier(Classifier):
    """Weighted average of fitted members' probabilities (members: model or run folders)."""

    school: ClassVar[str] = "ensemble"
    backend: ClassVar[str] = "members"
    capabilities: ClassVar[frozenset[str]] = frozenset({VALIDATION})
    load_member: ClassVar[Callable[[Path], Classifier] | None] = None  # set by models.families

    def __init__(self, members: Sequence[str] | None = None, family: str = "ensemble") -> None:
        self.members = members
        self.family = family

    @classmethod
    def from_config(cls, family: str, cfg: RunConfig, facts: DataFacts) -> EnsembleClassifier:
        return cls(list(cfg.model.members), family)

    def validate(self) -> EnsembleClassifier:
        if not self.members:
            raise ConfigError("The 'model.members' parameter must name the models of the ensemble (run or "
                              "model folders), e.g. model.members=[runs/a,runs/b].")
        return self

    # ----- members ---------------------------------------------------------------------
    @property
    def members_(self) -> list[Classifier]:
        if getattr(self, "_members", None) is None:
            self.validate()
            self._members = [self._load(Path(m)) for m in self.members]
            self._check_classes()
        return self._members

    def _load(self, path: Path) -> Classifier:
        folder = path / "model" if (path / "model" / "model.json").is_file() else path
        return type(self).load_member(folder)

    def _check_classes(self) -> None:
        multi = [m.is_multilabel for m in self._members]
        if any(multi) and not all(multi):
            kinds = ", ".join(f"{p} ({'multi-label' if k else 'one label'})"
                              for p, k in zip(self.members, multi, strict=True))
            raise ConfigError(f"Ensemble members mix multi-label and single-label models: {kinds}. "
                              "Every member must solve the same task.")
        self.multilabel = all(multi)
        first = sorted(str(c) for c in self._members[0].classes_)
        for member, path in zip(self._members, self.members, strict=True):
            if sorted(str(c) for c in member.classes_) != first:
                theirs = sorted(map(str, member.classes_))
                raise ConfigError(f"Ensemble member '{path}' has classes {theirs}, the first member {first}: "
                                  "every member must know the same classes.")
        windows = {m.image_spec.window for m in self.members_}
        if len(windows) > 1:  # a member gets the ensemble's decoded images: one window for all
            raise ConfigError(f"Ensemble members read DICOM through different windows {sorted(windows)}; "
                              "retrain them with the same model.window.")
        self.classes_ = np.asarray(first, dtype=object)

    @property
    def image_spec(self) -> ImageSpec:
        specs = [m.image_spec for m in self.members_]
        largest = max(specs, key=lambda s: s.size)
        channels = [s.channels for s in specs]
        roi = largest.roi if all(s.roi == largest.roi for s in specs) else "none"
        return replace(largest, channels=3 if 3 in channels else largest.channels, roi=roi)

    @property
    def accepted_channels(self) -> tuple[int, ...]:
        return (1, 3)  # each member gets the stack it needs (see _member_input)

    def _member_input(self, images: np.ndarray, member: Classifier) -> np.ndarray:
        mine, theirs = self.image_spec, member.image_spec
        same = (theirs.size, theirs.resize) == (mine.size, mine.resize) and theirs.roi in (mine.roi, "none")
        channels = 1 if images.ndim == 3 else images.shape[-1]
        if same and channels in member.accepted_channels:
            return images
        spec = replace(theirs, roi="none" if theirs.roi == mine.roi else theirs.roi)
        return prepare_images(list(images), spec)

    def _member_probas(self, images: np.ndarray) -> list[np.ndarray]:
        stack = self.check_input(images)
        classes = [str(c) for c in self.classes_]
        out, embedded = [], {}
        for member in self.members_:
            x = self._member_input(stack, member)
            if member.supports(EMBEDDINGS):  # probes on one backbone embed the images once
                key = member.embedding_id()
                if key not in embedded:
                    embedded[key] = member.embed(x)
                proba = member.proba_from_embeddings(embedded[key])
            else:
                proba = member.predict_proba(x)
            order = [[str(c) for c in member.classes_].index(c) for c in classes]
            out.append(np.asarray(proba, dtype=np.float64)[:, order])
        return out

    def supports(self, capability: str) -> bool:
        """An ensemble exports to ONNX when every member does, at one input size."""
        if capability == ONNX:
            return all(m.supports(ONNX) and m.image_spec.size == self.image_spec.size for m in self.members_)
        return capability in self.capabilities

    # ----- fit and predict -------------------------------------------------------------
    def fit(self, images, labels: Sequence[str], val: tuple | None = None) -> EnsembleClassifier:
        """The members are fitted already; this learns their weights on ``val`` (equal without)."""
        self.validate()
        members = self.members_
        self.check_input(images)
        if val is None or not len(val[1]):
            self.weights_ = np.full(len(members), 1 / len(members))
            info("ensemble: no validation split; every member weighs the same")
            return self
        classes = [str(c) for c in self.classes_]
        probas = self._member_probas(val[0])
        if self.is_multilabel:  # per-label probabilities averaged; weights by mean average precision
            y = indicator(val[1], classes, strict=False)
            self.weights_ = greedy_selection(probas, y, lambda p: quick_multilabel_score("map", y, p))
        else:
            y = np.asarray([classes.index(str(v)) for v in val[1]])
            self.weights_ = greedy_selection(probas, y, lambda p: float(np.mean(p.argmax(1) == y)))
        info("ensemble weights: " + ", ".join(f"{m.family} {w:.2f}" for m, w in zip(members, self.weights_,
                                                                                   strict=True)))
        return self

    def raw_proba(self, images) -> np.ndarray:
        if not hasattr(self, "weights_"):
            raise ModelError("This ensemble is not fitted yet; call fit() or load a saved one.")
        probas = self._member_probas(images)
        return sum(w * p for w, p in zip(self.weights_, probas, strict=True)).astype(np.float32)

    def network(self):
        """One network for ONNX: the members' networks averaged with the weights."""
        blocked = [f"{m.family} ({path})" for m, path in zip(self.members_, self.members, strict=True)
                   if not m.supports(ONNX) or m.image_spec.size != self.image_spec.size]
        if blocked:
            raise ModelError("This ensemble cannot be exported to ONNX: its members " + ", ".join(blocked)
                             + " have no network or another input size; serve or predict it in-process.")
        from .deep.networks import WeightedEnsemble

        classes = [str(c) for c in self.classes_]
        orders = [[[str(c) for c in m.classes_].index(c) for c in classes] for m in self.members_]
        members = self.members_
        temperatures = [m.calibration_.temperature if m.calibration_ else 1.0 for m in members]
        return WeightedEnsemble([m.network() for m in members], [m.test_time_flips() for m in members],
                                self.weights_, orders, temperatures, self.is_multilabel).eval()

    # ----- artifacts -------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"format_version": FORMAT_VERSION, "school": self.school, "family": self.family,
                "classes": [str(c) for c in self.classes_], "multilabel": self.is_multilabel,
                "image_spec": self.image_spec.to_dict(),
                "members": [{"folder": f"{MEMBERS}/{k}", "family": m.family, "source": str(path),
                             "weight": float(w)}
                            for k, (m, path, w) in enumerate(zip(self.members_, self.members, self.weights_,
                                                                 strict=True))],
                "versions": versions(), **self.tuned_json()}

    def save(self, path: str | Path) -> Path:
        meta = self.to_json()
        with atomic_dir(path) as tmp:
            for k, member in enumerate(self.members_):
                member.save(tmp / MEMBERS / str(k))
            self.save_tuned(tmp)
            write_model_json(tmp, meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> EnsembleClassifier:
        folder = Path(path)
        meta = read_model_json(folder)
        entries = meta.get("members") or []
        model = cls([str(folder / e["folder"]) for e in entries], meta.get("family", "ensemble"))
        try:
            model._members = [cls.load_member(folder / e["folder"]) for e in entries]
        except (KeyError, TypeError) as exc:
            raise ModelError(f"'{folder}': its ensemble members are not listed right ({exc!r}).") from None
        model._check_classes()
        model.weights_ = np.asarray([e["weight"] for e in entries], dtype=np.float64)
        return model
