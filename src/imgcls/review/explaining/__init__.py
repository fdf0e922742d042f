"""Why did the model decide this? Attribution maps of single predictions, for either school,
each scored for faithfulness against a random baseline.

``explain`` writes, per image and method, a heat-map overlay PNG and the raw map (.npy),
plus ``explain.json`` and an ``explain.html`` gallery with deletion / insertion areas per
method. Models with named feature groups (the classical school) also get permutation
importance per group; models with a network can add the model-randomisation sanity check.

Example:
    >>> result = explain("runs/elpv", ["cell.png"], methods="gradcam+lime")   # doctest: +SKIP
    >>> result.summary["gradcam"]["deletion_auc"]                            # doctest: +SKIP
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...config import ExplainConfig, cache_root, resolve_n_jobs
from ...core.errors import ConfigError, DataError, ImgclsError
from ...core.log import info
from ...core.progress import progress_bar
from ...data import load_images
from ...data.prepare import read_prepared
from ...deploy.inputs import as_dataset
from ...deploy.loading import load_predictor
from ...deploy.predictors import ClassifierPredictor
from ...models import FEATURE_GROUPS, GRADIENTS, SEQUENCE, TILES
from ...report.plots import frame_strip, png_uri, tile_mosaic
from ...runs import Run
from .clips import explain_clip, frame_capabilities, temporal_summary
from .faithfulness import faithfulness
from .gallery import overlay, overlay_uri, write_gallery, write_npy, write_png
from .importance import group_importance
from .methods import BASELINE, METHODS, Method, resolve_methods
from .sanity import GRADIENT_METHODS, randomisation_check
from .view import ModelView

__all__ = ["explain", "list_methods", "ExplainResult", "error_overlays", "quick_method", "ModelView",
           "METHODS"]

DEFAULT_ERRORS = 8
SANITY_IMAGES = 8


@dataclass
class ExplainResult:
    """What ``explain`` wrote: the folder, per-image results, per-method summary."""

    path: Path
    images: list[dict]
    summary: dict[str, dict]
    importance: list[dict] | None = None
    sanity: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    temporal: dict | None = None  # clips: which frames mattered, against random frame orders


def list_methods() -> list[Method]:
    return [METHODS.get(n) for n in METHODS.names()]


def explain(run: str | Path, images: list[str | Path] | None = None, *, methods: str | None = None,
            target: str | None = None, out: str | Path | None = None, errors: int | None = None,
            sanity: bool = False, backend: str = "auto", settings: dict[str, Any] | None = None,
            progress: bool = True) -> ExplainResult:
    """Explain predictions of a saved run and measure how faithful each explanation is.

    Args:
        run: Run folder written by ``imgcls train``.
        images: Image files, folders, globs or a manifest; default: the run's worst test errors.
        methods: ``auto`` (every method the run's model can run) or names joined by '+'.
        target: Class to explain; default the predicted class of each image.
        out: Output folder; default ``RUN/explain``.
        errors: Without ``images``, how many of the most confident test errors (default 8).
        sanity: Models with a network: also run the model-randomisation check on the gradient
            methods.
        backend: How black-box methods score images (``auto``: ONNX Runtime when exported).
        settings: ``ExplainConfig`` fields, e.g. ``{"lime_samples": 200}``.

    Example:
        >>> explain("runs/digits-cnn", errors=4).summary.keys()       # doctest: +SKIP
        dict_keys(['gradcam', 'integrated_gradients', 'occlusion', 'lime', 'shap', 'random'])
    """
    opened = Run.open(run)
    cfg = _settings(opened.require_config().explain, methods, settings)
    clf = opened.model
    if clf.supports(TILES):
        raise ConfigError("A tiled (MIL) model explains itself by its tile weights: see the tile heat maps "
                          "of `imgcls predict RUN IMAGES --heatmaps DIR` and of the run's report; pixel "
                          "methods would have to run once per tile.")
    clips = clf.supports(SEQUENCE)
    if sanity and clips:
        raise ConfigError("The randomisation check runs on image models; a clip model's explanations are "
                          "scored by their deletion curves (frames and key-frame pixels) instead.")
    view = ModelView(clf, load_predictor(opened.path, backend=backend))
    chosen = resolve_methods(cfg.methods, frame_capabilities(clf) if clips else clf.capabilities)
    if sanity and not clf.supports(GRADIENTS):
        raise ConfigError(f"The randomisation check needs a network; this run's {clf.family} model "
                          "has none.")
    if target is not None:
        view.target_index(target, np.zeros(len(view.classes)))
    ds, rows = _inputs(opened, images, errors, clips)
    out_dir = Path(out) if out else opened.path / "explain"
    out_dir.mkdir(parents=True, exist_ok=True)
    explained, prepared, skipped = _explain_all(view, ds, rows, chosen, target, cfg, out_dir, progress)
    if not explained:
        raise DataError(f"None of the {len(rows)} images could be read: "
                        f"{skipped[0]['path']}: {skipped[0]['reason']}")
    result = ExplainResult(out_dir, explained, summarise(explained), skipped=skipped,
                           temporal=temporal_summary(explained))
    if clf.supports(FEATURE_GROUPS):
        try:
            result.importance = _importance(opened, clf, cfg)
        except ImgclsError as exc:  # the training data moved: the maps are still worth having
            info(f"feature-group importance skipped: {exc}")
    if sanity:
        result.sanity = _sanity(view, prepared, chosen, cfg)
    _write(result, opened, view, cfg, target)
    return result


def _settings(base: ExplainConfig, methods: str | None, settings: dict | None) -> ExplainConfig:
    values = {**base.model_dump(), **(settings or {})}
    if methods is not None:
        values["methods"] = methods
    return ExplainConfig.from_options(**values)


def _inputs(opened, images, errors: int | None, clips: bool = False):
    """The dataset to read and the rows to explain: given images (or clips), or the worst test
    errors."""
    if images:
        if errors is not None:
            raise ConfigError("Give images or --errors N, not both.")
        ds = as_dataset(images, frame_folders=clips)
        return ds, list(range(len(ds)))
    return _worst_errors(opened, DEFAULT_ERRORS if errors is None else errors)


def _worst_errors(opened: Run, limit: int):
    table = opened.predictions()
    if table is None:
        raise DataError(f"'{opened.path}' has no predictions.csv; give the images to explain.")
    table["confidence"] = table["confidence"].astype(float)
    wrong = table[(table["split"] == "test") & (table["label"] != table["prediction"])]
    wrong = wrong.sort_values("confidence", ascending=False).head(limit)
    if wrong.empty:
        raise DataError(f"'{opened.path}' made no errors on its test split; give the images to explain.")
    ds = opened.dataset()
    index = {p: i for i, p in enumerate(ds.paths)}
    rows = [index[p] for p in wrong["path"] if p in index]
    if not rows:
        raise DataError(f"The test errors of '{opened.path}' are no longer in its dataset.")
    return ds, rows


def _explain_all(view: ModelView, ds, rows: list[int], chosen: list[Method], target: str | None,
                 cfg: ExplainConfig, out_dir: Path, progress: bool):
    explained, prepared_images, skipped = [], [], []
    methods = [*chosen, METHODS.get(BASELINE)]
    with progress_bar(len(rows) * len(methods), "Explaining", progress) as advance:
        for n, i in enumerate(rows):
            image = read_prepared(lambda draft, window, i=i: ds.read_sample(i, draft, window), view.spec)
            if isinstance(image, str):
                skipped.append({"path": str(ds.paths[i]), "reason": image})
                advance(len(methods))
                continue
            folder = out_dir / _folder_name(n, ds.paths[i])
            if view.supports(SEQUENCE):  # which frames mattered, then the key frame's pixels
                explained.append(explain_clip(view, image, methods, target, cfg, folder, explain_image,
                                              advance))
            else:
                image = view.from_model_input(image)
                explained.append(explain_image(view, image, methods, target, cfg, folder, advance))
            explained[-1]["path"] = str(ds.paths[i])
            if "label" in ds.table and str(ds.table["label"].iloc[i]):
                explained[-1]["label"] = str(ds.table["label"].iloc[i])
            prepared_images.append(image)
    return explained, prepared_images, skipped


def explain_image(view: ModelView, image: np.ndarray, methods: list[Method], target: str | None,
                  cfg: ExplainConfig, folder: Path | None = None, advance=None) -> dict:
    """Every method's map of one prepared image (in the (H, W, 3) form), its faithfulness and
    its time."""
    proba = view.proba(image)[0]
    k = view.target_index(target, proba)
    entry = {"prediction": view.classes[int(np.argmax(proba))], "probability": float(proba.max()),
             "target": view.classes[k], "target_probability": float(proba[k]), "methods": {}}
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        entry["image"] = str(write_png(folder / "image.png", image).relative_to(folder.parent))
    for m in methods:
        started = time.perf_counter()
        attribution = np.nan_to_num(np.asarray(m.attribute(view, image, k, cfg), dtype=np.float32))
        seconds = time.perf_counter() - started
        record = {"seconds": round(seconds, 3), **faithfulness(view, image, attribution, k,
                                                                cfg.curve_steps, cfg.seed)}
        if folder is not None:
            record["png"] = str(write_png(folder / f"{m.name}.png", overlay(image, attribution))
                                .relative_to(folder.parent))
            record["npy"] = str(write_npy(folder / f"{m.name}.npy", attribution).relative_to(folder.parent))
        entry["methods"][m.name] = record
        if advance is not None:
            advance(1)
    return entry


def _folder_name(n: int, path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(path)).stem)[:60] or "image"
    return f"{n:03d}-{stem}"


def summarise(images: list[dict]) -> dict[str, dict]:
    """Per method: mean seconds, mean deletion / insertion areas, and the share of images on
    which it beats the random baseline (lower deletion area)."""
    names = list(images[0]["methods"]) if images else []
    summary = {}
    for name in names:
        recs = [img["methods"][name] for img in images if name in img["methods"]]
        deletion = np.array([r["deletion_auc"] for r in recs])
        random_deletion = np.array([img["methods"][BASELINE]["deletion_auc"] for img in images
                                    if name in img["methods"]])
        summary[name] = {
            "n": len(recs),
            "seconds": float(np.mean([r["seconds"] for r in recs])),
            "deletion_auc": float(deletion.mean()), "deletion_auc_std": float(deletion.std()),
            "insertion_auc": float(np.mean([r["insertion_auc"] for r in recs])),
            "beats_random": float(np.mean(deletion < random_deletion)) if name != BASELINE else None,
        }
    return summary


def _importance(opened: Run, clf, cfg: ExplainConfig) -> list[dict]:
    ds = opened.dataset()
    split = "val" if (ds.table.get("split") == "val").any() else "test"
    ds = ds.subset(np.flatnonzero(ds.table["split"].to_numpy() == split))
    if len(ds) == 0:
        return []
    loaded = load_images(ds, clf.image_spec, resolve_n_jobs(opened.config.n_jobs),
                         cache_root(opened.config), progress=False)
    rows = group_importance(clf, loaded.images, ds.labels[loaded.rows], seed=cfg.seed)
    return [{**r, "split": split, "n": len(loaded.rows)} for r in rows]


def _sanity(view: ModelView, images: list[np.ndarray], chosen: list[Method], cfg: ExplainConfig
            ) -> list[dict]:
    names = [m.name for m in chosen if m.name in GRADIENT_METHODS] or ["gradcam"]
    return [randomisation_check(view, images[:SANITY_IMAGES], name, cfg, cfg.seed) for name in names]


def _write(result: ExplainResult, opened, view: ModelView, cfg: ExplainConfig, target) -> None:
    payload = {"run": str(opened.path), "model": {"family": view.family, "school": view.school,
                                                  "backend": view.predictor.backend},
               "classes": view.classes, "target": target, "config": cfg.model_dump(),
               "summary": result.summary, "images": result.images, "importance": result.importance,
               "sanity": result.sanity, "skipped": result.skipped, "temporal": result.temporal}
    page = write_gallery(result.path, payload)
    best = min((n for n in result.summary if n != BASELINE),
               key=lambda n: result.summary[n]["deletion_auc"], default=None)
    temporal = result.temporal
    frames = (f"; frame scores beat random frame orders on {100 * temporal['beats_random']:.0f} % of clips "
              f"(deletion area {temporal['deletion_auc']:.3f} vs {temporal['random_deletion_auc']:.3f})"
              if temporal else "")
    info(f"Explained {len(result.images)} {'clip' if temporal else 'image'}(s){frames}"
         + (f"; most faithful on {'the key frame' if temporal else 'pixels'}: {best}" if best else "")
         + f"; gallery: {page}")


def quick_method(view: ModelView) -> Method:
    """The fast map for reports and the web page: Grad-CAM for networks, occlusion otherwise."""
    return METHODS.get("gradcam" if view.supports(GRADIENTS) else "occlusion")


QUICK_TITLES = {"gradcam": "Grad-CAM", "occlusion": "occlusion"}


def error_overlays(clf, images: np.ndarray, predicted: list[str], cfg: ExplainConfig | None = None
                   ) -> tuple[list[str], str]:
    """Heat-map overlays (data URIs) of why ``clf`` predicted each label, for reports
    (:func:`quick_method`; no faithfulness curves), and the method's title. ``images`` are
    already prepared for ``clf`` (a run's loaded images)."""
    if clf.supports(TILES):  # a bag's explanation is its tile weights, painted on its tiles
        scores = clf.tile_scores(images)
        return [png_uri(tile_mosaic(bag, s)) for bag, s in zip(images, scores, strict=True)], "tile attention"
    if clf.supports(SEQUENCE):  # a clip's: which frames mattered, in order
        scores = clf.frame_scores(images)
        return ([png_uri(frame_strip(clip, s)) for clip, s in zip(images, scores, strict=True)],
                "frame occlusion")
    cfg = cfg or ExplainConfig(occlusion_window=0.25)  # a 7 x 7 grid: a report must stay quick
    view = ModelView(clf, ClassifierPredictor(clf))
    chosen = quick_method(view)
    uris = []
    for image, label in zip(images, predicted, strict=True):
        prepared = view.from_model_input(image)
        uris.append(overlay_uri(prepared, chosen.attribute(view, prepared, view.classes.index(label), cfg)))
    return uris, QUICK_TITLES.get(chosen.name, chosen.name)
