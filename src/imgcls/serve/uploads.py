"""Images out of a request: multipart files or base64 JSON, then decoded and prepared in a thread.

Nothing here trusts the client: the format is sniffed from the bytes (never the
Content-Type of a part or the file name), the pixel count is checked from the header
before decoding, and each problem becomes an :class:`ErrorDetail` that names the file.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.errors import ImageDecodeError
from ..data.decode import decode_with_info
from ..data.prepare import prepare_image
from ..data.video import CLIP
from ..deploy.drift import image_stats
from ..deploy.predictors import Predictor
from .errors import DECODE_STATUS, ApiError
from .schemas import ErrorDetail, PredictJSONRequest

FILE_FIELDS = ("files", "file")
_STATUS_OF_CODE = {code: status for status, code in DECODE_STATUS.values()} | {"bad_base64": 422}
_DATA_URL = re.compile(r"^data:[\w.+/-]*(;[\w=.+-]+)*;base64,", re.IGNORECASE)
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class Upload:
    """One image as received: its (cleaned) name and bytes, or why it has none."""

    filename: str
    data: bytes = b""
    error: ErrorDetail | None = None


async def read_uploads(request: Request, max_images: int) -> tuple[list[Upload], int | None]:
    """The request's images and the ``top_k`` its JSON body asks for (None for multipart)."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media == "multipart/form-data":
        return await _read_multipart(request, max_images), None
    if media == "application/json" or media.endswith("+json"):
        return _read_json(await request.body(), max_images)
    raise ApiError(415, "unsupported_media_type",
                   "Send images as multipart/form-data (field 'files') or as application/json "
                   f"{{\"images\": [base64, ...]}}; got Content-Type '{content_type or 'none'}'.")


async def _read_multipart(request: Request, max_images: int) -> list[Upload]:
    try:
        form = await request.form(max_files=max_images, max_fields=100)
    except StarletteHTTPException as exc:
        if "Too many files" in str(exc.detail):
            raise _too_many(f"more than {max_images}", max_images) from None
        raise ApiError(400, "bad_multipart", f"The multipart body cannot be parsed: {exc.detail}") from None
    try:
        parts = [value for key, value in form.multi_items() if key in FILE_FIELDS]
        if not parts:
            raise ApiError(422, "no_images", "No images: send them in the multipart field 'files'.")
        if len(parts) > max_images:
            raise _too_many(str(len(parts)), max_images)
        uploads = []
        for i, part in enumerate(parts):
            if isinstance(part, UploadFile):
                uploads.append(Upload(clean_filename(part.filename, f"files[{i}]"), await part.read()))
            else:  # a plain text field: decoding says what it is
                uploads.append(Upload(f"files[{i}]", str(part).encode()))
        return uploads
    finally:
        await form.close()


def _read_json(body: bytes, max_images: int) -> tuple[list[Upload], int | None]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ApiError(422, "invalid_json", f"The body is not valid JSON: {exc}") from None
    if isinstance(payload, dict) and isinstance(payload.get("images"), list) \
            and len(payload["images"]) > max_images:
        raise _too_many(str(len(payload["images"])), max_images)
    try:
        req = PredictJSONRequest.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise ApiError(422, "invalid_request", f"{field}: {err['msg']}") from None
    return [_from_base64(i, text) for i, text in enumerate(req.images)], req.top_k


def _from_base64(index: int, text: str) -> Upload:
    name = f"images[{index}]"
    text = _DATA_URL.sub("", text.strip(), count=1)
    text = "".join(text.split())
    try:
        return Upload(name, base64.b64decode(text + "=" * (-len(text) % 4), validate=True))
    except (binascii.Error, ValueError) as exc:
        return Upload(name, error=ErrorDetail(code="bad_base64", message=f"{name}: not valid base64 ({exc})"))


def _too_many(count: str, limit: int) -> ApiError:
    return ApiError(413, "too_many_images", f"{count} images in one request; the limit is {limit} "
                    "(max_images_per_request). Split them over several requests.")


def clean_filename(name: str | None, fallback: str) -> str:
    """The client's file name without folders or control characters, at most 200 characters."""
    base = PurePosixPath((name or "").replace("\\", "/")).name
    base = _UNPRINTABLE.sub("", base)[:200]
    return base or fallback


def decode_uploads(uploads: list[Upload], predictor: Predictor, max_pixels: int | None,
                   stats: list | None = None) -> list[np.ndarray | ErrorDetail]:
    """Decode and prepare each upload (blocking: run it in a thread); failures name the file.
    With ``stats``, the drift statistics of each decoded image are appended to it."""
    spec = predictor.spec  # a region or tiles need the whole picture, not a draft near the model's size
    draft = CLIP if spec.frames else spec.size if spec.roi == "none" and not spec.tiles else None
    out: list[np.ndarray | ErrorDetail] = []
    for up in uploads:
        if up.error is not None:
            out.append(up.error)
            continue
        try:
            image, _ = decode_with_info(up.filename, data=up.data, max_pixels=max_pixels, draft_size=draft,
                                        window=predictor.spec.window)
            out.append(prepare_image(image, predictor.spec))
            if stats is not None:  # a clip is watched by its middle frame
                stats.append(image_stats(image.thumbnail() if spec.frames and hasattr(image, "thumbnail")
                                         else image))
        except ImageDecodeError as exc:
            code = DECODE_STATUS.get(exc.kind, (422, "corrupt_image"))[1]
            out.append(ErrorDetail(code=code, message=f"{up.filename}: {exc.reason}"))
        except Exception as exc:  # noqa: BLE001 - a hostile file is a 4xx, never a 500
            out.append(ErrorDetail(code="corrupt_image",
                                   message=f"{up.filename}: cannot decode: {type(exc).__name__}: {exc}"))
    return out


def all_failed(errors: list[ErrorDetail]) -> ApiError:
    """The answer when no image of a request could be read: the first problem's status."""
    shown = "; ".join(e.message for e in errors[:5])
    more = f"; and {len(errors) - 5} more" if len(errors) > 5 else ""
    return ApiError(_STATUS_OF_CODE.get(errors[0].code, 422), errors[0].code, shown + more)
