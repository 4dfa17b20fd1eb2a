"""What every request passes before any route runs, and what every error may repeat.

`Guard` is a plain ASGI middleware: it checks the API key first (constant-time, before the body is
read or validated), then reads the body itself with a byte counter, so a body over the limit is
refused while it arrives, whether it has a Content-Length or comes chunked. The body it passes on
is the bytes it counted. Error handlers cap what a 4xx repeats of the input (never the input itself,
at most a short message per problem), so a 7 MB field cannot come back as a 7 MB error.
"""

from __future__ import annotations

import hmac
import json

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

OPEN_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
MAX_ERRORS = 10
MAX_TEXT = 200  # characters of any one message or location part an error repeats


def key_matches(key: str | None, headers) -> bool:
    """With a key configured, a request needs `X-API-Key: key` or `Authorization: Bearer key`."""
    if not key:
        return True
    given = headers.get("x-api-key") or ""
    bearer = headers.get("authorization") or ""
    bearer = bearer[7:] if bearer.startswith("Bearer ") else ""
    expected = key.encode()
    # compare_digest on both candidates (no early exit), so timing says nothing about the key
    a = hmac.compare_digest(given.encode(), expected)
    b = hmac.compare_digest(bearer.encode(), expected)
    return a or b


def check_api_key(key: str | None, headers) -> None:
    if not key_matches(key, headers):
        raise HTTPException(401, "missing or wrong API key (X-API-Key header)")


def clip(text, limit: int = MAX_TEXT) -> str:
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def capped(detail):
    """An error detail with every string clipped and at most MAX_ERRORS entries."""
    if isinstance(detail, str):
        return clip(detail)
    if isinstance(detail, list):
        out = [capped(d) for d in detail[:MAX_ERRORS]]
        return out + ([f"... and {len(detail) - MAX_ERRORS} more"] if len(detail) > MAX_ERRORS else [])
    if isinstance(detail, dict):
        return {clip(k, 64): capped(v) for k, v in list(detail.items())[:MAX_ERRORS]}
    if isinstance(detail, (int, bool)) or detail is None:
        return detail
    return clip(detail)


def validation_errors(errors) -> list[dict]:
    """Pydantic errors without `input` or `ctx` (either may hold the whole request, or NaN)."""
    return [{"loc": [clip(p, 64) for p in e.get("loc", ())], "msg": clip(e.get("msg", "")), "type": e.get("type")}
            for e in list(errors)[:MAX_ERRORS]]


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": capped(validation_errors(exc.errors()))}, status_code=422)


async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"detail": capped(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


async def _send_json(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: API key, then the body limit while reading. Settings live on app.state
    (`api_key`, `max_body_bytes`), set by the ingress replica at start."""

    def __init__(self, app, default_max_body: int):
        self.app, self.default_max_body = app, default_max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = scope["app"].state if "app" in scope else None
        key = getattr(state, "api_key", None)
        limit = getattr(state, "max_body_bytes", self.default_max_body)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path, root = scope.get("path", ""), scope.get("root_path", "")
        path = path[len(root):] if root and path.startswith(root) else path  # behind a route prefix
        if path not in OPEN_PATHS and not key_matches(key, headers):
            return await _send_json(send, 401, "missing or wrong API key (X-API-Key header)")
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return await _send_json(send, 400, "Content-Length is not a number")
            if int(declared) > limit:
                return await _send_json(send, 413, f"request body of {declared} bytes exceeds {limit}")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await _send_json(send, 413, f"request body exceeds {limit} bytes (stopped reading at {size})")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)
