"""How should a search combine its trials? Greedy selection against stacking, on the test split.

Reads a finished search folder (its kept trials: models trained on the train split, and
their validation probabilities), predicts the test split with every kept model, and
compares, all in this process:

- the best single trial by validation score (what the search would pick without ensembles);
- greedy forward selection with replacement on validation (what `imgcls search` does);
- the plain average of every kept trial;
- stacking: a logistic regression on the members' validation probabilities (its C chosen
  by 5-fold cross-validation on the validation images), applied to their test probabilities.

The refit is left out here (every model is the trial's own), so the rows compare the
combining rules alone. Test figures with 95 % bootstrap intervals.

    python benchmarks/search_ensembles.py runs/search-elpv [--metric accuracy]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("search", type=Path)
    parser.add_argument("--metric", default=None, help="default: the search's own")
    args = parser.parse_args()

    import imgcls
    from imgcls.config import cache_root, resolve_config
    from imgcls.data import load_dataset, load_images
    from imgcls.evaluation.metrics import compute_metrics
    from imgcls.models.ensemble import greedy_selection
    from imgcls.searching import _with_validation
    from imgcls.searching.kept import kept_trials
    from imgcls.searching.trials import scorer
    from imgcls.training import grades_of, resolve_task

    summary = json.loads((args.search / "search.json").read_text())
    metric = args.metric or summary["metric"]
    cfg = resolve_config(args.search / "best" / "config.yaml")
    ds = _with_validation(load_dataset(cfg.data), cfg)
    cfg, ds = resolve_task(cfg, ds)
    order = grades_of(cfg)
    kept = kept_trials(args.search, summary["study"])
    classes = list(kept[0].classes)
    score = scorer(metric, classes, order)

    val_rows = kept[0].val()[0]
    for k in kept[1:]:
        val_rows = np.intersect1d(val_rows, k.val()[0])
    val_labels = ds.labels[val_rows]
    vals, tests, test_rows = [], [], None
    for k in kept:
        rows, proba = k.val()
        where = {int(r): i for i, r in enumerate(rows)}
        vals.append(proba[[where[int(r)] for r in val_rows]].astype(np.float64))
        model = imgcls.load_model(k.model_dir)
        loaded = load_images(ds, model.image_spec.with_channels(None), 2, cache_root(cfg), False)
        test = loaded.split_rows(ds, "test")
        rows = loaded.rows[test]
        test_rows = rows if test_rows is None else test_rows
        assert np.array_equal(rows, test_rows), "members decoded different test images"
        tests.append(np.asarray(model.predict_proba(loaded.images[test]), dtype=np.float64))
        print(f"trial {k.number} ({k.family}): validation {k.score:.4f}", flush=True)
    test_labels = ds.labels[test_rows]
    y_val = np.array([classes.index(str(v)) for v in val_labels])

    def report(name: str, proba: np.ndarray, note: str = "") -> dict:
        m = compute_metrics(test_labels, proba, classes, order=order)
        lo, hi = m["intervals"]["accuracy"]
        kappa = f"  kappa {m['ordinal']['qwk']:.3f}" if "ordinal" in m else ""
        print(f"{name:34s} test accuracy {m['accuracy']:.4f} ({lo:.3f}-{hi:.3f})  macro-F1 "
              f"{m['macro']['f1']:.3f}{kappa}  {note}")
        return {"accuracy": m["accuracy"], "accuracy_ci": [lo, hi], "macro_f1": m["macro"]["f1"]}

    results = {}
    singles = [score(val_labels, v) for v in vals]
    best = int(np.argmax(singles))
    results["best single"] = report("best single trial (by validation)", tests[best],
                                    f"trial {kept[best].number}, val {singles[best]:.4f}")
    weights = greedy_selection(vals, y_val, lambda p: score(val_labels, p))
    greedy_val = score(val_labels, sum(w * v for w, v in zip(weights, vals, strict=True)))
    results["greedy"] = report("greedy selection (imgcls search)", sum(w * t for w, t in zip(weights, tests,
                                                                                            strict=True)),
                               f"val {greedy_val:.4f}, weights " + ", ".join(
                                   f"{k.number}:{w:.2f}" for k, w in zip(kept, weights, strict=True) if w))
    results["average"] = report("plain average of all kept", np.mean(tests, axis=0))
    results["stacking"] = report("stacking (logistic regression)", stack(vals, y_val, tests, len(classes)))
    print(json.dumps(results, indent=1))


def stack(vals: list[np.ndarray], y: np.ndarray, tests: list[np.ndarray], n_classes: int) -> np.ndarray:
    """A logistic regression on the members' log-probabilities, C by 5-fold CV on validation."""
    import warnings

    from sklearn.linear_model import LogisticRegressionCV

    warnings.filterwarnings("ignore", category=FutureWarning)  # scikit-learn's changing defaults

    def features(probas):
        return np.hstack([np.log(np.clip(p, 1e-6, 1)) for p in probas])

    model = LogisticRegressionCV(Cs=10, cv=5, max_iter=5000).fit(features(vals), y)
    proba = model.predict_proba(features(tests))
    full = np.zeros((len(proba), n_classes))
    full[:, model.classes_] = proba
    return full


if __name__ == "__main__":
    main()
