"""Fuzzing the decoder: thousands of mutated PNG, JPEG, TIFF, GIF, WebP and BMP files. Every
one must decode to a uint8 array or be refused with ImageDecodeError (a skipped file with its
reason): no other exception may escape, and no case may run long (decoders that loop are cut
off by the per-file time limit)."""

import io
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgcls.core.errors import ImageDecodeError
from imgcls.data.decode import decode_with_info

CASES_PER_FORMAT = 500
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on corrupt metadata
SLOW_CASE_SECONDS = 2.0


def _seed_files() -> dict[str, bytes]:
    """Small valid files of each format, multi-frame where the format has frames."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8))
    grey = Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8))
    out = {}
    for fmt, image, options in (("PNG", rgb, {}), ("JPEG", rgb, {"quality": 80}), ("BMP", grey, {}),
                                ("WEBP", rgb, {"quality": 80}),
                                ("TIFF", rgb, {"save_all": True, "append_images": [grey.convert("RGB")]}),
                                ("GIF", grey.convert("P"),
                                 {"save_all": True, "append_images": [grey.convert("P")]})):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        out[fmt] = buffer.getvalue()
    return out


SEEDS = _seed_files()


@st.composite
def mutated(draw, fmt: str) -> bytes:
    """A seed file with a few byte flips, insertions, deletions, a truncation or a repeated span."""
    data = bytearray(SEEDS[fmt])
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "repeat"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[at] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[at:]
        else:
            span = data[at:at + draw(st.integers(1, 32))]
            data[at:at] = span * draw(st.integers(1, 8))
    return bytes(data)


def decode_or_reason(data: bytes) -> np.ndarray | str:
    try:
        return decode_with_info("fuzz.bin", data=data)[0]
    except ImageDecodeError as exc:
        return exc.reason


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_no_exception_escapes_and_no_case_hangs(fmt):
    slowest = [0.0]

    @settings(max_examples=CASES_PER_FORMAT, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(mutated(fmt))
    def case(data):
        started = time.perf_counter()
        result = decode_or_reason(data)  # any other exception fails the test with the input
        slowest[0] = max(slowest[0], time.perf_counter() - started)
        if isinstance(result, str):
            assert result
        else:
            assert result.dtype == np.uint8 and result.ndim in (2, 3)

    case()
    assert slowest[0] < SLOW_CASE_SECONDS


def test_the_seeds_decode():
    for fmt, data in SEEDS.items():
        assert isinstance(decode_or_reason(data), np.ndarray), fmt
