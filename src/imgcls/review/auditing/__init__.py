"""`imgcls audit`: does the model work equally well for every group of a metadata column?

The audit measures a run's predictions per group (``type``: mono / poly, a site, a camera),
with fairlearn's MetricFrame and 95 % bootstrap intervals, compares the groups' training and
evaluation shares, and gates on the largest gap of one metric. It writes ``audit.json`` and
``audit.html`` into its folder and never touches the user's files.

Modules: ``sources`` (rows and representation), ``metrics`` (names, estimates, intervals),
``findings`` (sentences), ``report`` (JSON and HTML).

Example:
    >>> result = audit("runs/elpv-svm", group_by="type")    # doctest: +SKIP
    >>> result.passed, round(result.gap, 3)                  # doctest: +SKIP
    (False, 0.051)
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from ...config import AuditConfig
from ...core.errors import ConfigError
from ...core.log import info
from ...core.registry import did_you_mean
from ...runs import Run
from .findings import findings
from .metrics import bootstrap_intervals, check_metric, confusion_by_group, point_estimates, summarise
from .report import write_audit
from .sources import binary_classes, load_rows, one_label, representation, training_rows

__all__ = ["AuditResult", "audit"]


@dataclass
class AuditResult:
    """What an audit found; ``report`` is the content of audit.json."""

    path: Path
    metric: str
    gap: float | None
    max_gap: float
    passed: bool
    report: dict

    @property
    def html(self) -> Path:
        return self.path / "audit.html"


def audit(run, data=None, *, group_by: str, metric: str = "accuracy", max_gap: float = 0.05,
          split: str | None = None, out=None, min_group_size: int = 30, n_boot: int = 1000,
          seed: int = 0, progress: bool = True, label: str | None = None) -> AuditResult:
    """Compare a run's performance between the groups of a metadata column, and gate on it.

    Args:
        run: Run folder written by ``imgcls train``.
        data: Other data to audit (folder, CSV/Parquet manifest, built-in name); default the
            run's own data, read from its predictions.csv when that holds the column.
        group_by: Metadata column whose values are the groups; missing values form the group
            ``(missing)``.
        metric: Gate metric: accuracy, balanced_accuracy, precision, recall, f1 (macro), or per
            class recall:LABEL, fpr:LABEL, fnr:LABEL, selection_rate:LABEL.
        max_gap: Largest allowed difference of ``metric`` between any two groups.
        split: Rows to audit: ``test`` (default for the run's data), ``all`` (default for other
            data), ``train`` or ``val``.
        out: Folder for audit.json and audit.html; default ``RUN/audit-<group_by>``, or
            ``RUN/audit-<data name>-<group_by>`` for other data.
        min_group_size: Groups with fewer evaluation images (and group x class cells with fewer
            than a third of it) are flagged small; never dropped.
        n_boot: Bootstrap resamples for the 95 % intervals; 0 for none.
        seed: Seed of the bootstrap.
        progress: Show progress bars while images are decoded.
        label: A multi-label run is audited one label at a time: that label against its
            absence (classes ``LABEL`` and ``not LABEL``; e.g. ``metric="recall:LABEL"``).

    Returns:
        The AuditResult; ``passed`` is ``gap <= max_gap`` (False when the metric is defined
        for fewer than two groups).

    Raises:
        ConfigError: A bad option, an unknown metric or class label.
        DataError: The column is not a metadata column, or it has fewer than 2 groups.

    Example:
        >>> result = audit("runs/elpv-svm", group_by="type", metric="recall:defective")  # doctest: +SKIP
        >>> result.passed, result.html                                                  # doctest: +SKIP
        (True, PosixPath('runs/elpv-svm/audit-type/audit.html'))
    """
    cfg = AuditConfig.from_options(group_by=group_by, metric=metric, max_gap=max_gap,
                                   min_group_size=min_group_size, n_boot=n_boot, seed=seed)
    opened = Run.open(run)
    names = [str(c) for c in opened.model_json()["classes"]]
    classes = _audited_classes(opened, names, label)
    check_metric(cfg.metric, classes)
    rows = load_rows(opened, data, split, cfg.group_by, names, progress, label)
    report = build_report(opened, data, rows, classes, cfg, label)
    out_dir = Path(out) if out else _default_out(opened.path, data, rows.dataset, cfg.group_by, label)
    html = write_audit(out_dir, report)
    if out_dir.parent.resolve() == opened.path.resolve() and opened.metrics:
        opened.write_model_card()  # the card lists the run's audits
    gate = report["gate"]
    gap = "undefined" if gate["gap"] is None else f"{gate['gap']:.3f}"
    info(f"audit {'PASS' if gate['passed'] else 'FAIL'}: {cfg.metric} gap {gap} between groups of "
         f"'{cfg.group_by}' (allowed {cfg.max_gap:g}); report: {html}")
    return AuditResult(out_dir, cfg.metric, gate["gap"], cfg.max_gap, gate["passed"], report)


def _audited_classes(opened, names: list[str], label: str | None) -> list[str]:
    """The run's classes, or for a multi-label run the chosen label and its absence."""
    if not opened.model_json().get("multilabel"):
        if label is not None:
            raise ConfigError(f"The 'label' parameter is for multi-label runs; '{opened.path}' has one class "
                              "per image (audit a class with metric=recall:LABEL).")
        return names
    if label is None or label not in names:
        given = "" if label is None else f" '{label}' is not one of them.{did_you_mean(label, names)}"
        raise ConfigError(f"'{opened.path}' is a multi-label run: audit one label at a time with label=LABEL "
                          f"(CLI --label); its labels are {', '.join(names)}.{given}")
    return binary_classes(label)


