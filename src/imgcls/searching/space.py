"""What a search may try: model families of both schools and their hyper-parameters.

Each trial first picks a ``family`` (``classical``, ``probe``, ``finetune``), then that
family's parameters; :func:`to_overrides` turns them into the ``key=value`` overrides
of an ordinary training run. :func:`first_trials` are the cheap, well-known defaults
that run before the sampler explores, so a short budget still ends with a good model.
"""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = ("classical", "probe", "finetune")
ESTIMATORS = ("svm", "logistic_regression", "random_forest", "knn", "decision_tree")
AUGMENTS = ("crop+hflip", "crop+hflip+vflip", "crop+hflip+vflip+jitter", "crop+rotate")
SMALL_IMAGE = 64  # at or below: the small CNN from scratch, not a pretrained backbone
NO_PROBE = 32  # at or below: a 224 px backbone would see a 7x upscale of nothing; no probe


@dataclass(frozen=True)
class SpaceFacts:
    """What the space depends on: the images' median short side and channel count."""

    short_side: int
    channels: int
    backbones: tuple[str, ...]  # pretrained deep families available offline

    @property
    def tiny(self) -> bool:
        return self.short_side <= SMALL_IMAGE

    @property
    def probe_backbones(self) -> tuple[str, ...]:
        return () if self.short_side <= NO_PROBE else self.backbones

    def feature_sets(self) -> tuple[str, ...]:
        if self.short_side <= 32:
            return ("pixels", "pixels+hist", "hog+pixels")
        tone = "color" if self.channels == 3 else "hist"
        return ("hog", f"hog+{tone}", f"hog+lbp+{tone}", f"hog+lbp+glcm+edges+{tone}", "lbp+glcm+edges")

    def finetune_backbones(self) -> tuple[str, ...]:
        return ("small_cnn",) if self.tiny or not self.backbones else self.backbones

    def finetune_sizes(self) -> tuple[int, ...]:
        return (32, 48, 64) if self.tiny or not self.backbones else (160, 192, 224, 256, 288)


def suggest(trial, families: tuple[str, ...], facts: SpaceFacts) -> dict:
    """Sample one configuration; returns the trial's parameters as a flat dict."""
    family = trial.suggest_categorical("family", list(families))
    if family == "classical":
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


def to_overrides(params: dict) -> dict:
    """A trial's parameters as config overrides of one training run."""
    family = params["family"]
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


def first_trials(families: tuple[str, ...], facts: SpaceFacts) -> list[dict]:
    """Known-good defaults, cheapest first: they run before the sampler explores."""
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


def _closest(sizes: tuple[int, ...], side: int) -> int:
    return min(sizes, key=lambda s: abs(s - side))
