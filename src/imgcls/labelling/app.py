"""``create_label_app(session)``: the labelling page and its small JSON API.

Routes (a labeller names themself with ``labeller``; with an API key, every route but the
page needs it as ``X-API-Key``, ``Authorization: Bearer`` or ``?key=``; errors answer as the
model server's do, ``{"error": {"code", "message"}}``):

- ``GET /``: the page (one image at a time; digits for classes, ``s`` skip, ``?`` unsure,
  ``u`` undo, ``z`` zoom);
- ``GET /api/state``: classes, counts, the estimated accuracy, the learning curve,
  agreement between labellers, unreadable files;
- ``GET /api/next?labeller=NAME``: the next image, its near-duplicates, the model's guess;
- ``GET /api/image/{id}``: an image of the session, by its number: no path is taken from
  a request, so nothing outside the dataset can be asked for;
- ``POST /api/answer`` ``{labeller, id, label, group}``; ``POST /api/undo`` ``{labeller}``;
- ``GET /api/manifest``: the manifest as written to ``--out``.

Uploads are not accepted.

Example:
    >>> app = create_label_app(LabelSession("photos/", ["cat", "dog"], "labels.csv"))  # doctest: +SKIP
"""

from __future__ import annotations

import mimetypes
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from ..core.errors import ConfigError, DataError, ImageDecodeError
from ..core.log import info
from ..data.decode import decode_image
from ..serve.errors import error_response, install_handlers
from ..serve.routes import api_key_dependencies
from ..serve.server import is_loopback
from .session import LabelSession

BROWSER_FORMATS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp"})
PREVIEW_SIDE = 1024


def browser_png(path) -> bytes:
    """A file no browser shows (DICOM, windowed as the file says; TIFF...) as a PNG of at most
    PREVIEW_SIDE pixels; one that cannot be decoded is a 422 naming it."""
    import io

    from PIL import Image

    try:
        img = Image.fromarray(decode_image(path))
    except ImageDecodeError as exc:
        raise DataError(f"{path.name}: {exc.reason}") from None
    img.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


class Answer(BaseModel):
    labeller: str = Field(min_length=1, max_length=64)
    id: int = Field(ge=0)
    label: str = Field(max_length=2000)  # a class, skip, unsure; label sets: 'a|b', '' for none
    group: list[int] = Field(default_factory=list, max_length=1000)


class Undo(BaseModel):
    labeller: str = Field(min_length=1, max_length=64)


def create_label_app(session: LabelSession, api_key: str | None = None,
                     allowed_hosts: list[str] | None = None) -> FastAPI:
    """The FastAPI application of one labelling session. ``allowed_hosts``: the Host headers
    accepted (a page on loopback refuses others, so a web site cannot reach it by DNS
    rebinding); None accepts any."""
    app = FastAPI(title="imgcls label", docs_url=None, redoc_url=None)
    if allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    @app.middleware("http")
    async def no_sniffing(request: Request, call_next):
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self'; "
                                                       "style-src 'self' 'unsafe-inline'; "
                                                       "script-src 'self' 'unsafe-inline'")
        return response

    guarded = api_key_dependencies(api_key, in_query=True)  # the server's own key check
    install_handlers(app)  # the server's error answers: {"error": {"code", "message"}}

    @app.exception_handler(ConfigError)
    @app.exception_handler(DataError)
    async def bad_request(request: Request, exc: Exception) -> JSONResponse:
        return error_response(422, "invalid_request", str(exc))

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return resources.files("imgcls.labelling").joinpath("static/label.html").read_text(encoding="utf-8")

    @app.get("/api/state", dependencies=guarded)
    def state() -> dict:
        return session.state()

    @app.get("/api/next", dependencies=guarded)
    def next_image(labeller: str) -> dict:
        item = session.next(labeller)
        return {"done": item is None, "item": item}

    @app.get("/api/image/{item}", dependencies=guarded)
    def image(item: int) -> Response:
        path = session.file(item)
        if path.suffix.lower() not in BROWSER_FORMATS:  # DICOM, TIFF...: a PNG of what the model sees
            return Response(browser_png(path), media_type="image/png",
                            headers={"Cache-Control": "private, max-age=3600"})
        kind = mimetypes.guess_type(path.name)[0] or ""
        kind = kind if kind.startswith("image/") else "application/octet-stream"  # never run as a page
        return Response(path.read_bytes(), media_type=kind,
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/answer", dependencies=guarded)
    def answer(body: Answer) -> dict:
        return session.answer(body.labeller, body.id, body.label, body.group)

    @app.post("/api/undo", dependencies=guarded)
    def undo(body: Undo) -> dict:
        restored = session.undo(body.labeller)
        return {"undone": restored is not None, "item": restored}

    @app.get("/api/manifest", dependencies=guarded)
    def manifest() -> Response:
        return Response(session.export().to_csv(index=False), media_type="text/csv")

    return app


def run_label_server(session: LabelSession, host: str = "127.0.0.1", port: int = 8100,
                     api_key: str | None = None) -> None:
    """Serve the labelling page until interrupted; off loopback, an API key is required."""
    import uvicorn

    if not is_loopback(host) and not api_key:
        raise ConfigError(f"Binding the labelling page to {host} needs --api-key (or IMGCLS_API_KEY): anyone "
                          "who reaches the port could read the images and vote. Or bind to 127.0.0.1.")
    info(f"labelling page on http://{host}:{port}/ ; labels written to {session.out}")
    hosts = [host, "localhost", "127.0.0.1", "[::1]"] if is_loopback(host) else None
    uvicorn.run(create_label_app(session, api_key, hosts), host=host, port=port, log_level="warning",
                server_header=False)