def _default_out(run_dir: Path, data, dataset: str, group_by: str, label: str | None = None) -> Path:
    def safe(name: str) -> str:
        return re.sub(r"[^\w.-]+", "_", name).strip("._") or "data"

    parts = [safe(group_by)] if data is None else [safe(dataset), safe(group_by)]
    if label is not None:
        parts.append(safe(label))
    return run_dir / "-".join(["audit", *parts])


def measure(rows, classes: list[str], cfg: AuditConfig) -> dict[str, dict]:
    """Every metric overall and by group, with gaps, ratios and their 95 % intervals."""
    names = rows.group_names
    frame = point_estimates(rows.y_true, rows.y_pred, rows.groups, classes)
    intervals = None
    if cfg.n_boot:
        counts = confusion_by_group(rows.y_true, rows.y_pred, rows.groups, names, classes)
        intervals = bootstrap_intervals(counts, classes, cfg.n_boot, cfg.seed)
    return summarise(frame, intervals, names)


def build_report(opened, data, rows, classes: list[str], cfg: AuditConfig, label: str | None = None) -> dict:
    """Everything audit.json holds."""
    metrics = measure(rows, classes, cfg)
    training, note = training_rows(opened, cfg.group_by)
    if training is not None and label is not None:
        training = training.assign(label=one_label(training["label"].to_numpy(object), label))
    represented = representation(rows, training, note, classes, cfg.min_group_size)
    chosen = metrics[cfg.metric]
    passed = chosen["difference"] is not None and chosen["difference"] <= cfg.max_gap
    gate = {"metric": cfg.metric, "max_gap": cfg.max_gap, "gap": chosen["difference"],
            "gap_ci": chosen["difference_ci"], "ratio": chosen["ratio"], "ratio_ci": chosen["ratio_ci"],
            "min_group": chosen["min_group"], "max_group": chosen["max_group"], "passed": passed}
    return {
        "run": str(opened.path), "data": None if data is None else str(data),
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "config": {**cfg.model_dump(), "split": rows.split},
        "evaluated": {"dataset": rows.dataset, "split": rows.split, "source": rows.source,
                      "n": len(rows.groups)},
        "classes": classes, "label": label, "groups": rows.group_names, "gate": gate, "passed": passed,
        "overall": {name: m["overall"] for name, m in metrics.items()},
        "metrics": metrics, "representation": represented,
        "findings": findings(metrics, cfg.metric, cfg.max_gap, classes, represented),
    }
