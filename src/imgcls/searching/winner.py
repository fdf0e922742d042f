"""The search's winner as a normal run folder: the only model that sees the test split."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..config import resolve_config
from ..core.log import info
from ..evaluation.scoring import evaluate_splits, split_predictions
from ..models import load_model
from ..runs import MODEL_DIR, Run
from ..training import describe_model, save_run

BEST = "best"


def write_best(study, best, runner, ds, base, out: Path):
    """Write ``out/best`` for the study's best trial; returns the Run.

    The model a worker kept for that trial is reused when it is on this filesystem (any
    worker's); otherwise the trial's configuration is trained again, with its seed.
    """
    started = time.perf_counter()
    cfg = resolve_config(base, best.user_attrs.get("overrides", {}))
    kept = _kept_model(out, best.number)
    if kept is not None:
        clf = load_model(kept)
        loaded = runner.images(clf.image_spec.with_channels(None))
    else:
        info(f"search: the model of trial {best.number} is not on this machine; training it again")
        clf, loaded, _ = runner.fit(cfg)
    cfg = resolve_config(cfg, {"out": str(out / BEST)})
    metrics = evaluate_splits(clf, ds, loaded)  # val and, once, test
    predictions = split_predictions(metrics, ds, loaded, clf.classes_)
    metrics.update(timings={"total_seconds": round(time.perf_counter() - started, 3)},
                   dataset=ds.summary(), model=describe_model(clf), checks=[],
                   search={"study": study.study_name, "trial": best.number, "val_score": best.value})
    run = Run(out / BEST, cfg, metrics, out / BEST / MODEL_DIR)
    save_run(run, clf, metrics, predictions, ds, loaded)
    return run


def _kept_model(out: Path, number: int) -> Path | None:
    for record in sorted((out / "workers").glob("*/best.json")):
        try:
            if json.loads(record.read_text()).get("trial") == number:
                return record.parent / "model"
        except (OSError, ValueError):
            continue
    return None
