"""What a search may try: model families of both schools and their hyper-parameters.

Each trial first picks a ``family`` (``classical``, ``probe``, ``finetune``), then that
family's parameters; :func:`to_overrides` turns them into the ``key=value`` overrides
of an ordinary training run. :func:`first_trials` are the cheap, well-known defaults
that run before the sampler explores, so a short budget still ends with a good model.

On clips (video files, folders of frames: ``SpaceFacts.clips``) the same three names mean the
sequence families: ``classical`` is ``sequence_classical`` (frame features pooled over time),
``probe`` a ``sequence`` model on the frozen CNN's frame embeddings with a searched temporal
head, ``finetune`` a ``sequence`` model whose CNN is then tuned end to end for a few epochs.
Their parameters have names of their own (``seqc_*``, ``seq_*``, ``seqft_*``), so a study's
space never reads one parameter in two ways.
"""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = ("classical", "probe", "finetune")
ESTIMATORS = ("svm", "logistic_regression", "random_forest", "knn", "decision_tree")
AUGMENTS = ("crop+hflip", "crop+hflip+vflip", "crop+hflip+vflip+jitter", "crop+rotate")
SMALL_IMAGE = 64  # at or below: the small CNN from scratch, not a pretrained backbone
NO_PROBE = 32  # at or below: a 224 px backbone would see a 7x upscale of nothing; no probe
# clips (the sequence families)
CLIP_FEATURES = ("edges+lbp+color", "hog+color", "lbp+color", "edges+hist")  # the first is the default
CLIP_TEMPORAL = ("gru", "lstm", "attention", "mean")
CLIP_FINETUNE_TEMPORAL = ("gru", "attention")
CLIP_HIDDEN = (64, 128, 256)
RECURRENT = ("gru", "lstm")
TINY_CLASSICAL_SIZES = (32, 48, 64)  # tiny frames: sequence_classical at about their own size
TINY_SEQUENCE_SIZE = 64  # tiny frames: the pretrained CNN sees them at 64 px (a 2 x 2 last map)


@dataclass(frozen=True)
class SpaceFacts:
    """What the space depends on: the images' (or frames') median short side and channel count,
    whether the samples are clips, and the ``model.image_size`` the user fixed (clips keep it)."""

    short_side: int
    channels: int
    backbones: tuple[str, ...]  # pretrained deep families available offline
    clips: bool = False  # samples are clips: the sequence families are searched
    image_size: int | None = None  # model.image_size given in the shared overrides, if any

    @property
    def tiny(self) -> bool:
        return self.short_side <= SMALL_IMAGE

    @property
    def probe_backbones(self) -> tuple[str, ...]:
        if self.clips:  # the sequence model resizes frames to its own size, whatever theirs
            return self.backbones
        return () if self.short_side <= NO_PROBE else self.backbones

    def clip_size(self, model: str) -> int | None:
        """``model.image_size`` for a clip trial of ``model`` (``sequence`` or
        ``sequence_classical``); None leaves it to the user's override or the model's default
        (224 and 96 px). Tiny frames are not blown up to those sizes."""
        if self.image_size is not None or not self.tiny:
            return None
        if model == "sequence_classical":
            return _closest(TINY_CLASSICAL_SIZES, self.short_side)
        return TINY_SEQUENCE_SIZE

    def feature_sets(self) -> tuple[str, ...]:
        if self.short_side <= 32:
            return ("pixels", "pixels+hist", "hog+pixels")
        tone = "color" if self.channels == 3 else "hist"
        return ("hog", f"hog+{tone}", f"hog+lbp+{tone}", f"hog+lbp+glcm+edges+{tone}", "lbp+glcm+edges")

    def finetune_backbones(self) -> tuple[str, ...]:
        return ("small_cnn",) if self.tiny or not self.backbones else self.backbones

    def finetune_sizes(self) -> tuple[int, ...]:
        return (32, 48, 64) if self.tiny or not self.backbones else (160, 192, 224, 256, 288)


def available(families: tuple[str, ...], facts: SpaceFacts) -> tuple[str, ...]:
    """The ``families`` this data can have: a probe needs a pretrained backbone offline (and
    images over ``NO_PROBE`` px); on clips, both sequence families on a CNN need one."""
    if facts.clips:
        return tuple(f for f in families if f == "classical" or facts.backbones)
    return tuple(f for f in families if f != "probe" or facts.probe_backbones)


