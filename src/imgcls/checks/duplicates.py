"""Exact duplicates (content hash) and near duplicates (perceptual hash), without all pairs.

Near duplicates use multi-index hashing: split each 64-bit hash into ``threshold + 1``
chunks; two hashes within ``threshold`` bits agree exactly on at least one chunk
(pigeonhole), so only images sharing a chunk value are compared.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = defaultdict(list)
        for i in range(len(self.parent)):
            out[self.find(i)].append(i)
        return [g for g in out.values() if len(g) > 1]


def exact_groups(hashes: list[str | None]) -> list[list[int]]:
    """Rows sharing a content hash (None = unreadable, never grouped)."""
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        if h:
            by_hash[h].append(i)
    return sorted((g for g in by_hash.values() if len(g) > 1), key=lambda g: g[0])


def _chunks(threshold: int, bits: int = 64) -> list[tuple[int, int]]:
    n = threshold + 1
    edges = np.linspace(0, bits, n + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def near_pairs(phashes: list[str | None], threshold: int) -> list[tuple[int, int]]:
    """Pairs of rows whose 64-bit perceptual hashes differ in at most ``threshold`` bits."""
    rows = [i for i, h in enumerate(phashes) if h]
    if len(rows) < 2 or threshold < 0:
        return []
    values = np.array([int(phashes[i], 16) for i in rows], dtype=np.uint64)
    found: set[tuple[int, int]] = set()
    for lo, hi in _chunks(min(threshold, 63)):
        mask = np.uint64((1 << (hi - lo)) - 1)
        keys = (values >> np.uint64(lo)) & mask
        order = np.argsort(keys, kind="stable")
        bounds = np.flatnonzero(np.diff(keys[order])) + 1
        for bucket in np.split(order, bounds):
            if len(bucket) > 1:
                found.update(_close_in_bucket(values, bucket, threshold))
    return sorted((rows[a], rows[b]) for a, b in found)


def _close_in_bucket(values: np.ndarray, bucket: np.ndarray, threshold: int):
    sub = values[bucket]
    distances = np.bitwise_count(sub[:, None] ^ sub[None, :])
    a, b = np.nonzero(np.triu(distances <= threshold, k=1))
    return zip(bucket[a].tolist(), bucket[b].tolist(), strict=True)


class ContentMatch:
    """Second opinion on a pHash match. pHash sees coarse grey structure, which images of one
    kind share (busbars of solar cells, a red and a blue square in one place), so a match
    must also have (1) correlated thumbnails once the dataset's mean thumbnail is removed,
    and (2) close mean colours."""

    def __init__(self, thumbs: np.ndarray, colours: list, min_correlation: float,
                 colour_tolerance: float = 0.1) -> None:
        self.thumbs = thumbs.astype(np.float32)
        valid = self.thumbs.reshape(len(thumbs), -1).any(axis=1)
        self.mean = self.thumbs[valid].mean(axis=0) if valid.any() else 0.0
        self.colours = colours
        self.min_correlation = min_correlation
        self.colour_tolerance = colour_tolerance

    def _residual(self, i: int) -> np.ndarray:
        r = self.thumbs[i] - self.mean
        r = r - r.mean()
        return r / (np.linalg.norm(r) + 1e-6)

    def __call__(self, a: int, b: int) -> bool:
        colour = np.abs(np.asarray(self.colours[a]) - np.asarray(self.colours[b])).max()
        if colour > self.colour_tolerance:
            return False
        return float((self._residual(a) * self._residual(b)).sum()) >= self.min_correlation


def near_groups(phashes: list[str | None], threshold: int, exact: list[list[int]],
                verify=None) -> list[list[int]]:
    """Connected groups of near pairs (kept when ``verify(a, b)`` agrees), leaving out
    groups that are one exact-duplicate set."""
    uf = _UnionFind(len(phashes))
    for a, b in near_pairs(phashes, threshold):
        if verify is None or verify(a, b):
            uf.union(a, b)
    exact_sets = {frozenset(g) for g in exact}
    return sorted((g for g in uf.groups() if frozenset(g) not in exact_sets), key=lambda g: g[0])
