"""The deep school's linear probe: offline weights, the Classifier contract, safe artifacts.

Fine-tuning has its own file, test_finetune.py."""

import json

import numpy as np
import pytest

from imgcls.core.errors import ConfigError, ModelError
from imgcls.models import MODELS, Runtime, create_model, load_model
from imgcls.models.deep.catalog import BACKBONES, create_backbone
from imgcls.models.deep.pretrained import _lite0_state_dict, load_lite0, load_state_file
from imgcls.models.probe import ProbeClassifier


@pytest.fixture(scope="module")
def data(shapes_small):
    from imgcls.data import ImageSpec, load_images

    return load_images(shapes_small, ImageSpec(size=32, channels=3), progress=False).images, \
        shapes_small.labels


def test_offline_lite0_weights_land_where_they_belong():
    model = create_backbone("tf_efficientnet_lite0")
    before = model.conv_stem.weight.detach().clone()
    load_lite0(model)
    source = _lite0_state_dict()
    assert not np.allclose(before.numpy(), model.conv_stem.weight.detach().numpy())
    assert np.array_equal(model.conv_stem.weight.detach().numpy(), source["_conv_stem.weight"].numpy())
    assert np.array_equal(model.bn2.running_var.numpy(), source["_bn1.running_var"].numpy())


@pytest.mark.parametrize(("arch", "side"), [("tf_efficientnet_lite0", 224), ("tf_efficientnet_lite1", 240),
                                          ("tf_efficientnet_lite2", 260)])
def test_offline_lite_weights_recognise_a_cat(arch, side):
    """Mapped by position from the packages' lukemelas layout, each network must still be the
    ImageNet model: scikit-image's cat photo lands in ImageNet's cat classes (281-285)."""
    import cv2
    import timm
    import torch
    from skimage import data

    from imgcls.models.deep.pretrained import load_offline

    model = timm.create_model(arch, pretrained=False).eval()
    load_offline(model, arch)
    x = cv2.resize(data.chelsea(), (side, side), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1
    with torch.no_grad():
        proba = model(torch.from_numpy(x).permute(2, 0, 1)[None]).softmax(1)[0]
    assert set(proba.topk(3).indices.tolist()) <= set(range(281, 286)) and float(proba.max()) > 0.5


def test_lite0_with_imagenet_head_predicts_like_a_trained_network():
    import timm
    import torch

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    load_lite0(model)  # the 1000-class head loads too
    with torch.no_grad():
        logits = model(torch.zeros(1, 3, 224, 224))
    assert logits.shape == (1, 1000) and float(logits.softmax(1).max()) < 0.9


def test_linear_probe_contract_and_round_trip(data, tmp_path):
    images, labels = data
    model = create_model("tf_efficientnet_lite0", image_size=32, mode="linear-probe")
    assert isinstance(model, ProbeClassifier) and model.school == "deep"
    assert model.fit(images, labels) is model
    proba = model.predict_proba(images)
    assert proba.shape == (len(images), 3) and np.allclose(proba.sum(1), 1)
    assert (model.predict(images) == labels).mean() >= 0.9
    folder = model.save(tmp_path / "m")
    meta = json.loads((folder / "model.json").read_text())
    assert meta["school"] == "deep" and meta["mean"] == [0.5, 0.5, 0.5]
    assert sorted(p.name for p in folder.iterdir()) == ["backbone.safetensors", "head.skops", "model.json"]
    again = load_model(folder)
    assert np.allclose(again.predict_proba(images), proba, atol=1e-5)


def test_embeddings_are_cached_by_content(data, tmp_path, monkeypatch):
    images, _ = data
    model = create_model("resnet18", image_size=32, pretrained="none", mode="linear-probe")
    model.set_runtime(Runtime(cache_dir=tmp_path))
    first = model.embed(images[:8])
    monkeypatch.setattr(ProbeClassifier, "_run_backbone", lambda *a: pytest.fail("cache missed"))
    assert np.array_equal(model.embed(images[:8]), first)


def test_pretrained_choices_fail_clearly(tmp_path):
    with pytest.raises(ConfigError, match="No offline pretrained weights for 'resnet18'"):
        create_model("resnet18", image_size=32, mode="linear-probe").embed(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ConfigError, match="does not exist"):
        create_model("resnet18", pretrained=str(tmp_path / "nope.pt"), mode="linear-probe")._backbone()
    with pytest.raises(ConfigError, match="model.mode"):
        create_model("resnet18", mode="distill")
    with pytest.raises(ConfigError, match="small_cnn"):
        create_model("small_cnn", mode="linear-probe")


def test_weights_file_loading_is_weights_only(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "bad.pt"
    bad.write_bytes(pickle.dumps({"x": Payload()}))
    with pytest.raises(ModelError):
        load_state_file(create_backbone("resnet18"), bad)
    assert not marker.exists()


def test_family_facts_report_size_and_offline_weights():
    assert MODELS.get("tf_efficientnet_lite0").facts() == {"parameters": 3_371_008, "offline_weights": True}
    assert MODELS.get("resnet18").facts()["offline_weights"] is False
    assert set(BACKBONES) >= {"resnet18", "vit_tiny_patch16_224", "convnext_tiny"}


def test_train_and_predict_end_to_end(shapes_folder, tmp_path):
    import imgcls

    run = imgcls.train(str(shapes_folder), model="tf_efficientnet_lite0", out=tmp_path / "r",
                       overrides=["model.image_size=64", "model.mode=linear-probe"], progress=False)
    assert run.metrics["test"]["accuracy"] >= 0.8
    assert run.metrics["model"]["pretrained"].startswith("ImageNet")
    table = imgcls.predict(run.path, [shapes_folder / "circle"], progress=False)
    assert (table["prediction"] == "circle").mean() >= 0.8


def test_hub_without_network_fails_fast_and_clearly(monkeypatch):
    import socket
    import time

    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(socket, "create_connection", unreachable)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="needs a network connection"):
        create_model("resnet18", pretrained="hub", mode="linear-probe")._backbone()
    assert time.perf_counter() - started < 10