def stoppable(family: str, facts: SpaceFacts) -> bool:
    """Whether a trial of ``family`` is stopped within one batch at the budget (it trains in
    epochs, in Lightning); others are only started when they are expected to finish in time."""
    return family == "finetune" and not facts.clips


def suggest(trial, families: tuple[str, ...], facts: SpaceFacts) -> dict:
    """Sample one configuration; returns the trial's parameters as a flat dict."""
    family = trial.suggest_categorical("family", list(families))
    if facts.clips:
        _suggest_clip(trial, family, facts)
    elif family == "classical":
        estimator = trial.suggest_categorical("estimator", list(ESTIMATORS))
        trial.suggest_categorical("features", list(facts.feature_sets()))
        if estimator in ("svm", "logistic_regression"):
            trial.suggest_float("C", 1e-2, 1e2, log=True)
        elif estimator == "random_forest":
            trial.suggest_int("n_estimators", 100, 500, step=100)
            trial.suggest_categorical("max_features", ["sqrt", "log2"])
        elif estimator == "knn":
            trial.suggest_int("n_neighbors", 1, 15)
        else:
            trial.suggest_int("max_depth", 4, 32, log=True)
    elif family == "probe":
        trial.suggest_categorical("probe_backbone", list(facts.probe_backbones))
        trial.suggest_float("probe_C", 1e-2, 1e1, log=True)
    else:
        trial.suggest_categorical("ft_backbone", list(facts.finetune_backbones()))
        trial.suggest_float("ft_lr", 1e-4, 3e-3, log=True)
        trial.suggest_int("ft_epochs", 3, 10)
        trial.suggest_categorical("ft_augment", list(AUGMENTS))
        trial.suggest_categorical("ft_size", list(facts.finetune_sizes()))
        trial.suggest_categorical("ft_tta", ["none", "hflip+vflip"])
    return dict(trial.params)


def _suggest_clip(trial, family: str, facts: SpaceFacts) -> None:
    if family == "classical":
        trial.suggest_categorical("seqc_features", list(CLIP_FEATURES))
        trial.suggest_float("seqc_C", 1e-2, 1e2, log=True)
    elif family == "probe":  # the CNN frozen: embeddings cached once, heads in seconds
        trial.suggest_categorical("seq_backbone", list(facts.backbones))
        temporal = trial.suggest_categorical("seq_temporal", list(CLIP_TEMPORAL))
        if temporal != "mean":  # the mean head is one linear layer
            trial.suggest_categorical("seq_hidden", list(CLIP_HIDDEN))
        trial.suggest_float("seq_lr", 3e-4, 3e-3, log=True)
        trial.suggest_int("seq_epochs", 30, 120)
        trial.suggest_float("seq_dropout", 0.0, 0.4)
        if temporal in RECURRENT:
            trial.suggest_categorical("seq_bidirectional", [False, True])
    else:  # the CNN tuned end to end, after the head: minutes on a CPU, never stopped mid-fit
        trial.suggest_categorical("seqft_backbone", list(facts.backbones))
        trial.suggest_categorical("seqft_temporal", list(CLIP_FINETUNE_TEMPORAL))
        trial.suggest_int("seqft_epochs", 1, 4)
        trial.suggest_float("seqft_lr", 3e-5, 3e-4, log=True)


def to_overrides(params: dict, facts: SpaceFacts | None = None) -> dict:
    """A trial's parameters as config overrides of one training run (``facts``: the frame size
    of a clip trial on tiny frames)."""
    family = params["family"]
    if any(k.startswith(("seqc_", "seq_", "seqft_")) for k in params):
        return _clip_overrides(params, facts)
    if family == "classical":
        out = {"model.name": params["estimator"], "model.features": params["features"]}
        names = {"C": "C", "n_estimators": "n_estimators", "max_features": "max_features",
                 "n_neighbors": "n_neighbors", "max_depth": "max_depth"}
        out.update({f"model.params.{names[k]}": v for k, v in params.items() if k in names})
        return out
    if family == "probe":
        return {"model.name": params["probe_backbone"], "model.mode": "linear-probe",
                "model.params.C": params["probe_C"]}
    return {"model.name": params["ft_backbone"], "model.mode": "finetune", "train.lr": params["ft_lr"],
            "train.epochs": params["ft_epochs"], "model.augment": params["ft_augment"],
            "model.image_size": params["ft_size"], "train.tta": params.get("ft_tta", "none")}


