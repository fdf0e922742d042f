"""elpv4: does calibrating before tuning the ordered-grade cut points change the test figures?

`imgcls train elpv4` holds 20 % of train out to tune its cuts for kappa (decision.target=auto),
so it now also fits a temperature there. Here one fitted model per family has its cuts tuned
on the validation probabilities as they are and after the temperature, scored on the same
test cells.

    python benchmarks/elpv4_calibration.py svm tf_efficientnet_lite0
"""
import sys
import tempfile

import numpy as np

import imgcls
from imgcls.data import load_images
from imgcls.evaluation.metrics import compute_metrics
from imgcls.models.calibration import fit_temperature
from imgcls.models.decision import tune_decision
from imgcls.training import resolve_task

for model in sys.argv[1:]:
    with tempfile.TemporaryDirectory() as tmp:
        run = imgcls.train("elpv4", model=model, out=f"{tmp}/r", progress=False,
                           overrides=["cache=false", "decision.calibration=none", "decision.unknown=none"])
        clf, ds = run.model, run.dataset()
        cfg, ds = resolve_task(run.config, ds)
        loaded = load_images(ds, clf.image_spec.with_channels(None), 2, None, False)
        val, test = loaded.split_rows(ds, "val"), loaded.split_rows(ds, "test")
        classes = [str(c) for c in clf.classes_]
        order = tuple(cfg.task.order)
        pv, pt = clf.raw_proba(loaded.images[val]), clf.raw_proba(loaded.images[test])
        yv, yt = ds.labels[loaded.rows[val]], ds.labels[loaded.rows[test]]
        cal = fit_temperature(np.array([classes.index(v) for v in yv]), pv)
        for name, (a, b) in {"raw": (pv, pt), "calibrated": (cal.apply(pv), cal.apply(pt))}.items():
            rule = tune_decision("kappa", yv, a, classes, order)
            m = compute_metrics(yt, b, classes, y_pred=rule.labels(b, classes), order=order, n_boot=200)
            print(model, name, f"T={cal.temperature:.3f}", f"val n={len(val)}", f"acc {m['accuracy']:.4f}",
                  f"kappa {m['ordinal']['qwk']:.4f}", f"macro-F1 {m['macro']['f1']:.4f}", flush=True)
