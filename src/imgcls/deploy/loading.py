"""``load_predictor``: the backend a saved model runs on, chosen once.

ONNX Runtime when the run has an up-to-date export (see :mod:`imgcls.deploy.exporting`),
else the saved Classifier in-process; ``export=True`` makes the export first for a model
that can be exported.

Example:
    >>> predictor = load_predictor("runs/elpv")                 # doctest: +SKIP
    >>> predictor.backend                                       # doctest: +SKIP
    'onnx-fp32'
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import ConfigError, ModelError
from ..models import ONNX, Classifier
from ..runs import Run
from .exporting import export as run_export
from .predictors import ClassifierPredictor, OnnxPredictor, Predictor

BACKENDS = ("auto", "onnx", "torch")
PRECISIONS = ("fp32", "int8")


def load_predictor(model, *, backend: str = "auto", precision: str = "fp32",
                   threads: int | None = None, export: bool = False) -> Predictor:
    """A Predictor for a run folder, a model folder, an ``.onnx`` file or a fitted Classifier.

    Args:
        backend: ``auto`` (ONNX Runtime when an up-to-date export exists), ``onnx`` or ``torch``
            (the saved Classifier, in-process, whatever its family).
        precision: ``fp32`` or ``int8`` (an int8 export; needs ``imgcls export --quantize int8``).
        export: With ``backend`` auto or onnx, export the run first when it has no export.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"The 'backend' parameter must be one of {BACKENDS}. Got {backend!r}.")
    if precision not in PRECISIONS:
        raise ConfigError(f"The 'precision' parameter must be one of {PRECISIONS}. Got {precision!r}.")
    if isinstance(model, Classifier):
        if backend == "onnx" or precision != "fp32":
            raise ConfigError("A Classifier object runs in-process; export its run to use ONNX or int8.")
        return ClassifierPredictor(model, threads)
    path = Path(model)
    if path.suffix == ".onnx":
        return _named(OnnxPredictor(path, threads), path)
    if not path.exists():
        raise ModelError(f"'{path}' does not exist (give a run folder, model folder or .onnx file).")
    run = Run.open(path)
    if backend != "torch":
        onnx_path = run.current_export(precision)
        if onnx_path is None and (export or backend == "onnx" or precision == "int8"):
            onnx_path = _export_now(run, precision, required=backend == "onnx" or precision == "int8",
                                    asked=export)
        if onnx_path is not None:
            return _named(OnnxPredictor(onnx_path, threads), path)
    if precision != "fp32":
        raise ConfigError("int8 needs ONNX Runtime; use backend auto or onnx.")
    predictor = ClassifierPredictor(run.model, threads)
    predictor.version = run.model_digest()[:12]
    return _named(predictor, path)


def _export_now(run: Run, precision: str, required: bool, asked: bool) -> Path | None:
    if not asked:
        flag = " --quantize int8" if precision == "int8" else ""
        raise ModelError(f"'{run.path}' has no up-to-date {precision} ONNX export; run `imgcls export "
                         f"{run.path}{flag}` or pass export=True.")
    if not run.model.supports(ONNX):
        if required:
            raise ModelError(f"'{run.path}' holds a {run.model.family} model, which has no network to "
                             "export to ONNX.")
        return None
    run_export(run.path, quantize="int8" if precision == "int8" else None, progress=False)
    return run.export_file(precision)


def _named(predictor: Predictor, path: Path) -> Predictor:
    predictor.name, predictor.path = (path.stem if path.is_file() else path.name), path
    return predictor
