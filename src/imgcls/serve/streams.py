"""Live video for sequence models: one camera frame per request, the server keeping each
client's last ``data.frames`` frames (a :class:`~imgcls.deploy.windows.FrameStream` per
session), so every frame costs one backbone pass and the answer covers the whole window.

``POST /v1/models/{name}/stream?session=ID`` takes one image (the page's camera frame) and
answers with how many frames the window holds and, once it is full, the label and the top-k.
Sessions are the client's own random ids; at most ``MAX_SESSIONS`` are kept (the least
recently used goes first) and one idle for ``IDLE_SECONDS`` is dropped. A reload starts each
session again on the new version.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from ..config import ServeConfig
from ..core.errors import ImageDecodeError
from ..data.decode import decode_with_info
from ..deploy.windows import FrameStream
from ..models import SEQUENCE
from .errors import DECODE_STATUS, ApiError, documented
from .routes import DEFAULT_TOP_K, ModelName, StateDep, api_key_dependencies
from .schemas import MAX_TOP_K, Prediction
from .store import LoadedModel
from .uploads import read_uploads

MAX_SESSIONS = 64
IDLE_SECONDS = 120.0
SESSION = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class StreamAnswer(BaseModel):
    """One frame's answer: the window so far and, once full, the label over it."""

    model: str
    version: str
    session: str
    frames: int = Field(description="Frames in the window now.")
    needed: int = Field(description="Frames the model reads (data.frames).")
    ready: bool
    label: str | None = None
    predictions: list[Prediction] = Field(default_factory=list)
    ms: float = Field(description="Server time for this frame.")


class StreamSessions:
    """The live sessions: a FrameStream each, bounded in number and idle time."""

    def __init__(self, limit: int = MAX_SESSIONS, idle: float = IDLE_SECONDS) -> None:
        self.limit, self.idle = limit, idle
        self._sessions: OrderedDict[str, tuple[FrameStream, str, float, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, model: LoadedModel) -> tuple[FrameStream, threading.Lock]:
        now = time.monotonic()
        with self._lock:
            for stale in [k for k, v in self._sessions.items() if now - v[2] > self.idle]:
                del self._sessions[stale]
            found, version = self._sessions.pop(key, None), f"{model.name}@{model.version}"
            if found is None or found[1] != version:
                found = (FrameStream(model.predictor.clf), version, now, threading.Lock())
            self._sessions[key] = (found[0], found[1], now, found[3])
            while len(self._sessions) > self.limit:
                self._sessions.popitem(last=False)
            return found[0], found[3]

    def __len__(self) -> int:
        return len(self._sessions)


def build_stream_router(settings: ServeConfig, sessions: StreamSessions) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["models"])
    protected = api_key_dependencies(settings.api_key)

    @router.post("/models/{name}/stream", response_model=StreamAnswer, dependencies=protected,
                 responses=documented(400, 401, 404, 409, 413, 415, 422, 503) if protected
                 else documented(400, 404, 409, 413, 415, 422, 503),
                 summary="One live frame for a sequence model")
    async def stream_frame(request: Request, state: StateDep, name: ModelName,
                           session: str = Query(description="The client's random id (8-64 of "
                                                            "A-Z a-z 0-9 _ -)."),
                           top_k: int = Query(DEFAULT_TOP_K, ge=1, le=MAX_TOP_K)) -> StreamAnswer:
        """A camera frame (one image, multipart `files` or JSON base64) for a video model: it joins
        the session's window of the last `data.frames` frames; once the window is full every frame
        gets the label over it. A 409 `not_a_sequence_model` for image models (use predict)."""
        started = time.perf_counter()
        model = state.model(name)
        if not hasattr(model.predictor, "clf") or not model.predictor.clf.supports(SEQUENCE):
            raise ApiError(409, "not_a_sequence_model", f"Model '{model.name}' reads still images; send "
                           f"frames to POST /v1/models/{model.name}/predict instead.")
        if not SESSION.match(session):
            raise ApiError(400, "bad_session", "session must be 8-64 characters of A-Z, a-z, 0-9, _ and -.")
        uploads, _ = await read_uploads(request, 1)
        up = uploads[0]
        if up.error is not None:
            raise ApiError(422, up.error.code, up.error.message)
        try:
            frame, _ = await anyio.to_thread.run_sync(
                lambda: decode_with_info(up.filename, data=up.data, max_pixels=settings.max_pixels))
        except ImageDecodeError as exc:
            status, code = DECODE_STATUS.get(exc.kind, (422, "corrupt_image"))
            raise ApiError(status, code, f"{up.filename}: {exc.reason}") from None
        stream, lock = sessions.get(session, model)

        def push():
            with lock:
                return stream.push(np.asarray(frame)), len(stream.window)

        answer, filled = await anyio.to_thread.run_sync(push)
        ranked = sorted((answer or {}).get("probabilities", {}).items(), key=lambda kv: -kv[1])[:top_k]
        return StreamAnswer(model=model.name, version=model.version, session=session, frames=filled,
                            needed=stream.window.maxlen, ready=answer is not None,
                            label=answer["label"] if answer else None,
                            predictions=[Prediction(label=k, probability=v) for k, v in ranked],
                            ms=round(1000 * (time.perf_counter() - started), 2))

    return router
