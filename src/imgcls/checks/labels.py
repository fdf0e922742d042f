"""Likely label errors: cleanlab on out-of-fold probabilities of a quick classical model."""

from __future__ import annotations

import numpy as np

from ..data.features import FeatureSet
from ..data.tasks import indicator
from .findings import Finding


def out_of_fold_probabilities(thumbs: np.ndarray, labels: np.ndarray, seed: int = 0,
                              n_jobs: int = 1) -> tuple[np.ndarray, list[str]] | None:
    """5-fold (fewer for small classes) logistic regression on HOG/LBP/intensity features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classes, counts = np.unique(labels, return_counts=True)
    folds = min(5, int(counts.min())) if len(classes) > 1 else 0
    if folds < 2:
        return None
    X = FeatureSet("hog+lbp+hist", {"hog": {"cells": 8}, "lbp": {"grid": 2}}).transform(
        thumbs, n_jobs=n_jobs, progress=False)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(model, X, labels, cv=cv, method="predict_proba", n_jobs=1)
    return proba, [str(c) for c in classes]


def label_issue_findings(paths: list[str], labels: np.ndarray, proba: np.ndarray,
                         classes: list[str]) -> list[Finding]:
    """Rows cleanlab ranks as likely mislabelled, worst first."""
    from cleanlab.filter import find_label_issues

    index = {c: k for k, c in enumerate(classes)}
    given = np.array([index[str(v)] for v in labels])
    ranked = find_label_issues(given, proba, return_indices_ranked_by="self_confidence")
    out = []
    for i in ranked:
        suggested = classes[int(np.argmax(proba[i]))]
        out.append(Finding(paths[i], "label_issue", "warning",
                           f"labelled '{labels[i]}', a cross-validated model says '{suggested}' "
                           f"(p(given) = {proba[i, given[i]]:.2f})",
                           "Look at the image; fix the label in your manifest if it is wrong."))
    return out


def multilabel_out_of_fold(thumbs: np.ndarray, labels: np.ndarray, names: list[str], seed: int = 0,
                           n_jobs: int = 1) -> np.ndarray | None:
    """Multi-label: each label's out-of-fold probability from one logistic regression per label
    on the same features, over iteratively stratified folds; None when a label is too rare."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    Y = indicator(labels, names)
    smallest = int(min(Y.sum(axis=0).min(), (1 - Y).sum(axis=0).min()))
    folds = min(5, smallest)
    if folds < 2:
        return None
    X = FeatureSet("hog+lbp+hist", {"hog": {"cells": 8}, "lbp": {"grid": 2}}).transform(
        thumbs, n_jobs=n_jobs, progress=False)
    model = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(C=0.1, max_iter=2000)))
    cv = MultilabelStratifiedKFold(folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, X, Y, cv=cv, method="predict_proba", n_jobs=1)


def multilabel_issue_findings(paths: list[str], labels: np.ndarray, proba: np.ndarray,
                              names: list[str]) -> list[Finding]:
    """Images cleanlab's multi-label filter ranks as likely missing a label or carrying a wrong
    one, worst first, with the labels the cross-validated model disagrees on."""
    from cleanlab.multilabel_classification.filter import find_label_issues

    Y = indicator(labels, names).astype(bool)
    given = [list(np.flatnonzero(row)) for row in Y]
    ranked = find_label_issues(given, proba, return_indices_ranked_by="self_confidence")
    out = []
    for i in ranked:
        missing = [n for k, n in enumerate(names) if not Y[i, k] and proba[i, k] >= 0.5]
        extra = [n for k, n in enumerate(names) if Y[i, k] and proba[i, k] < 0.5]
        said = "; ".join(([f"may lack {missing}"] if missing else [])
                         + ([f"may not be {extra}"] if extra else []))
        out.append(Finding(paths[i], "label_issue", "warning",
                           f"labelled '{labels[i] or '(none)'}'; a cross-validated model says it "
                           f"{said or 'is unlike the rest'}",
                           "Look at the image; fix its labels in your manifest if they are wrong."))
    return out
