"""The search's winner as a normal run folder: the only model that sees the test split.

The winner is the plan :mod:`.ensembling` chose (one trial's model, or an ensemble of
several), with each member refitted on train + validation where :mod:`.refit` managed it.
The calibration (a temperature, ``decision.calibration``) and a decision target
(``decision.target``) are tuned on the validation probabilities of the plan as it was
selected, trained without those images; the refitted model keeps both. A multi-label
winner gets per-label thresholds instead (``decision.target``: each label's best F1 by
default) and no temperature. The winner has no
unknown detector: its threshold would need images that no member trained on, and the
refit trains on them; ``imgcls train`` with the winner's settings gives one.
When any member was refitted, the validation images were training images for it, so the
run reports the test split alone.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..config import resolve_config
from ..core.log import info
from ..data import merge_validation
from ..data.tasks import indicator
from ..evaluation.scoring import evaluate_splits, split_predictions
from ..models import load_model
from ..models.calibration import fit_temperature
from ..models.decision import tune_decision, tune_multilabel
from ..models.ensemble import EnsembleClassifier
from ..runs import MODEL_DIR, Run
from ..training import describe_model, save_run
from .ensembling import Plan
from .refit import Refit, refit_epochs

BEST = "best"


def write_best(study, plan: Plan, refit: Refit, runner, base, out: Path, target: str) -> Run:
    """Write ``out/best`` for ``plan`` (members from ``refit.folders``); returns the Run."""
    started = time.perf_counter()
    cfg, clf = _model(plan, refit, base)
    order = runner.order
    names = [str(c) for c in clf.classes_]
    proba = plan.proba[:, [plan.classes.index(c) for c in names]]
    if base.decision.calibration != "none" and not clf.is_multilabel:
        y = np.asarray([names.index(str(v)) for v in plan.labels])
        clf.calibration_ = fit_temperature(y, proba)
        proba = clf.calibrate(proba)
        info(f"calibration: {clf.calibration_.describe()} (fitted on the {len(plan.labels)} validation "
             "images, before the refit)")
    if clf.is_multilabel or target != "argmax":
        clf.decision_ = (tune_multilabel(target, indicator(plan.labels, names, strict=False), proba, names)
                         if clf.is_multilabel else tune_decision(target, plan.labels, proba, names, order))
        info(f"decision.target={clf.decision_.target} -> {clf.decision_.describe()} (tuned on the "
             f"{len(plan.labels)} validation images, before the refit)")
    ds = merge_validation(runner.ds) if refit.refitted else runner.ds
    loaded = runner.images(clf.image_spec.with_channels(None))
    cfg = resolve_config(cfg, {"out": str(out / BEST)})
    metrics = evaluate_splits(clf, ds, loaded, order)  # test once (and val when nothing was refitted)
    predictions = split_predictions(metrics, ds, loaded, clf.classes_)
    metrics.update(timings={"total_seconds": round(time.perf_counter() - started, 3)},
                   dataset=ds.summary(), model=describe_model(clf), checks=[],
                   search=search_record(study, plan, refit))
    metrics.update({k: v for k, v in clf.tuned_json().items() if v is not None})  # decision, calibration...
    run = Run(out / BEST, cfg, metrics, out / BEST / MODEL_DIR)
    save_run(run, clf, metrics, predictions, ds, loaded)
    return run


def search_record(study, plan: Plan, refit: Refit) -> dict:
    """What the run's metrics say about how the search chose it."""
    members = []
    for member, weight, status in zip(plan.members, plan.weights, _by_member(plan, refit), strict=True):
        members.append({"trial": member.number, "family": member.family, "weight": round(float(weight), 4),
                        "val_score": member.score, "settings": member.overrides, **status})
    return {"study": study.study_name, "winner": "ensemble" if plan.is_ensemble else "single",
            "val_score": plan.val_score, "best_single_val_score": plan.single_best,
            "val_images": len(plan.labels), "members": members,
            "refitted": f"{refit.refitted} of {len(plan.members)}"}


def _by_member(plan: Plan, refit: Refit) -> list[dict]:
    found = {s["trial"]: {k: v for k, v in s.items() if k not in ("trial", "family")} for s in refit.status}
    return [found.get(m.number, {"refitted": False}) for m in plan.members]


def _model(plan: Plan, refit: Refit, base):
    if not plan.is_ensemble:
        member = plan.members[0]
        overrides = dict(member.overrides)
        if refit.refitted and refit_epochs(member) is not None:
            overrides.update({"train.epochs": refit_epochs(member), "train.patience": 0})
        return resolve_config(base, overrides), load_model(refit.folders[0])
    folders = [str(f) for f in refit.folders]
    clf = EnsembleClassifier(folders)
    clf.members_  # noqa: B018 - loads the members, learns the classes
    clf.weights_ = plan.weights.astype(float)
    cfg = resolve_config(base, {"model.name": "ensemble", "model.members": folders})
    return cfg, clf
