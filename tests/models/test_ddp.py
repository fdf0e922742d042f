"""Several processes (DDP) train one model and write the same run folder as one process."""

import contextlib
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from imgcls.models.deep.sampling import EpochSampler, Shard
from imgcls.models.deep.trainer import macro_f1

# a validation split: best.ckpt, early stopping and sharded validation run too
TINY = ["train.accelerator=cpu", "train.epochs=2", "model.image_size=32", "split.val=0.2"]


def _run_cli(args: list[str], cwd, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m imgcls ARGS`` in its own process group, so that the processes Lightning
    starts for the other ranks go with it when it times out or leaves them behind."""
    proc = subprocess.Popen([sys.executable, "-m", "imgcls", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:  # the pipes close when every process of the group has exited
        out, err = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _files(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_two_processes_write_the_same_run_folder_as_one(tmp_path):
    import imgcls

    ddp = _run_cli(["train", "shapes", "--model", "small_cnn", "--out", "ddp", "-q", *TINY,
                    "train.devices=2", "train.strategy=ddp"], tmp_path)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "GLOBAL_RANK: 1" in ddp.stderr  # the second process ran, from Lightning's launcher
    single = imgcls.train("shapes", model="small_cnn", out=tmp_path / "single", overrides=TINY,
                          progress=False)
    # Same names, recursively, logs and checkpoints included: rank 0 writes them all.
    assert _files(tmp_path / "ddp") == _files(single.path)
    fit = json.loads((tmp_path / "ddp" / "model" / "model.json").read_text())["fit"]
    assert fit["world_size"] == 2 and single.metrics["model"]["fit"]["world_size"] == 1
    assert fit["epochs"] == 2 and fit["best_epoch"] is not None
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert 0 <= metrics["test"]["accuracy"] <= 1
    model = imgcls.load_model(tmp_path / "ddp")
    images = np.zeros((3, 32, 32, 3), np.uint8)
    assert model.predict_proba(images).shape == (3, 3) and len(model.predict(images)) == 3


@pytest.mark.parametrize("n", [50, 51])
def test_epoch_shards_together_are_one_process_epoch(n):
    whole = EpochSampler(n, seed=4)
    whole.set_epoch(2)
    shards = [EpochSampler(n, seed=4, rank=r, world=2) for r in range(2)]
    for s in shards:
        s.set_epoch(2)
    draws = [list(s) for s in shards]
    assert len(draws[0]) == len(draws[1]) == len(shards[0]) == 26 - (n == 50)
    assert not set(draws[0]) & set(draws[1][:n // 2])  # a different shard on each rank
    interleaved = [d for pair in zip(*draws, strict=True) for d in pair]
    assert interleaved[:n] == list(whole)  # padding (n odd) wraps around to the first draw
    assert interleaved[n:] == list(whole)[:len(interleaved) - n]


def test_validation_shards_are_padded_and_metrics_match_sklearn():
    import torch
    from sklearn.metrics import f1_score

    shards = [list(Shard(5, rank=r, world=2)) for r in range(2)]
    assert shards == [[0, 2, 4], [1, 3, None]]
    y = torch.tensor([0, 0, 1, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 0, 1])
    confusion = torch.bincount(y * 4 + pred, minlength=16).reshape(4, 4).float()  # class 3 absent
    expected = f1_score(y.numpy(), pred.numpy(), average="macro", zero_division=0)
    assert float(macro_f1(confusion)) == pytest.approx(expected)
