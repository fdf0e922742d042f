"""decode_image turns what real folders hold into uint8 (H, W) or (H, W, 3), or a clear error."""

from __future__ import annotations

import struct
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import imgcls.data.decode as decode_mod
from helpers import (
    noise_image,
    write_bomb_png,
    write_empty,
    write_solid,
    write_text_as_png,
    write_truncated_jpeg,
)
from imgcls.config import PIL_DEFAULT_MAX_PIXELS
from imgcls.core.errors import ImageDecodeError, ImgclsError
from imgcls.data.decode import decode_image, is_grey, is_image_name, to_uint8_array


def _decode_error(path, **kwargs) -> ImageDecodeError:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path, **kwargs)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    return info.value


# ---------------------------------------------------------------- ordinary files


def test_rgb_png_is_exact(tmp_path):
    pixels = noise_image(5, 7)
    path = tmp_path / "rgb.png"
    Image.fromarray(pixels).save(path)
    out = decode_image(path)
    assert out.dtype == np.uint8
    assert out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, pixels)


def test_rgb_jpeg_gives_hwc_uint8_close_to_source(tmp_path):
    path = write_solid(tmp_path / "c.jpg", (200, 40, 90), size=(12, 10))
    out = decode_image(path)
    assert out.dtype == np.uint8
    assert out.shape == (10, 12, 3)
    assert np.abs(out.astype(int) - (200, 40, 90)).max() <= 6


def test_accepts_str_path(tmp_path):
    path = write_solid(tmp_path / "c.png", (1, 2, 3), size=(3, 2))
    assert decode_image(str(path)).shape == (2, 3, 3)


def test_grey_png_is_two_dimensional(tmp_path):
    pixels = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    path = tmp_path / "grey.png"
    Image.fromarray(pixels, mode="L").save(path)
    out = decode_image(path)
    assert out.dtype == np.uint8
    assert out.shape == (4, 6)
    np.testing.assert_array_equal(out, pixels)


def test_bilevel_png_maps_to_0_and_255(tmp_path):
    img = Image.new("1", (4, 1), 0)
    img.putpixel((1, 0), 1)
    img.putpixel((3, 0), 1)
    path = tmp_path / "bw.png"
    img.save(path)
    out = decode_image(path)
    assert out.shape == (1, 4)
    np.testing.assert_array_equal(out, [[0, 255, 0, 255]])


def test_exif_orientation_is_applied(tmp_path):
    # Stored 40 wide x 20 tall: left half red, right half blue.
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    assert Image.open(path).size == (40, 20)  # the file itself is not rotated

    out = decode_image(path)
    assert out.shape == (40, 20, 3)
    # Turning clockwise moves the left (red) half to the top.
    top, bottom = out[5:15].reshape(-1, 3).mean(0), out[25:35].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 50
    assert bottom[2] > 200 and bottom[0] < 50


def test_no_exif_keeps_shape(tmp_path):
    path = write_solid(tmp_path / "plain.jpg", (10, 20, 30), size=(40, 20))
    assert decode_image(path).shape == (20, 40, 3)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(path)  # full magenta + yellow = red
    assert Image.open(path).mode == "CMYK"
    out = decode_image(path)
    assert out.shape == (6, 8, 3)
    r, g, b = out.reshape(-1, 3).mean(0)
    assert r > 200 and g < 50 and b < 50


def test_sixteen_bit_grey_png_is_scaled_to_eight_bits(tmp_path):
    values = np.array([[65535, 0, 32896, 257]], dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")  # really stored as 16-bit
    out = decode_image(path)
    assert out.dtype == np.uint8
    assert out.shape == (1, 4)
    assert out[0, 0] == 255
    assert out[0, 1] == 0
    assert abs(int(out[0, 2]) - 128) <= 1
    assert out[0, 3] == 1


def test_palette_png_gives_palette_colours(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (12, 34, 56)]
    img = Image.new("P", (4, 1))
    img.putpalette([c for rgb in colours for c in rgb] + [0] * (256 - len(colours)) * 3)
    img.putdata([0, 1, 2, 3])
    path = tmp_path / "pal.png"
    img.save(path)
    assert Image.open(path).mode == "P"
    out = decode_image(path)
    assert out.shape == (1, 4, 3)
    np.testing.assert_array_equal(out[0], colours)


def test_palette_png_with_transparent_index_becomes_white(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 0, 10, 20, 30] + [0] * 254 * 3)
    img.putdata([0, 1])
    path = tmp_path / "pal_t.png"
    img.save(path, transparency=0)
    out = decode_image(path)
    np.testing.assert_array_equal(out[0], [(255, 255, 255), (10, 20, 30)])


