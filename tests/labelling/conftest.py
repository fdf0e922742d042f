"""A small folder of unlabelled images (with a near-duplicate and a broken file) and its truth."""

import shutil

import pytest
from PIL import Image


@pytest.fixture
def photos(tmp_path, shapes_small):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(0, len(shapes_small), 2):
        Image.fromarray(shapes_small.read(i)).save(folder / f"img{i:03d}.png")
    shutil.copy(folder / "img000.png", folder / "copy_of_img000.png")  # a near-duplicate
    (folder / "broken.png").write_text("not an image")
    return folder


@pytest.fixture
def photo_truth(shapes_small):
    """The true class of each readable file of ``photos``."""
    truth = {f"img{i:03d}.png": str(shapes_small.labels[i]) for i in range(0, len(shapes_small), 2)}
    return {**truth, "copy_of_img000.png": truth["img000.png"]}
