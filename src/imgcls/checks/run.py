"""`imgcls check`: every problem in an image dataset, found before it costs a training run.

Example:
    >>> report = check("photos/", out="checks/photos")                 # doctest: +SKIP
    >>> report.summary["severity_counts"], report.exit_code("error")   # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import CheckConfig, SplitConfig, cache_root, resolve_config, resolve_n_jobs
from ..core.errors import ConfigError, DataError
from ..core.log import info
from ..data import Dataset, assign_splits, load_dataset, load_images
from ..data.video import clip_span
from ..runs import Run
from . import report as pages
from .duplicates import ContentMatch, exact_groups, near_groups
from .findings import SEVERITIES, Finding, at_least
from .inspect import inspect_dataset
from .labels import (
    label_issue_findings,
    multilabel_issue_findings,
    multilabel_out_of_fold,
    out_of_fold_probabilities,
)
from .medical import dicom_findings
from .regions import mask_findings, roi_summary
from .rules import (
    class_findings,
    duplicate_findings,
    file_findings,
    group_columns,
    group_findings,
    multilabel_findings,
    outlier_findings,
    vote_findings,
)


@dataclass
class CheckReport:
    summary: dict
    issues: list[Finding]
    out: Path | None = None
    groups: list[list[int]] = field(default_factory=list)

    def exit_code(self, fail_on: str | None) -> int:
        """1 when any finding is at least as severe as ``fail_on`` (error or warning)."""
        if fail_on is None:
            return 0
        if fail_on not in ("error", "warning"):
            raise ConfigError(f"The 'fail_on' parameter must be error or warning. Got {fail_on!r}.")
        return int(any(at_least(f.severity, fail_on) for f in self.issues))

    def by_check(self, check: str) -> list[Finding]:
        return [f for f in self.issues if f.check == check]


def check(data: str | Path | Dataset, *, out: str | Path | None = None,
          overrides: Sequence[str] | Mapping[str, Any] = (), write_manifest: str | Path | None = None,
          run: str | Path | None = None, n_jobs: int = 0, progress: bool = True) -> CheckReport:
    """Inspect every image, then report file, duplicate, quality, class and label problems.

    Args:
        data: Folder, manifest, built-in name or Dataset. Never modified.
        out: Where check.json and check.html go; default ``checks/<dataset>``; None
            with a Dataset writes nothing.
        overrides: ``check.*`` and ``data.*`` keys, e.g. ``check.near_threshold=6``.
        write_manifest: Also write a clean CSV manifest here.
        run: A trained run (or model folder) whose probabilities feed the label-issue pass
            instead of a quick cross-validated model (in-sample for its own training rows).
    """
    cfg = resolve_config(overrides=overrides)
    ccfg, jobs = cfg.check, resolve_n_jobs(n_jobs)
    given_dataset = isinstance(data, Dataset)
    ds = data if given_dataset else load_dataset(cfg.data.model_copy(update={"source": str(data)}), cfg.task)
    ds = _with_splits(ds, ccfg)
    started = time.perf_counter()
    records, thumbs = inspect_dataset(ds, jobs, cache_root(cfg), progress)
    inspected = time.perf_counter()
    needed = clip_span(cfg.data.frames, cfg.data.frame_stride)
    issues, groups, facts = _dataset_findings(ds, records, thumbs, ccfg, needed)
    issues += mask_findings(ds, records)
    analysed = time.perf_counter()
    if ccfg.labels:
        issues += (_run_label_findings(ds, run, jobs, cache_root(cfg)) if run
                   else _label_findings(ds, records, thumbs, jobs))
    timings = {"inspect_seconds": inspected - started, "analysis_seconds": analysed - inspected,
               "label_seconds": time.perf_counter() - analysed}
    summary = _summary(ds, records, issues, facts, timings)
    if (region := roi_summary(ds, ccfg.roi)) is not None:
        summary["roi"] = region
    result = CheckReport(summary, issues, None, groups)
    if out is not None or not given_dataset:
        result.out = Path(out) if out else Path("checks") / ds.name
        _write_outputs(result, ds, thumbs)
    if write_manifest is not None:
        _write_clean_manifest(Path(write_manifest), ds, result, records, ccfg.keep)
    return result


def _with_splits(ds: Dataset, ccfg: CheckConfig) -> Dataset:
    """The split training would use, so duplicates across it can be reported as leakage."""
    try:
        return assign_splits(ds, SplitConfig(test=ccfg.test_fraction))
    except DataError:
        return ds  # too few images to split: reported by the class rules


def _dataset_findings(ds: Dataset, records: list[dict], thumbs: np.ndarray, ccfg: CheckConfig,
                      frames: int = 8):
    issues = file_findings(records, ccfg.min_side, ccfg.max_aspect, frames)
    issues += outlier_findings(records, ccfg.outlier_z)
    exact = exact_groups([r.get("sha1") if "error" not in r else None for r in records])
    colours = [r.get("mean_rgb") for r in records]
    near = near_groups([r.get("phash") for r in records], ccfg.near_threshold, exact,
                       ContentMatch(thumbs, colours, ccfg.near_similarity))
    issues += duplicate_findings(ds.table, exact, "exact")
    issues += duplicate_findings(ds.table, near, "near")
    class_summary, class_issues = (multilabel_findings if ds.multilabel else class_findings)(
        ds.table, ccfg.test_fraction, ccfg.imbalance_ratio)
    group_summary, group_issues = group_findings(ds.table, group_columns(ds.table, ds.metadata_columns))
    group_issues += vote_findings(ds.table, ds.multilabel)
    dicom_summary, dicom_issues = dicom_findings(ds.table)
    group_issues += dicom_issues
    facts = {"classes": class_summary, "groups": group_summary, **({"dicom": dicom_summary} if dicom_summary
                                                                      else {}),
             "duplicates": {"exact_groups": len(exact), "near_groups": len(near),
                            "images_in_exact_groups": sum(map(len, exact)),
                            "images_in_near_groups": sum(map(len, near))}}
    return issues + class_issues + group_issues, exact + near, facts


def _label_findings(ds: Dataset, records: list[dict], thumbs: np.ndarray, jobs: int) -> list[Finding]:
    rows = np.array([i for i, r in enumerate(records) if "error" not in r], dtype=int)
    labels = ds.labels[rows].astype(str)
    if ds.multilabel:
        names = ds.classes
        proba = multilabel_out_of_fold(thumbs[rows], labels, names, n_jobs=jobs) if len(rows) else None
        if proba is None:
            info("label-issue pass skipped: a label is on (or missing from) fewer than 2 decodable images")
            return []
        return multilabel_issue_findings([ds.paths[i] for i in rows], labels, proba, names)
    oof = out_of_fold_probabilities(thumbs[rows], labels, n_jobs=jobs) if len(rows) else None
    if oof is None:
        info("label-issue pass skipped: a class has fewer than 2 decodable images")
        return []
    proba, classes = oof
    return label_issue_findings([ds.paths[i] for i in rows], labels, proba, classes)


def _run_label_findings(ds: Dataset, run: str | Path, jobs: int, cache) -> list[Finding]:
    model = Run.open(run).model
    loaded = load_images(ds, model.image_spec, jobs, cache, progress=False)
    classes = [str(c) for c in model.classes_]
    labels = ds.labels[loaded.rows].astype(str)
    known = np.isin(labels, classes)
    if not known.any():
        raise DataError(f"None of the labels of '{ds.name}' are classes of the model in '{run}'.")
    proba = model.predict_proba(loaded.images[known])
    paths = [ds.paths[i] for i in loaded.rows[known]]
    return label_issue_findings(paths, labels[known], proba, classes)


def _summary(ds: Dataset, records, issues, facts, timings) -> dict:
    summary = pages.summary_facts(ds, records)
    summary.update(facts)
    summary["severity_counts"] = {s: sum(f.severity == s for f in issues) for s in SEVERITIES}
    summary["check_counts"] = dict(Counter(f.check for f in issues))
    summary["leakage_images"] = len({f.path for f in issues if f.check == "leakage"})
    summary["timings"] = {k: round(v, 3) for k, v in timings.items()}
    return summary


def _write_outputs(result: CheckReport, ds: Dataset, thumbs: np.ndarray) -> None:
    result.out.mkdir(parents=True, exist_ok=True)
    pages.write_json(result.out / "check.json", result.summary, result.issues)
    pages.write_html(result.out / "check.html", result.summary, result.issues, ds, thumbs)


def _write_clean_manifest(path: Path, ds: Dataset, result: CheckReport, records, keep: str) -> None:
    if ds.arrays is not None:
        raise DataError(f"'{ds.name}' is a built-in in-memory dataset; a manifest needs files.")
    rows = pages.clean_rows(ds, result.issues, result.groups, records, keep)
    pages.write_manifest(path, ds, rows)
    info(f"clean manifest: {len(rows)} of {len(ds)} images -> {path}")
    result.summary["clean_manifest"] = {"path": str(path), "rows": int(len(rows))}