def test_rgba_composites_over_white(tmp_path):
    img = Image.new("RGBA", (3, 1))
    img.putdata([(0, 0, 255, 0), (255, 0, 0, 255), (0, 0, 0, 128)])
    path = tmp_path / "rgba.png"
    img.save(path)
    out = decode_image(path)
    assert out.shape == (1, 3, 3)
    np.testing.assert_array_equal(out[0, 0], (255, 255, 255))  # fully transparent -> white
    np.testing.assert_array_equal(out[0, 1], (255, 0, 0))  # opaque red stays red
    assert np.all(np.abs(out[0, 2].astype(int) - 127) <= 1)  # half black over white -> mid grey


def test_la_keeps_grey_value_and_whitens_transparent(tmp_path):
    img = Image.new("LA", (2, 1))
    img.putdata([(100, 255), (0, 0)])
    path = tmp_path / "la.png"
    img.save(path)
    out = decode_image(path)
    assert out.dtype == np.uint8
    assert out.ndim in (2, 3)
    if out.ndim == 3:
        assert out.shape == (1, 2, 3)
        assert is_grey(out)
        out = out[..., 0]
    np.testing.assert_array_equal(out, [[100, 255]])


def test_animated_gif_gives_first_frame(tmp_path):
    first = Image.new("RGB", (6, 5), (255, 0, 0))
    second = Image.new("RGB", (6, 5), (0, 0, 255))
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[second], duration=50)
    assert Image.open(path).n_frames == 2
    out = decode_image(path)
    assert out.shape == (5, 6, 3)
    assert np.all(out == (255, 0, 0))


