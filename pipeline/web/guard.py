"""What every HTTP request meets before and around a route (a plain ASGI middleware):

- an id (`X-Request-ID` when the caller sent a sane one, else a new one), bound to every
  log line of the request and sent back in the response's `X-Request-ID`;
- an address or a form holding a NUL character (`%00` in the path, the query or a
  form-encoded body) is refused (400): no database stores it, no route has a use for it
  (JSON bodies meet `schemas.guards` instead);
- a JSON API route (`/api/...`) with a body takes `application/json` (or `+json`) only:
  415 otherwise, so that a web page cannot make a visitor's browser post to the API
  (a cross-site `text/plain` or form post needs no preflight);
- the body limit (`web.max_body_bytes`) is enforced while the body is read, chunked or
  not: a declared length over it is refused before reading; an undeclared one is
  counted as it arrives and refused (413) the moment it passes the limit, so never
  more than the limit is held; a route that reads its body as a stream, a chunk at a
  time, and checks a key before it reads (`streamed`: the running process's import,
  /internal/v1/import) is not limited, since an import file may be large;
- an error no route handled is logged in the project's log format (JSON lines when
  so configured) with the request id, method and path and the traceback's frames, but
  never the body or the exception's message (which may quote it); the caller gets 500
  with the request id.
"""

from __future__ import annotations

import logging
import re
import traceback
import uuid
from typing import Any
from urllib.parse import unquote

import orjson
from fastapi import HTTPException

from pipeline.core.logs import bind, unbind

log = logging.getLogger(__name__)

_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class FormHoldsNul(HTTPException):
    """A form field holds a NUL character (`%00`): no database stores it."""

    def __init__(self) -> None:
        super().__init__(400, "a form field holds a NUL character (%00), which cannot "
                         "be stored")


class BodyTooLarge(HTTPException):
    """Raised from `receive` the moment a body passes the limit; FastAPI passes an
    HTTPException through its body parsing, and the app answers 413 (`install`)."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body larger than {limit} bytes")
        self.limit = limit


def _json_type(content_type: str) -> bool:
    main = content_type.split(";", 1)[0].strip().lower()
    return main == "application/json" or (main.startswith("application/")
                                          and main.endswith("+json"))


async def _answer(send: Any, status: int, body: dict[str, Any], request_id: str) -> None:
    payload = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
        (b"x-request-id", request_id.encode())]})
    await send({"type": "http.response.body", "body": payload})


class RequestGuard:
    def __init__(self, app: Any, max_bytes: int, streamed: frozenset[str] = frozenset()):
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = streamed

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        given = headers.get("x-request-id", "")
        request_id = given if _SANE_ID.match(given) else uuid.uuid4().hex
        token = bind(request_id=request_id)
        try:
            await self._guarded(scope, receive, send, headers, request_id)
        finally:
            unbind(token)

    async def _guarded(self, scope: dict[str, Any], receive: Any, send: Any,
                       headers: dict[str, str], request_id: str) -> None:
        path: str = scope.get("path", "")
        query = scope.get("query_string", b"").decode("latin-1")
        if "\x00" in path or "\x00" in unquote(query):
            await _answer(send, 400, {"error": "the address holds a NUL character (%00)"},
                          request_id)
            return
        length = headers.get("content-length")
        limit: float = self.max_bytes
        if path in self.streamed and scope.get("method") == "POST":
            limit = float("inf")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _answer(send, 413, {"error": f"request body larger than {self.max_bytes} "
                                      "bytes"}, request_id)
            return
        has_body = (length is not None and int(length) > 0) or "transfer-encoding" in headers
        if (path.startswith("/api/") and scope.get("method") in _WRITES and has_body
                and not _json_type(headers.get("content-type", ""))):
            got = headers.get("content-type") or "no content type"
            await _answer(send, 415, {"error": "the JSON API takes application/json bodies "
                                      f"only (got {got})"}, request_id)
            return

        received = 0
        form = headers.get("content-type", "").split(";", 1)[0].strip().lower() == (
            "application/x-www-form-urlencoded")
        tail = b""

        async def counted_receive() -> dict[str, Any]:
            nonlocal received, tail
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    raise BodyTooLarge(self.max_bytes)
                if form:  # "%00" may span two chunks: the last two bytes carried over
                    if b"%00" in tail + chunk:
                        raise FormHoldsNul
                    tail = (tail + chunk)[-2:]
            return message

        started = False

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except (BodyTooLarge, FormHoldsNul) as exc:
            if not started:
                await _answer(send, exc.status_code, {"error": exc.detail}, request_id)
        except Exception as exc:  # noqa: BLE001 - the last line: logged, answered 500
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error("Request %s %s failed with %s (message withheld: it may quote the "
                      "body); traceback:\n%s", scope.get("method"), path,
                      type(exc).__name__, frames, extra={"request_id": request_id})
            if not started:
                await _answer(send, 500, {"error": "internal error",
                                          "request_id": request_id}, request_id)
