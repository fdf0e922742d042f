"""A run's model_card.md, in the layout of Hugging Face model cards: a YAML header (library,
tags, dataset, results) and the sections a reader of a model needs before using it."""

from __future__ import annotations

import datetime as dt

import yaml

from ..core.version import __version__


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _ci(interval) -> str:
    return f" (95 % CI {100 * interval[0]:.1f}-{100 * interval[1]:.1f})" if interval else ""


def _header(name: str, metrics: dict) -> str:
    model, dataset, test = metrics.get("model", {}), metrics.get("dataset", {}), metrics.get("test")
    head = {"library_name": "imgcls", "pipeline_tag": "image-classification",
            "tags": ["image-classification", "imgcls", model.get("school", "custom"),
                     model.get("family", "")],
            "datasets": [dataset.get("name", "")]}
    if test:
        head["model-index"] = [{"name": name, "results": [{
            "task": {"type": "image-classification"},
            "dataset": {"name": dataset.get("name", ""), "type": dataset.get("name", ""), "split": "test"},
            "metrics": [{"type": "accuracy", "value": round(test["accuracy"], 4)},
                        {"type": "f1", "name": "macro-F1", "value": round(test["macro"]["f1"], 4)}]}]}]
    return "---\n" + yaml.safe_dump(head, sort_keys=False) + "---\n"


def _details(metrics: dict) -> list[str]:
    model = metrics.get("model", {})
    spec = model.get("image_spec", {})
    lines = ["## Model details", "",
             f"- Family: `{model.get('family', '?')}` ({model.get('school', '?')} school"
             + (f", {model['mode']}" if model.get("mode") else "") + ")"]
    if model.get("features"):
        lines.append(f"- Features: `{model['features']}`")
    if model.get("pretrained"):
        lines.append(f"- Starting weights: {model['pretrained']}")
    choice = metrics.get("model_choice")
    if choice:
        lines.append(f"- Chosen by `model.name=auto` because {choice['reason']}")
    lines += [f"- Input: {spec.get('size', '?')} x {spec.get('size', '?')} px, resize rule "
              f"`{spec.get('resize', '?')}`, region of interest `{spec.get('roi', 'none')}`",
              f"- Classes: {', '.join(f'`{c}`' for c in model.get('classes', []))}",
              f"- Made by imgcls {__version__} on {dt.date.today().isoformat()}", ""]
    return lines


def _data(metrics: dict, n_skipped: int) -> list[str]:
    dataset = metrics.get("dataset", {})
    classes = dataset.get("classes", {})
    splits = dataset.get("splits", {})
    lines = ["## Training data", "",
             f"- Dataset: `{dataset.get('name', '?')}`, {dataset.get('images', '?')} images",
             "- Images per class: " + ", ".join(f"{c} {n}" for c, n in classes.items())]
    if splits:
        lines.append("- Splits: " + ", ".join(f"{s} {n}" for s, n in splits.items() if n))
    if dataset.get("metadata_columns"):
        lines.append(f"- Metadata columns: {', '.join(dataset['metadata_columns'])}")
    if n_skipped:
        lines.append(f"- {n_skipped} file(s) could not be decoded and were left out (skipped.csv)")
    return [*lines, ""]


def _ordinal_lines(test: dict) -> list[str]:
    ordinal = test.get("ordinal")
    if not ordinal:
        return []
    low, high = ordinal["qwk_ci"]
    return [f"- Quadratic-weighted kappa (ordered grades {' < '.join(ordinal['order'])}): "
            f"{ordinal['qwk']:.3f} (95 % CI {low:.3f}-{high:.3f}); mean absolute error "
            f"{ordinal['mae']:.3f} grades"]


def _evaluation(metrics: dict) -> list[str]:
    test = metrics.get("test")
    if not test:
        return ["## Evaluation", "", "No test split: the model was not evaluated.", ""]
    if test.get("task") == "multilabel":
        return _multilabel_evaluation(test)
    intervals = test.get("intervals", {})
    lines = ["## Evaluation", "", f"On {test['n']} test images never used for training or selection:", "",
             f"- Accuracy: {_pct(test['accuracy'])}{_ci(intervals.get('accuracy'))}",
             f"- Macro-F1: {_pct(test['macro']['f1'])}{_ci(intervals.get('macro_f1'))}",
             f"- Balanced accuracy: {_pct(test['balanced_accuracy'])}",
             *_ordinal_lines(test),
             *([f"- Decision rule: {metrics['decision']['target']}, tuned on "
                f"{metrics['decision']['validation'].get('n', '?')} validation images"]
               if (metrics.get("decision") or {}).get("kind", "argmax") != "argmax" else []),
             f"- Expected calibration error: {test['ece']:.3f}"
             + (f" (temperature {test['calibration']['temperature']:.2f}; "
                f"{test['calibration']['ece_before']:.3f} before)" if test.get("calibration") else ""),
             *([f"- Unknown ({test['unknown']['method']} score above its threshold): "
                f"{_pct(test['unknown']['rejected'])} of the test images"] if test.get("unknown") else []),
             "",
             "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    lines += [f"| {c} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
              for c, m in test["per_class"].items()]
    if metrics.get("val"):
        val = metrics["val"]
        lines += ["", f"Validation ({val['n']} images): accuracy {_pct(val['accuracy'])}."]
    return [*lines, ""]


