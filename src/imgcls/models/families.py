"""The registry of model families: each one builds its models from options or from the typed
config, and loads the folders it saved. Installed packages add families through the
``imgcls.models`` entry-point group (see :mod:`imgcls.core.registry`).

Example:
    >>> create_model("random_forest", features="hog", image_size=64).school
    'classical'
    >>> MODELS.get("tf_efficientnet_lite0").create(mode="linear-probe").supports(GRADIENTS)
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError, ModelError
from ..core.registry import Registry
from .base import GRADIENTS, SEQUENCE, TILES, Classifier, read_model_json  # noqa: F401 - GRADIENTS: the example
from .calibration import Calibration
from .classical import FAMILIES as CLASSICAL_FAMILIES
from .classical import SklearnClassifier
from .decision import Decision
from .deep.catalog import BACKBONES, SMALL_CNN, create_backbone
from .deep.pretrained import offline_available
from .ensemble import EnsembleClassifier
from .finetune import FinetuneClassifier
from .mil import MilClassifier
from .probe import ProbeClassifier
from .sequence import SequenceClassifier
from .sequence_classical import ClassicalSequenceClassifier
from .unknown import Unknown

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..data.facts import DataFacts


class ModelFamily:
    """A named family of one Classifier class.

    Args:
        name: What users type (``model.name``); saved as ``family`` in model.json.
        description: One line for ``imgcls models``.
        cls: The Classifier subclass; it receives ``family=name`` when its constructor takes one.

    Example (a plugin's family, published under the ``imgcls.models`` entry-point group):
        >>> MY_FAMILY = ModelFamily("my_net", "my network", MyClassifier)     # doctest: +SKIP
    """

    def __init__(self, name: str, description: str, cls: type[Classifier]) -> None:
        self.name, self.description, self.cls = name, description, cls

    @property
    def school(self) -> str:
        return self.cls.school

    @property
    def capabilities(self) -> frozenset[str]:
        return self.cls.capabilities

    def _named(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"family": self.name, **options} if "family" in self.cls._param_names() else options

    def create(self, **options: Any) -> Classifier:
        """An unfitted model with these constructor options."""
        return self.cls(**self._named(options))

    def from_config(self, cfg: RunConfig, facts: DataFacts) -> Classifier:
        """An unfitted model as the config describes it."""
        return self.cls.from_config(self.name, cfg, facts)

    def load(self, folder: Path, meta: dict) -> Classifier:
        return self.cls.load(folder)

    def facts(self) -> dict:
        """Size and offline-weights facts for ``imgcls models``; empty when not applicable."""
        return {}


class BackboneFamily(ModelFamily):
    """A deep backbone: fine-tuned end to end, or a frozen linear probe (``model.mode``)."""

    MODES = {"finetune": FinetuneClassifier, "linear-probe": ProbeClassifier}

    def __init__(self, name: str, description: str) -> None:
        super().__init__(name, description, FinetuneClassifier)

    def _class(self, mode: str) -> type[Classifier]:
        if mode not in self.MODES:
            raise ConfigError(f"The 'model.mode' parameter must be one of {tuple(self.MODES)}. Got {mode!r}.")
        return self.MODES[mode]

    def create(self, mode: str = "finetune", **options: Any) -> Classifier:
        return self._class(mode)(family=self.name, **options)

    def from_config(self, cfg: RunConfig, facts: DataFacts) -> Classifier:
        return self._class(cfg.model.mode).from_config(self.name, cfg, facts)

    def load(self, folder: Path, meta: dict) -> Classifier:
        return self._class(meta.get("mode", "finetune")).load(folder)

    def facts(self) -> dict:
        if self.name == SMALL_CNN:
            from .deep.networks import SmallCNN

            return {"parameters": sum(p.numel() for p in SmallCNN(2).parameters()), "offline_weights": False}
        backbone = create_backbone(self.name)
        return {"parameters": sum(p.numel() for p in backbone.parameters()),
                "offline_weights": offline_available(self.name)}


def _plugin_check(name: str, obj: object) -> str | None:
    if not isinstance(obj, ModelFamily):
        return f"it is a {type(obj).__name__}, not an imgcls.models.ModelFamily"
    if obj.name != name:
        return f"its ModelFamily is named '{obj.name}', not '{name}' as its entry point"
    return None


MODELS: Registry[ModelFamily] = Registry("model", group="imgcls.models", check=_plugin_check)
for _name, _description in CLASSICAL_FAMILIES:
    MODELS.add(_name, ModelFamily(_name, _description, SklearnClassifier))
for _name, _description in BACKBONES.items():
    MODELS.add(_name, BackboneFamily(_name, _description))
MODELS.add("mil", ModelFamily("mil", "multiple-instance learning on tiles of large images (data.tiles): "
                              "frozen backbone tile embeddings, attention (or mean / max) pooling",
                              MilClassifier))
MODELS.add("sequence", ModelFamily("sequence", "video clips (data.frames frames each): frozen CNN frame "
                                    "embeddings read by model.params.temporal: frames (the per-frame "
                                    "baseline), mean, gru, lstm or attention", SequenceClassifier))
MODELS.add("sequence_classical", ModelFamily(
    "sequence_classical", "video clips, the classical school: per-frame edges / texture / colour features "
    "(model.features), pooled over time (mean, std, change, trend), logistic regression",
    ClassicalSequenceClassifier))
MODELS.add("ensemble", ModelFamily("ensemble", "weighted average of fitted models (model.members); weights "
                                   "by greedy selection on the validation split", EnsembleClassifier))


def create_model(name: str, **options: Any) -> Classifier:
    """Create an unfitted model of a registered family, its parameters checked.

    Args:
        name: Family name, see ``list_models()``.
        **options: Constructor parameters, e.g. ``features="hog+lbp"``, ``params={"C": 10}``;
            deep families also take ``mode="linear-probe"``.

    Example:
        >>> create_model("svm", features="pixels", image_size=8).image_spec.size
        8
    """
    return MODELS.get(name).create(**options).validate()


def build_model(cfg: RunConfig, facts: DataFacts) -> Classifier:
    """The unfitted model ``cfg.model`` names, built by its family from the config."""
    model = MODELS.get(cfg.model.name).from_config(cfg, facts).validate()
    if cfg.data.tiles and not model.supports(TILES):
        raise ConfigError(f"data.tiles={cfg.data.tiles} makes each image a bag of tiles, which "
                          f"'{cfg.model.name}' cannot learn from; use model.name=mil (or data.tiles=0).")
    if facts.videos and not model.supports(SEQUENCE):
        raise ConfigError(f"{facts.videos} of the samples are video clips, which '{cfg.model.name}' cannot "
                          "learn from (it reads still images); use model.name=sequence.")
    if model.supports(SEQUENCE) and facts.n_images and not facts.videos:
        raise ConfigError(f"model.name={cfg.model.name} reads video clips, and these samples are still "
                          "images; use an image model (model.name=auto).")
    return model


def list_models() -> list[ModelFamily]:
    return [MODELS.get(n) for n in MODELS.names()]


def load_model(path: str | Path) -> Classifier:
    """Load a model folder (``model.json`` and its weights) of any registered family."""
    folder = Path(path)
    meta = read_model_json(folder)
    family = meta.get("family")
    if family not in MODELS:
        raise ModelError(f"'{folder}' holds an unknown model family {family!r} (is the package that "
                         "provides it installed?).")
    model = MODELS.get(family).load(folder, meta)
    model.decision_ = Decision.from_dict(meta.get("decision"))
    model.calibration_ = Calibration.from_dict(meta.get("calibration"))
    model.unknown_ = Unknown.from_dict(meta.get("unknown"), folder)
    return model


EnsembleClassifier.load_member = staticmethod(load_model)  # members load as their own families do
