"""The web chat page at ``/``: plain HTML, JavaScript and CSS shipped inside the wheel.

:func:`page_routes` gives the Starlette routes that serve it: ``GET /`` (the page) and
``GET /static/app.js`` and ``/static/style.css`` (its only assets; nothing is fetched from
anywhere else). The page talks to the agent endpoint of the same server (``/v1/models``,
``/v1/chat/completions`` with ``"session"`` and ``"stream": true``, ``/v1/feedback``,
``/v1/sessions/{id}``), so nothing has to be built on install and no CDN is needed.

A conversation the server keeps is named in the page's URL (``/?session=ID``) and remembered
in the browser's ``localStorage``: a reload, a second tab, or the page opened after a restart
of a server with a session store reads it back (``GET /v1/sessions/{id}``: every turn with its
items, plan and trace) and shows the earlier turns with their cards before going on with it.

Every answer carries a strict Content-Security-Policy (:data:`CSP`): scripts, styles and
connections from the server itself only, no inline script or style, no frames, no forms posted
elsewhere, and Trusted Types required with no policy allowed, so the browser itself refuses any
``innerHTML`` assignment: model text and catalog titles can only ever be shown as text.

With an API key, the page and its assets are behind it like every other path
(:class:`recai_serve.app.KeyGuard`): the 401 carries a Basic challenge, so the browser asks for
a user name and password itself (any user name, the key as the password) and then sends them
with the page's assets and API calls; the page's script never sees, asks for or keeps the key.

>>> [r.path for r in page_routes()]
['/', '/static/app.js', '/static/style.css']
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["page_routes", "PAGE_FILES", "CSP", "SECURITY_HEADERS"]

PAGE_FILES: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
"""Each route's path: the file under ``recai_serve/static`` it serves and its content type."""

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
"""The page's Content-Security-Policy: its own scripts, styles and API only; no inline code,
no other origin, no frames; no string reaches the HTML parser from script (Trusted Types)."""

SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
"""Headers on every answer of the page's routes."""


@dataclass(frozen=True)
class _File:
    body: bytes
    content_type: str
    etag: str


@cache
def _load(name: str, content_type: str) -> _File:
    body = resources.files("recai_serve").joinpath("static", name).read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return _File(body, content_type, etag)


def _endpoint(name: str, content_type: str) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    async def serve(request: Request) -> Response:
        file = _load(name, content_type)
        headers = {
            **SECURITY_HEADERS,
            # always revalidated: an upgraded server never runs yesterday's script
            "cache-control": "no-cache",
            "etag": file.etag,
        }
        if file.etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        body = b"" if request.method == "HEAD" else file.body
        response = Response(body, media_type=file.content_type, headers=headers)
        response.headers["content-length"] = str(len(file.body))
        return response

    serve.__name__ = f"page_{name.replace('.', '_')}"
    return serve


def _etags(header: str) -> set[str]:
    return {t.strip().removeprefix("W/") for t in header.split(",") if t.strip()}


def page_routes() -> list[Route]:
    """The routes of the chat page and its assets (``GET`` and ``HEAD``), to put in an app's
    route list: ``Starlette(routes=[*api_routes, *page_routes()])``."""
    return [
        Route(path, _endpoint(name, content_type), methods=["GET", "HEAD"])
        for path, (name, content_type) in PAGE_FILES.items()
    ]
