"""Fine-tuning (Lightning): the Classifier contract, freezing, imbalance, augmentation, resume."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers import dots, stripes
from imgcls.core.errors import ConfigError
from imgcls.models import create_model, load_model
from imgcls.models.deep.augment import build_augment, parse_deep_augment, tta_views
from imgcls.models.deep.sampling import EpochSampler
from imgcls.models.deep.trainer import resolve_imbalance, warmup_cosine

FAST = {"epochs": 6, "batch_size": 8, "warmup_epochs": 0.5}


def textures(n: int = 16, size: int = 32, seed: int = 0):
    """Stripes vs dots, grey, ``size`` px: a task a small CNN learns in a few epochs."""
    import cv2

    rng = np.random.default_rng(seed)
    images = [cv2.resize(f(rng), (size, size), interpolation=cv2.INTER_AREA)
              for f in (stripes, dots) for _ in range(n)]
    return np.stack(images), np.array(["stripes"] * n + ["dots"] * n, dtype=object)


@pytest.fixture(scope="module")
def data():
    return textures()


def test_small_cnn_learns_and_round_trips(data, tmp_path):
    images, labels = data
    model = create_model("small_cnn", image_size=32, train=FAST)
    assert model.fit(images, labels) is model and model.school == "deep"
    proba = model.predict_proba(images)
    assert proba.shape == (len(images), 2) and np.allclose(proba.sum(1), 1, atol=1e-5)
    held_out, truth = textures(8, seed=1)
    assert (model.predict(held_out) == truth).mean() >= 0.85
    folder = model.save(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.safetensors"]
    meta = json.loads((folder / "model.json").read_text())
    assert meta["mode"] == "finetune" and meta["fit"]["epochs"] == FAST["epochs"]
    again = load_model(folder)
    assert np.allclose(again.predict_proba(images), proba, atol=1e-5)
    # any size and channel count goes through the one prepare step
    from imgcls.data import prepare_images

    colour = np.repeat(textures(2, size=50, seed=2)[0][..., None], 3, axis=3)
    assert again.predict_proba(prepare_images(list(colour), again.image_spec)).shape == (4, 2)


def test_frozen_groups_do_not_change(data):
    import torch

    images, labels = data
    model = create_model("tf_efficientnet_lite0", image_size=32, train={**FAST, "epochs": 1})
    model.fit(images, labels)
    assert model.frozen_groups_ == 4  # stem and the stride-2/4/8 stages of lite0
    fresh = create_model("tf_efficientnet_lite0", image_size=32)._build(2)
    trained = model.net_.state_dict()
    for name, value in fresh.state_dict().items():
        same = torch.equal(value, trained[name])
        if name.startswith(("net.conv_stem", "net.bn1", "net.blocks.0.", "net.blocks.1.", "net.blocks.2.")):
            assert same, f"{name} was frozen but changed"  # running stats too (kept in eval)
        elif name.startswith("net.blocks.5.") and name.endswith("weight"):
            assert not same, f"{name} should have been trained"


def test_validation_keeps_the_best_epoch_and_logs(data, tmp_path):
    images, labels = data
    model = create_model("small_cnn", image_size=32, train={**FAST, "epochs": 4, "patience": 2, "ema": True})
    model.set_runtime(work_dir=tmp_path)
    model.fit(images, labels, val=textures(6, seed=3))
    summary = model.fit_summary_
    assert summary["best_epoch"] is not None and 0 <= summary["best_epoch"] < 4
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file()
    log = (tmp_path / "logs" / "version_0" / "metrics.csv").read_text()
    assert "val_accuracy" in log and "train_img_s" in log
    assert summary["train_images_per_s"] > 0


def test_mixup_cutmix_tta_and_sampler_paths_run(data):
    images, labels = data
    model = create_model("small_cnn", image_size=32, augment="crop+hflip+vflip+rot90+erase",
                         train={**FAST, "epochs": 1, "mixup": 0.2, "cutmix": 1.0,
                                "imbalance": "sampler", "tta": "hflip+vflip"})
    proba = model.fit(images, labels).predict_proba(images)
    assert np.isfinite(proba).all() and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert model.fit_summary_["imbalance"] == "sampler"


def test_imbalance_auto_picks_weights_only_when_skewed():
    import torch

    skewed = torch.tensor([0] * 30 + [1] * 5)
    chosen = resolve_imbalance("auto", skewed, 2)
    assert chosen.method == "sqrt" and chosen.ratio == pytest.approx(6.0)
    assert chosen.class_weights[1] / chosen.class_weights[0] == pytest.approx(6 ** 0.5)
    full = resolve_imbalance("weights", skewed, 2)
    assert full.class_weights[1] / full.class_weights[0] == pytest.approx(6.0)
    assert resolve_imbalance("auto", torch.tensor([0] * 10 + [1] * 8), 2).method == "none"
    sampler = resolve_imbalance("sampler", skewed, 2)
    assert sampler.sample_weights[-1] == pytest.approx(6 * float(sampler.sample_weights[0]))


def test_epoch_sampler_is_reproducible_per_epoch():
    a, b = EpochSampler(50, seed=1), EpochSampler(50, seed=1)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b) and sorted(i for i, _ in a) == list(range(50))
    b.set_epoch(4)
    assert list(a) != list(b)


def test_warmup_then_cosine_to_zero():
    f = warmup_cosine(warmup_steps=10, total_steps=110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0, abs=1e-9)


def test_augment_names_are_checked():
    assert parse_deep_augment("auto", pretrained=True) == ["crop", "hflip"]
    assert parse_deep_augment("auto", pretrained=False) == ["crop", "rotate"]
    with pytest.raises(ConfigError, match="model.augment.*'spin'"):
        parse_deep_augment("crop+spin")
    with pytest.raises(ConfigError, match="model.augment"):
        create_model("small_cnn", augment="blur")
    import torch

    grey = torch.zeros(1, 32, 32, dtype=torch.uint8)
    assert build_augment("crop+jitter+trivial", 24, 1)(grey).shape == (1, 24, 24)
    assert build_augment("none", 24, 1) is None
    assert len(tta_views("hflip+vflip")) == 3


def _write_textures(folder, n=12):
    from PIL import Image

    images, labels = textures(n)
    for k, (img, label) in enumerate(zip(images, labels, strict=True)):
        (folder / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / label / f"{k:03d}.png")
    return folder


KILLER = """
import os, signal, sys
from lightning.pytorch.callbacks import Callback
import imgcls

