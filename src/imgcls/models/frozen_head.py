"""What the models on a frozen pretrained backbone with a small trained torch head share
(:mod:`imgcls.models.mil`, :mod:`imgcls.models.sequence`): the two weight files and the
head's training loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import ModelError
from ..core.io import atomic_dir
from .base import versions, write_model_json
from .deep.catalog import create_backbone

WEIGHTS = ("backbone.safetensors", "head.safetensors")


def save_backbone_and_head(clf, path: str | Path, meta: dict) -> Path:
    """``model.json``, the backbone's and the head's weights and the tuned parts, atomically."""
    from safetensors.torch import save_file

    with atomic_dir(path) as tmp:
        for module, name in ((clf._backbone(), WEIGHTS[0]), (clf.head_, WEIGHTS[1])):
            save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(tmp / name))
        clf.save_tuned(tmp)
        write_model_json(tmp, meta)
    return Path(path)


def load_backbone_and_head(folder: Path, backbone: str, size: int, make_head, what: str):
    """(backbone, head) with their saved weights; ``make_head()`` builds the empty head."""
    from safetensors.torch import load_file

    try:
        net = create_backbone(backbone, size)
        net.load_state_dict(load_file(str(folder / WEIGHTS[0])))
        head = make_head()
        head.load_state_dict(load_file(str(folder / WEIGHTS[1])))
    except (OSError, RuntimeError, KeyError) as exc:
        raise ModelError(f"'{folder}': the {what} weights cannot be loaded: {exc}") from None
    return net, head


def frozen_head_json(clf, mode: str, input_text: str) -> dict:
    """model.json of a backbone-plus-head model (MIL, sequence)."""
    import timm
    import torch

    return {"format_version": 1, "school": clf.school, "family": clf.family, "mode": mode,
            "backbone": clf.backbone_name, "classes": [str(c) for c in clf.classes_],
            "image_spec": clf.image_spec.to_dict(), "input": input_text,
            "pretrained": clf.weights_, "pretrained_option": clf.pretrained,
            "class_weight": clf.class_weight, "params": clf.params or {}, "seed": clf.seed,
            "weights": list(WEIGHTS), "embedding_dim": int(clf.head_.dim),
            "versions": {**versions(), "torch": torch.__version__, "timm": timm.__version__},
            **clf.tuned_json()}


def class_weights(y: np.ndarray, n_classes: int, class_weight):
    """Inverse-frequency weights for the loss (a tensor) when ``class_weight == "balanced"``, else None."""
    import torch

    if class_weight != "balanced":
        return None
    counts = np.bincount(y, minlength=n_classes).astype(np.float32)
    return torch.from_numpy(counts.sum() / np.maximum(counts, 1) / len(counts))


def train_head(head, inputs: tuple[np.ndarray, ...], y: np.ndarray, opts: dict, class_weight, seed: int,
               batch: int = 16) -> None:
    """AdamW over the samples (``head(*inputs)`` gives logits, or logits first), cross-entropy
    (class-balanced when ``class_weight == "balanced"``), ``opts["epochs"]`` epochs."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    tensors, yt = [torch.from_numpy(np.asarray(a)) for a in inputs], torch.from_numpy(y).long()
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights(y, head.classifier.out_features, class_weight))
    optimiser = torch.optim.AdamW(head.parameters(), lr=float(opts["lr"]),
                                  weight_decay=float(opts["weight_decay"]))
    head.train()
    for _ in range(int(opts["epochs"])):
        order = torch.randperm(len(yt), generator=generator)
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            out = head(*(t[idx] for t in tensors))
            loss = loss_fn(out[0] if isinstance(out, tuple) else out, yt[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    head.eval()
