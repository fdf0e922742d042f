"""The backbones imgcls offers and what size each takes.

Importing this module loads no torch; :func:`create_backbone` does.
"""

from __future__ import annotations

BACKBONES = {
    "tf_efficientnet_lite0": "EfficientNet-Lite0 CNN; ImageNet weights offline",
    "tf_efficientnet_lite1": "EfficientNet-Lite1 CNN (240 px); ImageNet weights offline",
    "tf_efficientnet_lite2": "EfficientNet-Lite2 CNN (260 px); ImageNet weights offline",
    "resnet18": "ResNet-18 CNN",
    "mobilenetv3_large_100": "MobileNetV3-Large CNN",
    "efficientnet_b0": "EfficientNet-B0 CNN",
    "convnext_tiny": "ConvNeXt-Tiny CNN",
    "vit_tiny_patch16_224": "ViT-Tiny/16 vision transformer",
    "deit_tiny_patch16_224": "DeiT-Tiny/16 vision transformer",
    "small_cnn": "Small CNN, from scratch, for tiny images",
}
SMALL_CNN = "small_cnn"
TRANSFORMERS = ("vit_tiny_patch16_224", "deit_tiny_patch16_224")  # built for their image size
DEEP_AUTO_SIZE = 224
SMALL_CNN_MIN, SMALL_CNN_MAX = 32, 64
EMBED_VERSION = "2"  # bump when a backbone's pooled features change: it keys the embeddings cache


def embedding_key(family: str, weights: str) -> tuple[str, str, str]:
    """The cache key of a pretrained backbone's pooled features (before its classifier): the
    linear probe's embeddings and the LP-FT head initialisation of a fine-tune are the same
    numbers for the same images, so they share their cache entries."""
    return EMBED_VERSION, family, weights


def auto_image_size(family: str, short_side: int) -> int:
    """image_size=auto: the backbone's 224 px; the small CNN takes the data's size within 32-64."""
    if family == SMALL_CNN:
        return min(SMALL_CNN_MAX, max(SMALL_CNN_MIN, short_side))
    return DEEP_AUTO_SIZE


def timm_options(family: str, image_size: int | None) -> dict:
    """Extra timm.create_model options: vision transformers are built for the image size used."""
    return {"img_size": image_size} if family in TRANSFORMERS and image_size else {}


def create_backbone(arch: str, image_size: int | None = None):
    """A timm backbone without its classifier (``num_classes=0``), random weights."""
    import timm

    return timm.create_model(arch, pretrained=False, num_classes=0, **timm_options(arch, image_size))