class KillAtEpoch(Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, like a power cut

imgcls.train(sys.argv[1], model="small_cnn", out=sys.argv[2], overrides=sys.argv[3:],
             callbacks=[KillAtEpoch()], progress=False)
"""


def test_killed_training_resumes_to_the_same_model(tmp_path):
    from safetensors.torch import load_file

    import imgcls

    folder = _write_textures(tmp_path / "data")
    overrides = ["train.epochs=4", "train.batch_size=8", "split.val=0", "cache=false"]
    script = tmp_path / "killer.py"
    script.write_text(textwrap.dedent(KILLER))
    killed = tmp_path / "killed"
    proc = subprocess.run([sys.executable, str(script), str(folder), str(killed), *overrides],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (killed / "checkpoints" / "last.ckpt").is_file() and not (killed / "model").exists()

    resumed = imgcls.train(resume=killed, progress=False)
    straight = imgcls.train(str(folder), model="small_cnn", out=tmp_path / "straight",
                            overrides=overrides, progress=False)
    assert resumed.metrics["model"]["fit"]["epochs"] == 4
    epochs_after_resume = (killed / "logs" / "version_1" / "metrics.csv").read_text()
    assert "\n2," in epochs_after_resume and "\n0," not in epochs_after_resume
    a = load_file(str(killed / "model" / "model.safetensors"))
    b = load_file(str(straight.path / "model" / "model.safetensors"))
    assert all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-5) for k in a)


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path):
    import imgcls

    folder = _write_textures(tmp_path / "data", n=4)
    with pytest.raises(ConfigError, match="No offline pretrained weights"):
        imgcls.train(str(folder), model="resnet18", out=tmp_path / "run", progress=False,
                     overrides=["model.image_size=32"])
    assert not (tmp_path / "run").exists()  # the same --out works again at once


def test_resume_needs_a_checkpoint(tmp_path):
    import imgcls

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("model: {name: small_cnn}\n")
    with pytest.raises(ConfigError, match="no checkpoint"):
        imgcls.train(resume=tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="not a run folder"):
        imgcls.train(resume=tmp_path / "nothing", progress=False)


@pytest.mark.gpu
def test_mixed_precision_on_gpu(data):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    images, labels = data
    model = create_model("small_cnn", image_size=32, train={**FAST, "epochs": 2, "accelerator": "gpu"})
    model.fit(images, labels)
    assert model.fit_summary_["precision"] in ("bf16-mixed", "16-mixed")


def test_probe_head_init_starts_from_a_working_classifier(data):
    images, labels = data
    frozen_lr = {**FAST, "epochs": 1, "lr": 1e-12}  # training changes (almost) nothing
    probed = create_model("tf_efficientnet_lite0", image_size=32, train=frozen_lr).fit(images, labels)
    assert probed.fit_summary_["head_init_seconds"] is not None
    assert (probed.predict(images) == labels).mean() >= 0.9
    random = create_model("tf_efficientnet_lite0", image_size=32,
                          train={**frozen_lr, "head_init": "random"}).fit(images, labels)
    assert random.fit_summary_["head_init_seconds"] is None
    assert (random.predict(images) == labels).mean() < 0.8


def test_the_head_initialisation_reuses_a_linear_probes_embeddings(data, tmp_path, monkeypatch):
    from imgcls.models import Runtime
    from imgcls.models.deep import networks

    images, labels = data
    probe = create_model("tf_efficientnet_lite0", image_size=32, mode="linear-probe")
    probe.set_runtime(Runtime(cache_dir=tmp_path)).fit(images, labels)
    embedded = []
    original = networks.Preprocessed.embed
    monkeypatch.setattr(networks.Preprocessed, "embed",
                        lambda self, x: embedded.append(len(x)) or original(self, x))
    tuned = create_model("tf_efficientnet_lite0", image_size=32, train={**FAST, "epochs": 1})
    tuned.set_runtime(Runtime(cache_dir=tmp_path)).fit(images, labels)
    assert embedded == []  # every image's features came from the probe's cache entries
    fresh = create_model("tf_efficientnet_lite0", image_size=32, train={**FAST, "epochs": 1})
    fresh.fit(images, labels)  # no cache: embeds itself
    assert np.allclose(tuned.predict_proba(images), fresh.predict_proba(images), atol=1e-4)  # same numbers
