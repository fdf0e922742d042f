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


# --- the methods beyond otsu, the given masks, and every command that uses them -------------

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from imgcls.core.errors import ConfigError, ImageDecodeError  # noqa: E402
from imgcls.data.roi import (  # noqa: E402
    AUTOMATIC,
    apply_region,
    crop_to_region,
    mask_box,
    parse_roi,
    preview_samples,
    region_mask,
)


def object_on_texture(seed=0, size=160, side=50, dark=False):
    """A smooth square object on a busy random texture; returns the image and the true box."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(90, 25, (size, size)), 0, 255).astype(np.uint8)
    top, left = rng.integers(5, size - side - 5, 2)
    img[top:top + side, left:left + side] = 30 if dark else 220
    return img, (int(top), int(top + side), int(left), int(left + side))


def iou(a, b):
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[2], b[2]))
    area = lambda r: (r[1] - r[0]) * (r[3] - r[2])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_roi_text_is_method_and_mode():
    assert parse_roi("grabcut") == ("grabcut", "crop")
    assert parse_roi("mask:both") == ("mask", "both")
    assert parse_roi("lcc:") == ("lcc", "crop")
    for bad in ("grabcut:sideways", "magic"):
        with pytest.raises(ConfigError, match="METHOD"):
            parse_roi(bad)


@pytest.mark.parametrize("method", [m for m in AUTOMATIC if m != "otsu"])
@pytest.mark.parametrize("dark", [False, True])
def test_each_method_finds_a_plain_object_on_a_busy_background(method, dark):
    img, box = object_on_texture(seed=3, dark=dark)
    region = region_mask(img, method)
    assert region is not None and region.shape == img.shape
    assert iou(mask_box(region), box) > 0.7, (method, mask_box(region), box)


@pytest.mark.parametrize("method", AUTOMATIC)
def test_flat_and_colour_images_never_fail(method):
    flat = np.full((40, 50), 9, np.uint8)
    assert crop_to_region(flat, method).shape == flat.shape  # nothing found: the whole image
    colour = np.repeat(object_on_texture(seed=1)[0][..., None], 3, axis=2)
    assert crop_to_region(colour, method).ndim == 3


def test_large_images_are_segmented_on_a_small_copy_and_scaled_back():
    img, (top, bottom, left, right) = object_on_texture(seed=2, size=160, side=50)
    big = np.kron(img, np.ones((4, 4), np.uint8))  # 640 px: above the working side
    region = region_mask(big, "lcc")
    assert region.shape == big.shape
    assert iou(mask_box(region), (4 * top, 4 * bottom, 4 * left, 4 * right)) > 0.8


def test_modes_crop_blank_both():
    img, (top, bottom, left, right) = object_on_texture(seed=4)
    region = np.zeros(img.shape, bool)
    region[top:bottom, left:right] = True
    blank = apply_region(img, region, "blank")
    assert blank.shape == img.shape and blank[~region].max() == 0
    assert np.array_equal(blank[region], img[region])
    crop = apply_region(img, region, "crop")
    assert bottom - top <= crop.shape[0] <= (bottom - top) * 1.2
    both = apply_region(img, region, "both")
    assert both.shape == crop.shape and both.min() == 0 and crop.min() > 0


def test_a_given_mask_is_used_and_refused_when_absent_or_wrong():
    img, (top, bottom, left, right) = object_on_texture(seed=5)
    mask = np.zeros(img.shape, np.uint8)
    mask[top:bottom, left:right] = 3  # a label image: any non-zero pixel is the object
    got = prepare_image(img, ImageSpec(size=16, roi="mask:both"), mask)
    assert got.shape == (16, 16) and got[2:-2, 2:-2].min() > 150  # the object, inside a blank margin
    assert got[0, 0] < 100
    with pytest.raises(ImageDecodeError, match="has none"):
        prepare_image(img, ImageSpec(size=16, roi="mask"))
    with pytest.raises(ImageDecodeError, match="must match"):
        prepare_image(img, ImageSpec(size=16, roi="mask"), mask[:-1])
    assert prepare_image(img, ImageSpec(size=16, roi="mask"), np.zeros_like(mask)).shape == (16, 16)


def test_preview_samples_show_region_and_crop():
    frames = [object_on_texture(seed=s) for s in range(4)]
    samples = preview_samples(lambda i: (frames[i][0], None), len(frames), "lcc", limit=3)
    assert len(samples) == 3
    image, region, crop = samples[0]
    assert region is not None and crop.shape[0] < image.shape[0]


@pytest.fixture
def masked_manifest(tmp_path):
    """A manifest with a mask column: the class is the object's texture (stripes or dots),
    the frame around it random noise that carries no class."""
    rng = np.random.default_rng(0)
    rows = []
    (tmp_path / "img").mkdir()
    for n in range(48):
        label = "stripes" if n % 2 else "dots"
        img = rng.integers(0, 255, (96, 96)).astype(np.uint8)
        side = 32
        top, left = rng.integers(0, 96 - side, 2)
        patch = np.zeros((side, side), np.uint8)
        if label == "stripes":
            patch[:, ::4] = 255
        else:
            patch[::6, ::6] = 255
        img[top:top + side, left:left + side] = patch
        mask = np.zeros_like(img)
        mask[top:top + side, left:left + side] = 255
        Image.fromarray(img).save(tmp_path / "img" / f"{n}.png")
        Image.fromarray(mask).save(tmp_path / "img" / f"{n}_mask.png")
        rows.append({"path": f"img/{n}.png", "label": label, "mask": f"img/{n}_mask.png"})
    rows[0]["mask"] = "img/missing_mask.png"
    pd.DataFrame(rows).to_csv(tmp_path / "data.csv", index=False)
    return tmp_path / "data.csv"


def test_mask_roi_trains_predicts_and_checks(masked_manifest, tmp_path):
    import imgcls

    run = imgcls.train(str(masked_manifest), model="logistic_regression", features="pixels",
                       out=tmp_path / "run", progress=False,
                       overrides=["model.roi=mask", "model.image_size=16", "cache=false"])
    assert "Region of interest" in (tmp_path / "run" / "report.html").read_text()
    assert run.metrics["test"]["accuracy"] == 1.0  # the texture inside the mask decides
    # the row whose mask is missing is skipped with the mask's name, never a crash
    table = imgcls.predict(tmp_path / "run", [str(masked_manifest)], progress=False)
    bad = table[table["path"].astype(str).str.endswith("img/0.png")]
    assert len(bad) == 1 and "mask" in str(bad["error"].iloc[0])
    assert (table["error"].fillna("") == "").sum() == 47, table["error"].unique()
    report = imgcls.check(str(masked_manifest), out=tmp_path / "check", progress=False,
                          overrides=["check.roi=mask", "check.labels=false"])
    assert [f.path for f in report.by_check("bad_mask")] == ["img/0.png"]
    assert report.summary["roi"]["sampled"] > 0
    assert "Region of interest: mask" in (tmp_path / "check" / "check.html").read_text()
    assert "preview" not in (tmp_path / "check" / "check.json").read_text()
