"""Refit the winner on train + validation: the images selection held out are not thrown away.

Each member of the winning plan (one model, or an ensemble's members) is trained again with
its trial's settings on all the images that are not test, as AutoGluon's ``refit_full``
does; a model that trains in epochs gets the number of epochs its trial was selected at
(the best epoch the trainer restored) and no early stopping, since no validation images are
left to stop on. An ensemble keeps the weights chosen on validation.

The budget counts the refit: while trials run, the search holds back :func:`reserve`
seconds for it; at the end a member whose estimated refit does not fit in the time left
keeps its trial's model (trained on train only), and the summary says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import resolve_config
from ..core.log import info, warn
from ..data import merge_validation
from .ensembling import Plan
from .kept import KeptTrial, worker_dir

SAFETY = 1.15  # estimates are from one trial's timing; keep a margin
REPORT_SECONDS = 8.0  # writing the winner's run folder and the leaderboard: tables, report, plots
HEATMAP_IMAGES = 4 * 50  # the report's error heat maps: 4 images, a 7 x 7 occlusion grid and its baseline
WRAP_UP_SECONDS = 3.0  # a trial stopped at its deadline still restores its best epoch and saves
MAX_SHARE = 0.5  # of the budget, at most, held back for refits (a refit pays more than a late trial)


@dataclass
class Refit:
    """The model folder of each member (refitted, or its trial's) and what happened."""

    folders: list[Path]
    status: list[dict] = field(default_factory=list)

    @property
    def refitted(self) -> int:
        return sum(1 for s in self.status if s["refitted"])


def refit_epochs(member: KeptTrial) -> int | None:
    """Epochs to refit a model that trains in epochs: those it was selected at."""
    if member.epochs is None:
        return None
    return (member.best_epoch + 1) if member.best_epoch is not None else member.epochs


def refit_seconds(member: KeptTrial) -> float:
    """Estimated seconds to refit ``member`` on train + validation, from its trial's timings.

    A model that trains in epochs: its fit, grown by the images added and scaled to the epochs
    it is refitted for. A model on features or embeddings: those of the validation images
    were cached when the trial scored them, so only the estimator's part grows (and the
    features' too when the cache is off).
    """
    grow = (member.n_train + member.n_val) / max(1, member.n_train)
    if member.epochs:
        return SAFETY * member.fit_seconds * grow * refit_epochs(member) / member.epochs
    if member.features_seconds is not None:
        rest = max(0.0, member.fit_seconds - member.features_seconds)
        features = 0.0 if member.cached else member.features_seconds * grow
        return SAFETY * (rest * grow ** 1.5 + features) + 1.0  # kernel fits grow faster than n
    return SAFETY * member.fit_seconds * grow


def evaluation_seconds(plan: Plan, n_test: int) -> float:
    """Estimated seconds to score the test split and write the winner's run folder. A winner
    without gradients (an ensemble, a classical model) draws its report's error heat maps by
    occlusion, ``HEATMAP_IMAGES`` more predictions (measured: 44 of the 138 s an ELPV
    ensemble's evaluation took); a clip model's frame occlusion reuses its frame embeddings."""
    per_image = sum(m.predict_seconds / max(1, m.n_val) for m in plan.members)
    occluded = plan.is_ensemble or (plan.members[0].family == "classical"
                                    and plan.members[0].overrides.get("model.name") != "sequence_classical")
    return REPORT_SECONDS + per_image * (n_test + (HEATMAP_IMAGES if occluded else 0))


def reserve(plan: Plan | None, kept: list[KeptTrial], n_test: int, budget: float, refit: bool) -> float:
    """Seconds to hold back from the trials for this plan's evaluation, for the trial in flight
    when the trials' time ends (it still scores its validation images), and for the refits
    that fit within ``MAX_SHARE`` of the budget, heaviest member first: time is not held back
    for a refit that could not happen anyway."""
    if plan is None:
        return 0.0
    need = evaluation_seconds(plan, n_test) + WRAP_UP_SECONDS + max(k.predict_seconds for k in kept)
    if refit:
        cap = MAX_SHARE * budget
        for k in sorted(range(len(plan.members)), key=lambda k: -plan.weights[k]):
            cost = refit_seconds(plan.members[k])
            if need + cost <= cap:
                need += cost
    return need


def refit_plan(plan: Plan, runner, n_test: int) -> Refit:
    """Refit each member that fits in the time left (heaviest weight first)."""
    full = merge_validation(runner.ds)
    result = Refit([m.model_dir for m in plan.members])
    order = sorted(range(len(plan.members)), key=lambda k: -plan.weights[k])
    for k in order:
        member = plan.members[k]
        estimate = refit_seconds(member)
        left = runner.deadline - time.monotonic() - evaluation_seconds(plan, n_test)
        status = {"trial": member.number, "family": member.family, "estimated_s": round(estimate, 1),
                  "refitted": False}
        if estimate > left:
            status["reason"] = f"needs about {estimate:.0f} s, {max(0.0, left):.0f} s left"
            warn(f"search: trial {member.number} not refitted on train + validation ({status['reason']}); "
                 "its model trained on train alone is used")
            result.status.append(status)
            continue
        started = time.monotonic()
        folder = _refit_one(member, runner, full, started + max(estimate * 1.5, 30.0), status)
        status["seconds"] = round(time.monotonic() - started, 1)
        if folder is not None:
            result.folders[k] = folder
            status["refitted"] = True
        result.status.append(status)
    return result


def _refit_one(member: KeptTrial, runner, full, stop_at: float, status: dict) -> Path | None:
    overrides = dict(member.overrides)
    epochs = refit_epochs(member)
    if epochs is not None:
        overrides.update({"train.epochs": epochs, "train.patience": 0})
        status["epochs"] = epochs
    cfg = resolve_config(runner.base, overrides)
    info(f"search: refitting trial {member.number} ({member.family}) on train + validation"
         + (f", {epochs} epoch(s)" if epochs else ""))
    clf, _, reporter, _ = runner.fit(cfg, deadline=min(stop_at, runner.deadline), ds=full)
    if reporter is not None and reporter.stopped:
        status["reason"] = "stopped by the budget before its schedule ended"
        warn(f"search: the refit of trial {member.number} ran out of time; its trial's model is used")
        return None
    folder = worker_dir(runner.out, runner.worker) / "refit" / str(member.number)
    clf.save(folder)
    return folder
