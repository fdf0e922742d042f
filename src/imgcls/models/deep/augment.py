"""Training augmentation for the deep school (torchvision transforms v2), MixUp/CutMix and
test-time augmentation.

Transforms run per image on uint8 (C, H, W) tensors, C = 1 or 3, inside the data loader.

Example:
    >>> build_augment("crop+hflip", size=32, channels=3)           # doctest: +ELLIPSIS
    Compose(...)
"""

from __future__ import annotations

from collections.abc import Callable

from ...core.errors import ConfigError

DEEP_AUGMENTS = ("crop", "hflip", "vflip", "rot90", "rotate", "jitter", "trivial", "randaug", "erase")
AUTO_PRETRAINED = "crop+hflip"
AUTO_SCRATCH = "crop+rotate"


def parse_deep_augment(spec: str, pretrained: bool = True) -> list[str]:
    if spec.strip() == "auto":
        spec = AUTO_PRETRAINED if pretrained else AUTO_SCRATCH
    names = [n.strip() for n in spec.split("+") if n.strip() and n.strip() != "none"]
    unknown = [n for n in names if n not in DEEP_AUGMENTS]
    if unknown:
        raise ConfigError(f"The 'model.augment' parameter has unknown transform(s) {unknown} for deep "
                          f"models; use none, auto or {', '.join(DEEP_AUGMENTS)} joined by '+'. "
                          f"Got {spec!r}.")
    return names


def _rot90():
    import torch

    class RandomRot90(torch.nn.Module):
        """Rotate by 0, 90, 180 or 270 degrees (square images)."""

        def forward(self, img):
            return torch.rot90(img, int(torch.randint(4, ())), dims=(-2, -1))

    return RandomRot90()


def _transform(name: str, size: int, channels: int):
    from torchvision.transforms import v2

    if name == "crop":
        # milder than ImageNet recipes (0.08-1): small defects must stay in the crop
        return v2.RandomResizedCrop(size, scale=(0.7, 1.0), ratio=(0.8, 1.25), antialias=True)
    if name == "hflip":
        return v2.RandomHorizontalFlip()
    if name == "vflip":
        return v2.RandomVerticalFlip()
    if name == "rot90":
        return _rot90()
    if name == "rotate":
        return v2.RandomRotation(15)
    if name == "jitter":  # hue and saturation mean nothing for grey images
        colour = {"saturation": 0.2, "hue": 0.02} if channels == 3 else {}
        return v2.ColorJitter(brightness=0.2, contrast=0.2, **colour)
    if name == "trivial":
        return v2.TrivialAugmentWide()
    if name == "randaug":
        return v2.RandAugment()
    return v2.RandomErasing(p=0.25)


def build_augment(spec: str, size: int, channels: int, pretrained: bool = True) -> Callable | None:
    """A v2 pipeline for ``spec`` ('crop+hflip', 'auto', 'none'), or None when empty."""
    from torchvision.transforms import v2

    names = parse_deep_augment(spec, pretrained)
    if not names:
        return None
    # erasing works on whole tensors after the geometric and colour transforms
    ordered = [n for n in names if n != "erase"] + [n for n in names if n == "erase"]
    return v2.Compose([_transform(n, size, channels) for n in ordered])


def build_mix(mixup: float, cutmix: float, n_classes: int) -> Callable | None:
    """MixUp and/or CutMix on a float batch; returns (images, soft targets)."""
    from torchvision.transforms import v2

    mixes = []
    if mixup > 0:
        mixes.append(v2.MixUp(alpha=mixup, num_classes=n_classes))
    if cutmix > 0:
        mixes.append(v2.CutMix(alpha=cutmix, num_classes=n_classes))
    if not mixes:
        return None
    return mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)


def tta_flips(tta: str) -> tuple[tuple[int, ...], ...]:
    """The flips (dims of an (N, C, H, W) batch) whose softmax outputs are averaged with the
    plain view's at prediction: hflip flips the width, vflip the height."""
    return tuple(dims for name, dims in (("hflip", (3,)), ("vflip", (2,))) if name in tta)


def tta_views(tta: str) -> list[Callable]:
    """The views of an (N, C, H, W) batch averaged at prediction: the batch, then each flip."""
    return [lambda x: x] + [lambda x, dims=dims: x.flip(dims) for dims in tta_flips(tta)]