def test_draft_size_decodes_jpeg_at_reduced_scale(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(noise_image(64, 64)).save(path)
    assert decode_image(path).shape == (64, 64, 3)
    small = decode_image(path, draft_size=16)
    assert small.shape == (16, 16, 3)  # the largest reduction that still covers 16
    assert decode_image(path, draft_size=40).shape == (64, 64, 3)  # cannot halve below 40


def test_draft_size_is_ignored_for_png(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(noise_image(64, 64)).save(path)
    assert decode_image(path, draft_size=16).shape == (64, 64, 3)


# ---------------------------------------------------------------- to_uint8_array modes


def test_float_image_in_unit_range_is_scaled():
    img = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F")
    np.testing.assert_array_equal(to_uint8_array(img), [[0, 128, 255]])


def test_float_image_in_byte_range_is_kept():
    img = Image.fromarray(np.array([[0.0, 100.0, 255.0]], dtype=np.float32), mode="F")
    np.testing.assert_array_equal(to_uint8_array(img), [[0, 100, 255]])


def test_float_image_nan_becomes_zero():
    img = Image.fromarray(np.array([[np.nan, 1.0]], dtype=np.float32), mode="F")
    np.testing.assert_array_equal(to_uint8_array(img), [[0, 255]])


# ---------------------------------------------------------------- bad files


def test_truncated_jpeg_raises(tmp_path):
    path = write_truncated_jpeg(tmp_path / "cut.jpg")
    err = _decode_error(path)
    assert "truncated" in err.reason or "decode" in err.reason
    assert isinstance(err, ImgclsError)


def test_empty_file_raises(tmp_path):
    path = write_empty(tmp_path / "empty.jpg")
    err = _decode_error(path)
    assert "empty" in err.reason


def test_text_file_named_png_raises(tmp_path):
    path = write_text_as_png(tmp_path / "x.png")
    err = _decode_error(path)
    assert "text" in err.reason


def test_binary_garbage_raises_unknown_format(tmp_path):
    path = tmp_path / "junk.png"
    path.write_bytes(bytes(range(256)) * 4)
    err = _decode_error(path)
    assert "not an image" in err.reason
    assert "text" not in err.reason


def test_missing_file_raises(tmp_path):
    err = _decode_error(tmp_path / "nope.png")
    assert "cannot read" in err.reason


# ---------------------------------------------------------------- decompression bomb guard


@pytest.fixture(scope="module")
def bomb_png(tmp_path_factory) -> Path:
    return write_bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png")


def test_bomb_writer_makes_a_valid_png(tmp_path):
    path = write_bomb_png(tmp_path / "small.png", width=30, height=20)
    out = decode_image(path)
    assert out.shape == (20, 30)
    assert not out.any()


def test_bomb_png_is_rejected_by_default_limit(bomb_png):
    assert bomb_png.stat().st_size < 5_000_000  # cheap to keep around
    assert struct.unpack(">II", bomb_png.read_bytes()[16:24]) == (20_000, 20_000)
    err = _decode_error(bomb_png)
    assert "decompression bomb" in err.reason
    assert "max_image_pixels" in err.reason  # tells the user what to change


def test_small_limit_rejects_ordinary_image(tmp_path):
    path = write_solid(tmp_path / "20.png", (1, 2, 3), size=(20, 20))
    err = _decode_error(path, max_pixels=100)
    assert "decompression bomb" in err.reason


def test_limit_between_one_and_two_times_also_rejects(tmp_path):
    # 144 pixels: above the limit but under twice it, where Pillow only warns.
    path = write_solid(tmp_path / "12.png", 7, size=(12, 12), mode="L")
    err = _decode_error(path, max_pixels=100)
    assert "decompression bomb" in err.reason


def test_limit_equal_to_pixel_count_is_accepted(tmp_path):
    path = write_solid(tmp_path / "20.png", (1, 2, 3), size=(20, 20))
    assert decode_image(path, max_pixels=400).shape == (20, 20, 3)


def test_no_limit_accepts_image(tmp_path):
    path = write_solid(tmp_path / "20.png", (1, 2, 3), size=(20, 20))
    out = decode_image(path, max_pixels=None)
    assert out.shape == (20, 20, 3)
    assert np.all(out == (1, 2, 3))


def test_global_pillow_state_is_restored(tmp_path):
    path = write_solid(tmp_path / "20.png", (1, 2, 3), size=(20, 20))
    before_limit = Image.MAX_IMAGE_PIXELS
    before_filters = list(warnings.filters)
    decode_image(path, max_pixels=None)
    with pytest.raises(ImageDecodeError):
        decode_image(path, max_pixels=100)
    assert before_limit == Image.MAX_IMAGE_PIXELS
    assert warnings.filters == before_filters


def test_default_limit_matches_pillow():
    assert PIL_DEFAULT_MAX_PIXELS == 89_478_485


def test_overlapping_threads_restore_global_limit(tmp_path, monkeypatch):
    """Force the interleaving A-enter, B-enter, A-exit, B-exit that a thread pool can produce."""
    path = write_solid(tmp_path / "a.png", (1, 2, 3), size=(4, 4))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # undo leaks later
    before = Image.MAX_IMAGE_PIXELS
    a_inside, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()
    real = decode_mod.to_uint8_array

    def paused(img):
        if threading.current_thread().name == "A":
            a_inside.set()
            b_inside.wait(5)
        else:
            b_inside.set()
            a_done.wait(5)
        return real(img)

    monkeypatch.setattr(decode_mod, "to_uint8_array", paused)

    def run_a():
        decode_image(path, max_pixels=1000)
        a_done.set()

    def run_b():
        a_inside.wait(5)
        decode_image(path, max_pixels=1000)

    with warnings.catch_warnings():
        threads = [
            threading.Thread(target=run_a, name="A"),
            threading.Thread(target=run_b, name="B"),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        leaked = Image.MAX_IMAGE_PIXELS
    assert a_done.is_set()
    assert leaked == before


# ---------------------------------------------------------------- small helpers


def test_is_grey():
    grey = np.zeros((3, 4), dtype=np.uint8)
    assert is_grey(grey)
    rgb_equal = np.repeat(np.arange(12, dtype=np.uint8).reshape(3, 4)[..., None], 3, axis=2)
    assert is_grey(rgb_equal)
    colour = rgb_equal.copy()
    colour[1, 2, 1] += 1
    assert not is_grey(colour)
    colour = rgb_equal.copy()
    colour[0, 0, 2] += 1
    assert not is_grey(colour)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jpg", True),
        ("a.JPG", True),
        ("a.jpeg", True),
        ("dir/b.png", True),
        ("c.tiff", True),
        ("c.tif", True),
        ("d.webp", True),
        ("e.bmp", True),
        ("f.gif", True),
        ("notes.txt", False),
        ("labels.csv", False),
        ("png", False),
        ("noext", False),
        ("archive.png.zip", False),
        ("folder.png/readme", False),
    ],
)
def test_is_image_name(name, expected):
    assert is_image_name(name) is expected
    assert is_image_name(Path(name)) is expected


def test_postscript_never_reaches_a_pillow_reader(tmp_path):
    """EPS would make Pillow run Ghostscript; only raster readers are offered a file."""
    eps = tmp_path / "cat.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ImageDecodeError) as info:
        decode_image(eps)
    assert info.value.kind == "not_image"
    assert "Ghostscript" not in str(info.value)


PILLOW_FAILURES = [OSError("broken data stream"), ValueError("bad mode"), TypeError("Missing dimensions"),
                   SyntaxError("not a TIFF file"), NotImplementedError("unsupported compression"),
                   struct.error("unpack requires a buffer"), EOFError(), MemoryError(),
                   Image.DecompressionBombError("too big"), KeyError(0x0112)]


@pytest.mark.parametrize("step", ["open", "load", "seek", "n_frames", "getexif", "convert"])
@pytest.mark.parametrize("failure", PILLOW_FAILURES, ids=lambda e: type(e).__name__)
def test_no_exception_of_any_decoding_step_escapes(tmp_path, monkeypatch, step, failure):
    """Whatever Pillow raises, from whichever step, the file becomes a reason to skip it."""
    path = tmp_path / "cell.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)

    def fail(*args, **kwargs):
        raise failure

    if step == "open":
        monkeypatch.setattr(decode_mod, "_open_unchecked", fail)
    elif step == "n_frames":
        monkeypatch.setattr(Image.Image, "n_frames", property(fail), raising=False)
    elif step == "convert":
        monkeypatch.setattr(decode_mod, "to_uint8_array", fail)
    else:
        from PIL import ImageFile, PngImagePlugin

        target = {"load": ImageFile.ImageFile, "seek": PngImagePlugin.PngImageFile,
                  "getexif": Image.Image}[step]
        monkeypatch.setattr(target, step, fail)
        if step == "seek":  # what ImageOps.exif_transpose and frame counting call
            monkeypatch.setattr(Image.Image, "n_frames", property(lambda im: (im.seek(1), 2)[1]),
                                raising=False)
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(path)
    assert caught.value.reason and str(path) in str(caught.value)


def test_a_tiff_whose_frames_cannot_be_counted_is_a_reason(tmp_path):
    from helpers import write_tiff_without_second_frame_size

    path = write_tiff_without_second_frame_size(tmp_path / "scan.tif")
    with pytest.raises(ImageDecodeError, match="Missing dimensions"):
        decode_image(path)


def test_a_decode_that_never_ends_is_cut_off(tmp_path, monkeypatch):
    import time

    path = tmp_path / "cell.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    release = threading.Event()
    monkeypatch.setattr(decode_mod, "to_uint8_array", lambda img: release.wait(30))  # a decoder stuck
    started = time.perf_counter()
    with pytest.raises(ImageDecodeError, match="longer than 0.3 s"):
        decode_image(path, timeout=0.3)
    assert time.perf_counter() - started < 5
    release.set()
