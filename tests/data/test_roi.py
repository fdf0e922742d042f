"""Region-of-interest cropping before resizing."""

import numpy as np

from imgcls.data import ImageSpec
from imgcls.data.prepare import prepare_image
from imgcls.data.roi import crop_to_foreground, foreground_box


def bright_square_on_dark(h=120, w=160, box=(30, 90, 40, 140), noise=0, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 20, np.uint8)
    top, bottom, left, right = box
    img[top:bottom, left:right] = 200
    if noise:
        img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
    return img


def test_box_is_the_bright_object():
    assert foreground_box(bright_square_on_dark()) == (30, 90, 40, 140)
    noisy = foreground_box(bright_square_on_dark(noise=10))
    assert np.allclose(noisy, (30, 90, 40, 140), atol=2)


def test_colour_and_flat_and_tiny_foreground_keep_sensible_boxes():
    colour = np.repeat(bright_square_on_dark()[..., None], 3, axis=2)
    assert crop_to_foreground(colour).shape == (60, 100, 3)
    flat = np.full((50, 60), 7, np.uint8)
    assert crop_to_foreground(flat).shape == (50, 60)
    speck = bright_square_on_dark(box=(10, 12, 10, 12))  # 4 pixels: noise, not the object
    assert crop_to_foreground(speck).shape == speck.shape


def test_spec_roi_crops_before_resizing():
    img = bright_square_on_dark()
    plain = prepare_image(img, ImageSpec(size=32))
    cropped = prepare_image(img, ImageSpec(size=32, roi="otsu"))
    assert cropped.shape == plain.shape == (32, 32)
    assert cropped.min() > 100 and plain.min() < 50  # only the object is left