def _multilabel_evaluation(test: dict) -> list[str]:
    intervals = test.get("intervals", {})
    lines = ["## Evaluation", "", f"Multi-label, on {test['n']} test images never used for training or "
             "selection:", "",
             f"- Micro-F1: {_pct(test['micro']['f1'])}{_ci(intervals.get('micro_f1'))}",
             f"- Macro-F1: {_pct(test['macro']['f1'])}{_ci(intervals.get('macro_f1'))}",
             f"- mAP: {_pct(test['map'])}{_ci(intervals.get('map'))}",
             f"- Subset accuracy (every label right): {_pct(test['subset_accuracy'])}"
             f"{_ci(intervals.get('accuracy'))}",
             f"- Hamming loss: {test['hamming_loss']:.4f}", "",
             "| label | precision | recall | F1 | average precision | threshold | images |",
             "|---|---|---|---|---|---|---|"]
    for c, m in test["per_label"].items():
        ap = "-" if m["ap"] is None else f"{m['ap']:.3f}"
        lines.append(f"| {c} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {ap} | "
                     f"{m.get('threshold', 0.5):.3f} | {m['support']} |")
    return [*lines, ""]


def _audits(audits: list[dict]) -> list[str]:
    lines = ["## Audit findings", ""]
    if not audits:
        return [*lines, "No audit yet: `imgcls audit RUN --group-by COLUMN` compares groups of a metadata "
                "column and adds its findings here.", ""]
    for report in audits:
        gate = report.get("gate", {})
        gap = gate.get("gap")
        verdict = "passed" if report.get("passed") else "failed"
        lines.append(f"- By `{report.get('config', {}).get('group_by', '?')}`: {verdict} the gate "
                     f"({gate.get('metric')} gap {'undefined' if gap is None else f'{gap:.3f}'}, allowed "
                     f"{gate.get('max_gap')}).")
        lines += [f"  - {finding}" for finding in report.get("findings", [])[:5]]
    return [*lines, ""]


def _limitations(metrics: dict) -> list[str]:
    test, dataset = metrics.get("test") or {}, metrics.get("dataset", {})
    counts = list(dataset.get("classes", {}).values())
    lines = ["## Limitations", "",
             "- It knows only its classes: an image of something else still gets one of them.",
             "- It was trained and tested on images like its dataset's; other cameras, sites or "
             "preparations can lower its accuracy (check with `imgcls evaluate RUN OTHER_DATA`)."]
    interval = (test.get("intervals") or {}).get("accuracy")
    if interval:
        lines.append(f"- With {test['n']} test images the accuracy is known to within "
                     f"{100 * (interval[1] - interval[0]) / 2:.1f} points either way.")
    if counts and max(counts) > 3 * max(1, min(counts)):
        lines.append(f"- Classes are imbalanced ({max(counts)}:{min(counts)}); judge it by macro-F1 and "
                     "per-class recall, not accuracy alone.")
    warnings = [c for c in metrics.get("checks", []) if c.get("severity") == "warning"]
    if warnings:
        kinds = sorted({c["check"] for c in warnings})
        lines.append(f"- The data checks found {len(warnings)} warning(s): {', '.join(kinds)} (report.html).")
    return [*lines, ""]


def _usage(name: str, exportable: bool) -> list[str]:
    lines = ["## How to use it", "", "```bash", f"imgcls predict {name} photo.png     # top-3 labels",
             f"imgcls serve {name}                 # REST API and web page"]
    if exportable:
        lines.append(f"imgcls export {name}                # ONNX with its preprocessing inside")
    return [*lines, "```", "", "```python", "import imgcls", "",
            f'predictor = imgcls.load_predictor("{name}")',
            "probabilities = predictor.predict_images([image])  # decoded uint8 arrays, any size",
            f'model = imgcls.load_model("{name}")  # the Classifier itself', "```", ""]


def model_card(name: str, metrics: dict, n_skipped: int = 0, audits: list[dict] | None = None,
               exportable: bool = False, location: str | None = None) -> str:
    """The text of model_card.md for the run called ``name``.

    Args:
        metrics: The run's metrics.json.
        location: The run folder as commands name it (default ``name``).
        n_skipped: Files that could not be decoded.
        audits: The audit.json reports of the run, if any.
        exportable: Whether the model exports to ONNX (its family's capability).
    """
    family = metrics.get("model", {}).get("family", "model")
    lines = [f"# {name}", "", f"An image classifier ({family}) trained with imgcls.", "",
             *_details(metrics),
             "## Intended use", "",
             "Sorting images like those of its dataset into its classes. Decisions that matter should "
             "keep a person in the loop, and its errors on the test split (report.html) show where it "
             "is weak.", "",
             *_data(metrics, n_skipped), *_evaluation(metrics), *_audits(audits or []),
             *_limitations(metrics), *_usage(location or name, exportable)]
    return _header(name, metrics) + "\n" + "\n".join(lines)
