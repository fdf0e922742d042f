"""Tiles of large images: the grid, the background filter, lazy tiled-TIFF reading, bags."""

import numpy as np
import pytest

from imgcls.core.errors import ImageDecodeError
from imgcls.data import ImageSpec
from imgcls.data.decode import decode_image
from imgcls.data.prepare import prepare_image, prepare_images
from imgcls.data.tiles import (
    TILED,
    ArrayTiles,
    TiffTiles,
    bag_mask,
    heatmap,
    tile_bag,
    tile_boxes,
    tile_layout,
)

tifffile = pytest.importorskip("tifffile")


def spec(**options):
    return ImageSpec(**{"size": 16, "channels": 3, "tiles": 64, "max_tiles": 8, **options})


def glass_with_tissue(h=256, w=384, patches=((64, 128),), seed=0):
    """A bright, flat 'glass' background with textured squares of 'tissue' (64 px) at ``patches``."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 235, np.uint8)
    for top, left in patches:
        img[top:top + 64, left:left + 64] = rng.integers(40, 160, (64, 64, 3))
    return img


def test_the_grid_covers_the_image_and_ends_at_its_edges():
    boxes = tile_boxes(300, 200, 128)
    assert boxes[0] == (0, 0, 128, 128) and boxes[-1] == (172, 72, 300, 200)
    covered = np.zeros((300, 200), bool)
    for top, left, bottom, right in boxes:
        assert bottom - top == 128 and right - left == 128
        covered[top:bottom, left:right] = True
    assert covered.all()
    assert len(tile_boxes(256, 256, 128, 64)) == 9  # half-tile stride: overlapping tiles
    assert tile_boxes(50, 40, 128) == [(0, 0, 50, 40)]  # smaller than a tile: one box


def test_background_tiles_are_skipped_and_the_rest_kept_in_reading_order():
    img = glass_with_tissue(patches=((64, 128), (128, 256)))
    boxes = tile_layout(ArrayTiles(img), spec())
    assert boxes == [(64, 128, 128, 192), (128, 256, 192, 320)]
    bag, kept = tile_bag(img, spec())
    assert bag.shape == (8, 16, 16, 3) and kept == boxes
    assert bag_mask(bag[None])[0].tolist() == [True, True] + [False] * 6  # zero tiles pad the bag
    empty = np.full((128, 128, 3), 235, np.uint8)
    assert len(tile_layout(ArrayTiles(empty), spec())) == 1  # never an empty bag


def test_more_foreground_tiles_than_the_bag_holds_keep_the_fullest():
    img = glass_with_tissue(patches=((0, 0), (0, 64), (64, 0), (64, 64), (128, 128)))
    img[0:64, 0:32] = 235  # the first tile is half glass now
    boxes = tile_layout(ArrayTiles(img), spec(max_tiles=4))
    assert (0, 0, 64, 64) not in boxes and len(boxes) == 4
    assert boxes == sorted(boxes)


def test_a_tiled_spec_prepares_bags_of_grey_and_colour_images():
    grey = glass_with_tissue()[..., 0]
    bags = prepare_images([grey, glass_with_tissue(seed=1)], spec())
    assert bags.shape == (2, 8, 16, 16, 3) and bags.dtype == np.uint8


def tiled_tiff(path, img, tile=64, pyramid=False):
    with tifffile.TiffWriter(path) as tif:
        tif.write(img, tile=(tile, tile), subifds=1 if pyramid else 0, compression="zlib")
        if pyramid:
            tif.write(img[::4, ::4], tile=(tile, tile), subfiletype=1, compression="zlib")
    return path


def test_tiled_tiff_reads_exactly_the_boxes_asked_for(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (300, 420, 3)).astype(np.uint8)
    source = decode_image(tiled_tiff(tmp_path / "big.tif", img), draft_size=TILED)
    assert isinstance(source, TiffTiles) and source.shape == (300, 420)
    for box in [(0, 0, 64, 64), (10, 50, 140, 200), (236, 356, 300, 420)]:
        top, left, bottom, right = box
        np.testing.assert_array_equal(source.read(box), img[top:bottom, left:right])
    source.close()


def test_only_the_kept_tiles_are_decoded_at_full_resolution(tmp_path):
    img = glass_with_tissue(h=512, w=512, patches=((64, 128),))
    path = tiled_tiff(tmp_path / "slide.tif", img, pyramid=True)
    source = decode_image(path, draft_size=TILED)
    bag = prepare_image(source, spec())
    assert bag_mask(bag[None]).sum() == 1
    assert len(source.decoded) == 1  # the thumbnail came from the pyramid; one of 64 tiles was decoded
    flat = decode_image(tiled_tiff(tmp_path / "flat.tif", img), draft_size=TILED)  # no pyramid
    np.testing.assert_array_equal(prepare_image(flat, spec()), bag)
    assert sorted(flat.decoded) == list(range(64))  # streamed once; the kept tile is not decoded again


def test_the_pixel_limit_applies_to_what_is_decoded_and_points_to_tiles(tmp_path):
    img = glass_with_tissue(h=512, w=512, patches=((64, 128),))
    path = tiled_tiff(tmp_path / "slide.tif", img, pyramid=True)
    with pytest.raises(ImageDecodeError, match="data.tiles=SIZE") as caught:
        decode_image(path, max_pixels=100_000)
    assert caught.value.kind == "too_many_pixels"
    bag = prepare_image(decode_image(path, max_pixels=100_000, draft_size=TILED), spec())
    assert bag_mask(bag[None]).sum() == 1
    flat = tiled_tiff(tmp_path / "flat.tif", img)  # streaming a huge flat TIFF is refused with the way out
    with pytest.raises(ImageDecodeError, match="pyramid"):
        prepare_image(decode_image(flat, max_pixels=1000, draft_size=TILED), spec())


def test_heatmap_paints_each_tile_with_its_score():
    boxes = [(0, 0, 64, 64), (0, 64, 64, 128)]
    heat = heatmap((128, 128), boxes, np.array([0.2, 0.8]))
    assert heat.shape == (128, 128)
    assert heat[10, 10] == pytest.approx(0.2) and heat[10, 100] == pytest.approx(0.8)
    assert np.isnan(heat[100, 10])


def test_check_inspects_a_slide_over_the_pixel_limit_on_its_thumbnail(tmp_path):
    from PIL import Image

    import imgcls

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for n in range(3):
            grey = rng.integers(0, 255, (64, 64), dtype=np.uint8)
            Image.fromarray(grey).save(tmp_path / "data" / label / f"{n}.png")
    tiled_tiff(tmp_path / "data" / "a" / "slide.tif", glass_with_tissue(h=512, w=512), pyramid=True)
    report = imgcls.check(str(tmp_path / "data"), out=tmp_path / "check", progress=False,
                          overrides=["data.max_image_pixels=100000", "check.labels=false"])
    assert not [f for f in report.issues if f.severity == "error"]
    [note] = report.by_check("large_tiled")
    assert note.path == "a/slide.tif" and "data.tiles" in note.detail
