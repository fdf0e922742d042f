"""Built-in datasets: ``digits``, ``shapes`` and ``shapes_multi`` (synthetic), ``elpv`` and
``elpv4`` (solar cells).

Example:
    >>> sorted(DATASETS.names())
    ['digits', 'elpv', 'elpv4', 'shapes', 'shapes_multi']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.registry import Registry
from .dataset import SEPARATOR, Dataset


@dataclass(frozen=True)
class BuiltinDataset:
    description: str
    load: Callable[[], Dataset]
    available: Callable[[], bool] = lambda: True


DATASETS: Registry[BuiltinDataset] = Registry("dataset")


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    table = pd.DataFrame(
        {"path": [f"digits/{i:04d}" for i in range(len(images))],
         "label": bunch.target.astype(str)}
    )
    return Dataset("digits", table, arrays=list(images),
                   description=DATASETS.get("digits").description)


SHAPE_CLASSES = ("circle", "square", "triangle")


def _background(rng, size: int) -> np.ndarray:
    img = np.full((size, size, 3), rng.integers(0, 120, size=3), dtype=np.uint8)
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


def _draw(img: np.ndarray, label: str, rng, box: tuple[int, int, int]) -> None:
    """A filled ``label`` shape of random colour and radius inside the square (x0, y0, side)."""
    import cv2

    x0, y0, side = box
    colour = tuple(int(c) for c in rng.integers(130, 256, size=3))
    r = int(rng.integers(side // 6, side // 3))
    cx, cy = (int(v) for v in rng.integers(r + 1, side - r - 1, size=2) + (x0, y0))
    if label == "circle":
        cv2.circle(img, (cx, cy), r, colour, thickness=-1)
    elif label == "square":
        cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), colour, thickness=-1)
    else:
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(img, [pts], colour)


def make_shapes(n_per_class: int = 100, size: int = 64, seed: int = 0) -> Dataset:
    """A deterministic synthetic colour dataset: one filled shape per image on a noisy background."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in SHAPE_CLASSES:
        for _ in range(n_per_class):
            img = _background(rng, size)
            _draw(img, label, rng, (0, 0, size))
            images.append(img)
            labels.append(label)
    table = pd.DataFrame({"path": [f"shapes/{i:04d}" for i in range(len(images))],
                          "label": labels})
    return Dataset("shapes", table, arrays=images, description="synthetic shapes")


def make_multi_shapes(n: int = 300, size: int = 64, seed: int = 0) -> Dataset:
    """A multi-label synthetic set: each of circle, square and triangle is drawn, in its own
    random quadrant, with probability 1/2 (so an image has 0 to 3 labels)."""
    rng = np.random.default_rng(seed)
    half = size // 2
    images, labels = [], []
    for _ in range(n):
        img = _background(rng, size)
        present = [label for label in SHAPE_CLASSES if rng.random() < 0.5]
        for label, q in zip(present, rng.permutation(4), strict=False):
            _draw(img, label, rng, (int(q % 2) * half, int(q // 2) * half, half))
        images.append(img)
        labels.append(SEPARATOR.join(present))
    table = pd.DataFrame({"path": [f"shapes_multi/{i:04d}" for i in range(n)], "label": labels})
    return Dataset("shapes_multi", table, arrays=images, description="synthetic shapes, several per image",
                   multilabel=True)


def write_image_folder(ds: Dataset, root: Path, fmt: str = "png") -> Path:
    """Write an in-memory dataset as a class-per-folder tree (for demos and tests)."""
    from PIL import Image

    root = Path(root)
    for i, (label, name) in enumerate(zip(ds.labels, ds.paths, strict=True)):
        target = root / label / f"{Path(name).name}.{fmt}"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ds.read(i)).save(target)
    return root


def _elpv_dir() -> Path:
    try:
        import elpv_dataset
    except ImportError:
        raise DataError(
            "The ELPV dataset needs the 'elpv-dataset' package: pip install elpv-dataset "
            "(or pip install 'imgcls[bench]')."
        ) from None
    return Path(elpv_dataset.__file__).parent / "data"


def elpv_table() -> pd.DataFrame:
    """labels.csv of the elpv-dataset package with the reference 75/25 split as 'split'."""
    from sklearn.model_selection import train_test_split

    data_dir = _elpv_dir()
    table = pd.read_csv(data_dir / "labels.csv", sep=r"\s+", header=None,
                        names=["path", "probability", "type"])
    y4 = np.rint(table["probability"].to_numpy() * 3).astype(int)
    strata = [f"{a}_{b}" for a, b in zip(y4, table["type"], strict=True)]
    _, test = train_test_split(np.arange(len(table)), test_size=0.25, random_state=0,
                               stratify=strata)
    table["split"] = "train"
    table.loc[test, "split"] = "test"
    table["defect_level"] = y4
    return table


ELPV4_LABELS = ("0", "0.33", "0.67", "1")


def _load_elpv(four_levels: bool) -> Dataset:
    table = elpv_table()
    if four_levels:
        table["label"] = [ELPV4_LABELS[v] for v in table["defect_level"]]
    else:
        table["label"] = np.where(table["probability"] >= 0.5, "defective", "functional")
    table = table[["path", "label", "split", "type", "probability"]]
    name = "elpv4" if four_levels else "elpv"
    return Dataset(name, table, root=_elpv_dir(), description=DATASETS.get(name).description,
                   order=ELPV4_LABELS if four_levels else None)


def _elpv_installed() -> bool:
    try:
        _elpv_dir()
    except DataError:
        return False
    return True


DATASETS.add("digits", BuiltinDataset(
    "scikit-learn handwritten digits: 1,797 grey 8x8 images, 10 classes", _load_digits))
DATASETS.add("shapes", BuiltinDataset(
    "synthetic circles, squares and triangles: 300 colour 64x64 images", make_shapes))
DATASETS.add("shapes_multi", BuiltinDataset(
    "synthetic multi-label: 0-3 of circle, square, triangle per colour 64x64 image, 300 images",
    make_multi_shapes))
DATASETS.add("elpv", BuiltinDataset(
    "ELPV solar cells, 2,624 grey 300x300: functional vs defective (p>=0.5); "
    "metadata 'type' mono/poly; reference 75/25 split (package elpv-dataset)",
    lambda: _load_elpv(False), _elpv_installed))
DATASETS.add("elpv4", BuiltinDataset(
    "ELPV solar cells, 4 ordered defect-probability grades 0, 0.33, 0.67, 1; same split",
    lambda: _load_elpv(True), _elpv_installed))


def list_datasets() -> list[dict]:
    """Name, description and availability of every built-in dataset."""
    return [{"name": n, "description": DATASETS.get(n).description,
             "available": DATASETS.get(n).available()} for n in DATASETS.names()]
