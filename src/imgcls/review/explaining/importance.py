"""Which feature groups a classical model relies on: permutation importance per extractor.

Shuffling one group's columns together (all HOG columns, all LBP columns...) across the
evaluated images breaks what that group tells the model while keeping its distribution;
the drop in accuracy is the group's importance. Columns of one extractor are strongly
correlated, so shuffling them one by one (scikit-learn's ``permutation_importance``) would
understate every group.
"""

from __future__ import annotations

import numpy as np


def group_importance(clf, images: np.ndarray, labels: np.ndarray, n_repeats: int = 5, seed: int = 0
                     ) -> list[dict]:
    """Mean and standard deviation of the accuracy drop for each feature group, largest first.

    Args:
        clf: A fitted model with the FEATURE_GROUPS capability.
        images: Prepared images to score (the validation split, or the test split without one).
        labels: Their true labels.
    """
    features = clf.feature_matrix(images)
    groups = clf.feature_groups()
    labels = np.asarray(labels, dtype=object).astype(str)
    base = _accuracy(clf, features, labels)
    rng = np.random.default_rng(seed)
    rows = []
    for name, columns in groups.items():
        drops = []
        for _ in range(n_repeats):
            shuffled = features.copy()
            shuffled[:, columns] = features[rng.permutation(len(features))][:, columns]
            drops.append(base - _accuracy(clf, shuffled, labels))
        rows.append({"group": name, "columns": columns.stop - columns.start,
                     "importance": float(np.mean(drops)), "std": float(np.std(drops))})
    rows.sort(key=lambda r: -r["importance"])
    return [{**r, "baseline_accuracy": base} for r in rows]


def _accuracy(clf, features: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(clf.predict_features(features) == labels))
