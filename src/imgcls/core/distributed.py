"""Which process of a multi-process (DDP) training run this is, before Lightning says so.

Lightning's ``ddp`` strategy starts the other processes itself (they get ``LOCAL_RANK`` and
``NODE_RANK``); torchrun sets ``RANK``; SLURM's ``srun`` sets ``SLURM_PROCID``. Every process
runs ``imgcls.train`` from the start, and only global rank 0 may create, write or delete the
run folder. After training, the Trainer's own ``global_rank`` decides (see
:func:`imgcls.training.train`).

Example:
    >>> is_global_zero({"RANK": "3"}), is_global_zero({})
    (False, True)
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def is_global_zero(env: Mapping[str, str] | None = None) -> bool:
    """True unless the environment names this process as another rank than global 0."""
    env = os.environ if env is None else env
    if "RANK" in env:  # torchrun, or any launcher that follows torch.distributed's convention
        return int(env["RANK"]) == 0
    if "LOCAL_RANK" in env or "NODE_RANK" in env:  # Lightning's launcher, or set by hand
        node = env.get("NODE_RANK", env.get("GROUP_RANK", "0"))
        return int(env.get("LOCAL_RANK", "0")) == 0 and int(node) == 0
    return int(env.get("SLURM_PROCID", "0")) == 0