def _clip_overrides(params: dict, facts: SpaceFacts | None) -> dict:
    if "seqc_features" in params:
        out = {"model.name": "sequence_classical", "model.features": params["seqc_features"],
               "model.params.C": params["seqc_C"]}
    elif "seq_temporal" in params:
        names = {"seq_backbone": "backbone", "seq_temporal": "temporal", "seq_hidden": "hidden",
                 "seq_lr": "lr", "seq_epochs": "epochs", "seq_dropout": "dropout",
                 "seq_bidirectional": "bidirectional"}
        out = {"model.name": "sequence", **{f"model.params.{names[k]}": v for k, v in params.items()
                                            if k in names}}
    else:
        out = {"model.name": "sequence", "model.params.backbone": params["seqft_backbone"],
               "model.params.temporal": params["seqft_temporal"],
               "model.params.finetune_epochs": params["seqft_epochs"],
               "model.params.finetune_lr": params["seqft_lr"]}
    size = facts.clip_size(out["model.name"]) if facts is not None else None
    return out if size is None else {**out, "model.image_size": size}


def first_trials(families: tuple[str, ...], facts: SpaceFacts) -> list[dict]:
    """Known-good defaults, cheapest first: they run before the sampler explores."""
    if facts.clips:
        return _first_clip_trials(families, facts)
    trials = []
    if "classical" in families:
        best_features = facts.feature_sets()[-2 if not facts.short_side <= 32 else 0]
        trials += [{"family": "classical", "estimator": "svm", "features": best_features, "C": 10.0},
                   {"family": "classical", "estimator": "logistic_regression", "features": best_features,
                    "C": 1.0}]
    if "probe" in families and facts.probe_backbones:
        trials.append({"family": "probe", "probe_backbone": facts.probe_backbones[0], "probe_C": 1.0})
    if "finetune" in families:
        tiny = facts.tiny or not facts.backbones
        # the measured frontier (docs/benchmarks.md, benchmarks/elpv_frontier.py): 224 px and 6
        # epochs beat 160 px by 2.3 points for 1.7x the time; 288 px adds 0.6 for 1.5x more, and
        # Lite1 at 240 px was no better. Test-time flips are those the model trained with.
        trials.append({"family": "finetune", "ft_backbone": facts.finetune_backbones()[0],
                       "ft_lr": 3e-3 if tiny else 5e-4, "ft_epochs": 8 if tiny else 6,
                       "ft_augment": "crop+rotate" if tiny else "crop+hflip+vflip",
                       "ft_size": _closest(facts.finetune_sizes(), facts.short_side) if tiny else 224,
                       "ft_tta": "none" if tiny else "hflip+vflip"})
    return trials


def _first_clip_trials(families: tuple[str, ...], facts: SpaceFacts) -> list[dict]:
    """The sequence models' own defaults: frame features with a logistic regression, a GRU and an
    attention head on the frozen CNN, then the GRU with two epochs of end-to-end tuning."""
    trials = []
    if "classical" in families:
        trials.append({"family": "classical", "seqc_features": CLIP_FEATURES[0], "seqc_C": 1.0})
    if facts.backbones and "probe" in families:
        head = {"family": "probe", "seq_backbone": facts.backbones[0], "seq_hidden": 128, "seq_lr": 1e-3,
                "seq_epochs": 60, "seq_dropout": 0.2}
        trials += [{**head, "seq_temporal": "gru", "seq_bidirectional": False},
                   {**head, "seq_temporal": "attention"}]
    if facts.backbones and "finetune" in families:
        trials.append({"family": "finetune", "seqft_backbone": facts.backbones[0], "seqft_temporal": "gru",
                       "seqft_epochs": 2, "seqft_lr": 1e-4})
    return trials


def _closest(sizes: tuple[int, ...], side: int) -> int:
    return min(sizes, key=lambda s: abs(s - side))
