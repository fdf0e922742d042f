"""Predict labels for files, folders, globs or a built-in dataset with a saved model.

Example:
    >>> table = predict("runs/digits-svm", ["photos/"], top_k=3)     # doctest: +SKIP
    >>> table.columns[:4].tolist()                                   # doctest: +SKIP
    ['path', 'prediction', 'confidence', 'top1']
    >>> table = predict("runs/elpv", ["s3://bucket/cells/"], engine="ray", address="auto")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import ConfigError
from ..core.progress import progress_bar
from ..core.registry import did_you_mean
from ..models import Classifier
from .heatmaps import tiled_model, write_heatmaps
from .inputs import as_dataset, is_remote
from .loading import load_predictor
from .predictors import Predictor, iter_batches
from .ray import predict_rows
from .tables import build_table, check_abstain, top_k_rows, write_table

ENGINES = ("local", "ray")


def predict(model: str | Path | Classifier | Predictor, inputs: Sequence[str | Path], *, top_k: int = 3,
            output: str | Path | None = None, limit: int | None = None, n_jobs: int = 0,
            progress: bool = True, backend: str = "auto", precision: str = "fp32",
            batch_size: int = 32, export: bool = False, engine: str = "local",
            address: str | None = None, abstain: bool = False,
            heatmaps: str | Path | None = None) -> pd.DataFrame:
    """Top-k predictions per image; unreadable files get a row with ``error`` set.

    Decoding runs in threads ahead of the model, and a run with an up-to-date ONNX export
    runs on ONNX Runtime (see :func:`imgcls.deploy.loading.load_predictor`).

    Args:
        model: Run folder, model folder, ``.onnx`` file, fitted Classifier or Predictor.
        inputs: Files, folders, globs, one CSV/Parquet manifest or one built-in dataset name
            (with ``engine="ray"`` also ``s3://``, ``gs://``... URIs that pyarrow can open).
        top_k: How many labels (with probabilities) per image.
        output: Write ``.csv``, ``.jsonl`` or ``.parquet``; the suffix picks the format.
        limit: Predict only the first ``limit`` images.
        n_jobs: Threads for inference (0: every core of this machine; with ``engine="ray"``,
            threads per actor, 0 meaning 1, and one actor per that many cluster CPUs).
        backend: ``auto``, ``onnx`` or ``torch``; precision: ``fp32`` or ``int8``.
        export: Export the run to ONNX first when it has no export yet.
        engine: ``local`` (this process) or ``ray`` (``map_batches`` over a Ray cluster, same
            table; see :mod:`imgcls.batch_ray`).
        address: With ``engine="ray"``, the cluster to join (``auto``, ``ray://host:10001``);
            default: a local Ray instance on this machine's cores.
        abstain: Answer ``unknown`` for images whose unknown score is above the model's
            threshold (see :mod:`imgcls.models.unknown`). Whatever it is, a model with an
            unknown detector adds the ``unknown_score`` and ``unknown`` columns.
        heatmaps: A folder for each image's tile heat map (models trained with ``data.tiles``):
            ``<name>.heatmap.png`` and ``.npy``; the table gains a ``heatmap`` column.
    """
    _check_options(top_k, batch_size, engine, address)
    if heatmaps is not None and engine == "ray":
        raise ConfigError("Tile heat maps are drawn by engine='local'; drop --heatmaps or --engine ray.")
    maps = None
    if engine == "ray":
        paths, rows, k = predict_rows(model, inputs, top_k=top_k, limit=limit, backend=backend,
                                      precision=precision, threads=n_jobs, batch_size=batch_size,
                                      export=export, address=address, progress=progress, abstain=abstain)
    else:
        paths, rows, k, maps = _local_rows(model, inputs, top_k=top_k, limit=limit, backend=backend,
                                           precision=precision, n_jobs=n_jobs, batch_size=batch_size,
                                           export=export, progress=progress, abstain=abstain,
                                           heatmaps=heatmaps)
    table = build_table(rows, paths, k)
    if maps is not None:
        table.insert(len(table.columns) - 1, "heatmap", maps)
    if output is not None:
        write_table(table, Path(output))
    return table


def _check_options(top_k: int, batch_size: int, engine: str, address: str | None) -> None:
    if top_k < 1:
        raise ConfigError(f"The 'top_k' parameter must be >= 1. Got {top_k}.")
    if batch_size < 1:
        raise ConfigError(f"The 'batch_size' parameter must be >= 1. Got {batch_size}.")
    if engine not in ENGINES:
        raise ConfigError(f"The 'engine' parameter must be one of {ENGINES}. Got {engine!r}."
                          + did_you_mean(str(engine), list(ENGINES)))
    if address is not None and engine != "ray":
        raise ConfigError(f"The 'address' parameter is for engine='ray'. Got engine={engine!r}.")


def _local_rows(model, inputs, *, top_k: int, limit: int | None, backend: str, precision: str,
                n_jobs: int, batch_size: int, export: bool, progress: bool, abstain: bool = False,
                heatmaps: str | Path | None = None) -> tuple[list[str], list[dict], int, list[str] | None]:
    if any(is_remote(i) for i in inputs):
        raise ConfigError("Object-store URIs (s3://, gs://...) are read by engine='ray'; "
                          "pass engine='ray' (CLI: --engine ray).")
    predictor = model if isinstance(model, Predictor) else load_predictor(
        model, backend=backend, precision=precision, threads=n_jobs or None, export=export)
    check_abstain(abstain, predictor)
    if heatmaps is not None:
        tiled_model(predictor)  # refused before any image is read
    ds = as_dataset(inputs, frame_folders=bool(predictor.spec.frames))
    if limit is not None:
        ds = ds.subset(np.arange(min(limit, len(ds))))
    k = min(top_k, len(predictor.classes))
    classes = np.asarray(predictor.classes, dtype=object)
    rows: list[dict] = []
    with progress_bar(len(ds), f"Predicting ({predictor.backend})", progress) as advance:
        batches = iter_batches(predictor, range(len(ds)), ds.read_sample, batch_size)
        for done, proba, failed, scores in batches:
            rows += [{"index": i, "error": reason} for i, reason in failed]
            rows += top_k_rows(done, proba, classes, k, predictor.decide(proba), scores,
                               predictor.unknown_flags(scores, len(done)), abstain,
                               predictor.rule.chosen(proba) if predictor.multilabel else None)
            advance(len(done) + len(failed))
    maps = None
    if heatmaps is not None:
        errors = {r["index"]: r.get("error") or "" for r in rows}
        maps = write_heatmaps(predictor, [str(ds.file_path(i)) for i in range(len(ds))], heatmaps,
                              [errors.get(i, "") for i in range(len(ds))])
    return ds.paths, rows, k, maps
