"""What fine-tuning draws from: images in memory, and seeded samplers that split every
epoch between the processes of a multi-process (DDP) run.

Example:
    >>> sampler = EpochSampler(10, seed=0, rank=1, world=2)
    >>> len(sampler), len(list(sampler))
    (5, 5)
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset, Sampler


class TensorImages(Dataset):
    """Images and labels in memory; an item is an index, or (index, seed) to augment with
    its own random state, independent of how far the loader has prefetched. ``None`` is
    padding (see :class:`Shard`): a blank image labelled -1, which validation skips."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item):
        if item is None:
            return torch.zeros_like(self.images[0]), torch.full_like(self.labels[0], -1)
        i, seed = item if isinstance(item, tuple) else (item, None)
        img = self.images[i]
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                if seed is not None:
                    torch.manual_seed(seed)
                img = self.transform(img)
        return img, self.labels[i]


class EpochSampler(Sampler):
    """(index, seed) pairs: a permutation (or weighted draw) and per-draw augmentation seeds,
    all derived from (seed, epoch), so a resumed run sees exactly the same batches.

    With ``world`` processes, process ``rank`` takes draws rank, rank + world, ... of the
    same epoch (wrapping around so that all get ceil(n / world)): together they see what a
    single process would, whatever the number of processes.
    """

    def __init__(self, n: int, seed: int, weights: torch.Tensor | None = None, rank: int = 0,
                 world: int = 1) -> None:
        self.n, self.seed, self.weights, self.epoch = n, seed, weights, 0
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.n / self.world)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is None:
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.multinomial(self.weights, self.n, replacement=True, generator=g)
        seeds = torch.randint(2**62, (self.n,), generator=g)
        draws = list(zip(order.tolist(), seeds.tolist(), strict=True))
        padded = draws * math.ceil(len(self) * self.world / self.n)
        return iter(padded[self.rank:len(self) * self.world:self.world])


class Shard(Sampler):
    """Validation: items rank, rank + world, ... of range(n), in order, padded with ``None``
    to ceil(n / world), so every process runs the same number of batches (DDP needs it)."""

    def __init__(self, n: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.rank, self.world = n, rank, world

    def __len__(self) -> int:
        return math.ceil(self.n / self.world)

    def __iter__(self):
        items = list(range(self.rank, self.n, self.world))
        return iter(items + [None] * (len(self) - len(items)))
