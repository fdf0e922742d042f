"""Attribution methods, registered by name: each maps one prepared image to an (H, W) map.

A map's larger values are stronger evidence *for* the explained class; signed methods
(Integrated Gradients, occlusion, LIME, SHAP) also show evidence against it as negative
values. Gradient methods need a network (deep school); the others only call the model, so
they explain every model.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ...config import ExplainConfig
from ...core.errors import ConfigError
from ...core.registry import Registry
from ...models import GRADIENTS
from .view import ModelView, gradcam_layer, image_tensor, token_grid

Attribute = Callable[[ModelView, np.ndarray, int, ExplainConfig], np.ndarray]


@dataclass(frozen=True)
class Method:
    """An attribution method; ``needs`` are the model capabilities it requires (none: any model,
    scored as a black box)."""

    name: str
    needs: frozenset[str]
    description: str
    attribute: Attribute

    def runs_on(self, capabilities: frozenset[str]) -> bool:
        return self.needs <= capabilities


def _plugin_check(name: str, obj: object) -> str | None:
    return None if isinstance(obj, Method) else f"it is a {type(obj).__name__}, not an explaining Method"


METHODS: Registry[Method] = Registry("explanation method", group="imgcls.explainers", check=_plugin_check)
BASELINE = "random"


def method(name: str, needs: tuple[str, ...], description: str) -> Callable[[Attribute], Attribute]:
    def decorator(func: Attribute) -> Attribute:
        METHODS.add(name, Method(name, frozenset(needs), description, func))
        return func

    return decorator


def blurred(image: np.ndarray) -> np.ndarray:
    """The image with its detail removed: what 'deleting' pixels replaces them with."""
    import cv2

    sigma = max(1.0, image.shape[0] / 20)
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)


@method("gradcam", (GRADIENTS,), "Grad-CAM on the last convolutional map (ViT: the patch-token grid "
        "entering the last block), captum LayerGradCam, upsampled")
def gradcam(view: ModelView, image: np.ndarray, target: int, cfg: ExplainConfig) -> np.ndarray:
    from captum.attr import LayerAttribution, LayerGradCam

    module = view.logits_module()
    with _gradcam_target(module, image.shape[0]) as layer:
        cam = LayerGradCam(module, layer).attribute(image_tensor(image), target=target,
                                                    relu_attributions=True)
    up = LayerAttribution.interpolate(cam.detach(), image.shape[:2], "bilinear")
    return up[0, 0].numpy()


_LAYERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> its Grad-CAM layer


@contextlib.contextmanager
def _gradcam_target(module, size: int) -> Iterator[object]:
    if module not in _LAYERS:  # finding the layer costs a forward pass: once per network
        _LAYERS[module] = (gradcam_layer(module, size),)
    (layer,) = _LAYERS[module]
    if layer is not None:
        yield layer
        return
    with token_grid(module) as grid:
        yield grid


@method("integrated_gradients", (GRADIENTS,), "Integrated Gradients from a black image, captum, "
        "summed over colour channels")
def integrated_gradients(view: ModelView, image: np.ndarray, target: int, cfg: ExplainConfig
                         ) -> np.ndarray:
    import torch
    from captum.attr import IntegratedGradients

    x = image_tensor(image)
    attr = IntegratedGradients(view.logits_module()).attribute(
        x, baselines=torch.zeros_like(x), target=target, n_steps=cfg.ig_steps, internal_batch_size=8)
    return attr.detach()[0].sum(dim=0).numpy()


@method("occlusion", (), "Occlusion: drop in the class probability when a "
        "square patch is blurred, captum, sliding by half a patch")
def occlusion(view: ModelView, image: np.ndarray, target: int, cfg: ExplainConfig) -> np.ndarray:
    import torch
    from captum.attr import Occlusion

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(view.proba(batch.permute(0, 2, 3, 1).numpy()))

    side = max(2, round(image.shape[0] * cfg.occlusion_window))
    stride = max(1, side // 2)
    attr = Occlusion(forward).attribute(
        image_tensor(image), target=target, sliding_window_shapes=(3, side, side),
        strides=(3, stride, stride), baselines=image_tensor(blurred(image)),
        perturbations_per_eval=view.batch_size)
    return attr[0].mean(dim=0).numpy()


@method("lime", (), "LIME over SLIC superpixels (lime_image), hidden "
        "superpixels take their mean colour")
def lime(view: ModelView, image: np.ndarray, target: int, cfg: ExplainConfig) -> np.ndarray:
    from lime import lime_image
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    segmenter = SegmentationAlgorithm("slic", n_segments=cfg.superpixels, compactness=10, sigma=1,
                                      start_label=0)
    explainer = lime_image.LimeImageExplainer(random_state=cfg.seed)
    with _quiet_lime():
        result = explainer.explain_instance(image, view.proba, labels=(target,), top_labels=None,
                                            hide_color=None, num_samples=cfg.lime_samples,
                                            batch_size=view.batch_size, segmentation_fn=segmenter,
                                            random_seed=cfg.seed)
    weights = np.zeros(result.segments.max() + 1)
    for segment, weight in result.local_exp[target]:
        weights[segment] = weight
    return weights[result.segments].astype(np.float32)


@contextlib.contextmanager
def _quiet_lime() -> Iterator[None]:
    """lime_image draws a tqdm bar on stderr for every explanation and has no switch for it."""
    from lime import lime_image

    original = lime_image.tqdm
    lime_image.tqdm = lambda items, *args, **kwargs: items
    try:
        yield
    finally:
        lime_image.tqdm = original


@method("shap", (), "SHAP partition explainer with a blurring image masker "
        "(Owen values over a pixel hierarchy), summed over colour channels")
def shap(view: ModelView, image: np.ndarray, target: int, cfg: ExplainConfig) -> np.ndarray:
    import shap as shap_lib

    kernel = max(3, image.shape[0] // 14)
    masker = shap_lib.maskers.Image(f"blur({kernel},{kernel})", image.shape)
    explainer = shap_lib.Explainer(view.proba, masker, algorithm="partition")
    values = explainer(image[None].astype(np.float32), max_evals=cfg.shap_evals,
                       batch_size=view.batch_size, outputs=[target], silent=True).values
    return np.asarray(values)[0, ..., 0].sum(axis=-1).astype(np.float32)


@method(BASELINE, (), "Baseline: random values over a 16 x 16 grid of blocks; "
        "a method is faithful only where it beats this")
def random_map(view: ModelView, image: np.ndarray, target: int, cfg: ExplainConfig) -> np.ndarray:
    import cv2

    cells = np.random.default_rng(cfg.seed).random((16, 16)).astype(np.float32)
    return cv2.resize(cells, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)


def resolve_methods(spec: str, capabilities: frozenset[str]) -> list[Method]:
    """``auto`` (every method the model can run) or names joined by '+'; a method the model
    cannot run is an error naming what it needs."""
    if spec == "auto":
        return [m for n in METHODS.names() if (m := METHODS.get(n)).runs_on(capabilities) and n != BASELINE]
    chosen = []
    for name in (n.strip() for n in spec.split("+") if n.strip()):
        m = METHODS.get(name)
        if not m.runs_on(capabilities):
            runnable = [n for n in METHODS.names() if METHODS.get(n).runs_on(capabilities)]
            needs = " and ".join(sorted(m.needs))
            raise ConfigError(f"Method '{name}' needs a deep model (one with {needs}); this run's model "
                              f"has none. Methods for it: {', '.join(runnable)}.")
        chosen.append(m)
    if not chosen:
        raise ConfigError("No explanation method given; use --method auto or e.g. gradcam+lime.")
    return chosen
