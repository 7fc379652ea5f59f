"""What stands between a client and the models: request ids, the API key, a body limit that counts streamed bytes,
read timeouts, and the error envelope they answer with.

These run as plain ASGI around the app (before FastAPI reads a byte of the body), so a chunked or slow body is
refused at the limit instead of after it has been read, and an unauthenticated client costs no parsing.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
import uuid
from datetime import datetime, timezone

from loraroute.serve.metrics import REQUEST_ID, Metrics

log = logging.getLogger("loraroute.serve")
access = logging.getLogger("loraroute.access")
REQUEST_ID_SHAPE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # a client's id is echoed only if it cannot forge log lines
OPEN_PATHS = ("/health",)  # answer without a key: a load balancer's probe has none


def error_body(code: str, message: str, request_id: str | None = None) -> dict:
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    error = {"code": code, "message": message, "timestamp": stamp}
    if request_id:
        error["request_id"] = request_id
    return {"error": error}


async def send_error(
    send, status: int, code: str, message: str, request_id: str | None, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps(error_body(code, message, request_id)).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: request id (``X-Request-ID`` echoed or made, and on every log line), bearer-key check, the
    request body read in full under ``max_body_bytes`` and ``body_timeout_s`` before the app sees it, and each
    response counted, timed and (``access_log``) logged."""

    def __init__(
        self,
        app,
        max_body_bytes: int,
        body_timeout_s: float,
        api_key: str | None = None,
        metrics: Metrics | None = None,
        access_log: bool = False,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.api_key = api_key.encode() if api_key else None
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID_SHAPE.match(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        start, status = time.perf_counter(), 0

        async def tracked(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self._guarded(scope, receive, tracked, headers, request_id)
        finally:
            seconds = time.perf_counter() - start
            if self.metrics is not None and status:
                self.metrics.observe_response(scope["path"], status, seconds)
            if self.access_log:
                client = scope.get("client") or ("-", 0)
                access.info(
                    '%s "%s %s" %s %.1f ms', client[0], scope["method"], scope["path"], status or "-", seconds * 1000
                )
            REQUEST_ID.reset(token)

    async def _refuse(
        self, send, status: int, code: str, message: str, request_id: str, headers: dict[str, str] | None = None
    ) -> None:
        if self.metrics is not None:
            self.metrics.errors.labels(code).inc()
        await send_error(send, status, code, message, request_id, headers)

    async def _guarded(self, scope, receive, send, headers: dict, request_id: str) -> None:
        if self.api_key is not None and scope["path"] not in OPEN_PATHS:
            auth = headers.get(b"authorization", b"")
            token = auth[7:].strip() if auth[:7].lower() == b"bearer " else b""
            if not hmac.compare_digest(token, self.api_key):
                return await self._refuse(
                    send,
                    401,
                    "UNAUTHORIZED",
                    "missing or wrong API key (send 'Authorization: Bearer KEY')",
                    request_id,
                    {"WWW-Authenticate": "Bearer"},
                )

        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return await self._refuse(
                send,
                413,
                "REQUEST_BODY_TOO_LARGE",
                f"request body of {length.decode()} bytes is over the limit of {self.max_body_bytes} bytes",
                request_id,
            )
        try:
            body = await self._read_body(receive)
        except asyncio.TimeoutError:
            return await self._refuse(
                send,
                408,
                "REQUEST_TIMEOUT",
                f"the request body took longer than {self.body_timeout_s:g} s to arrive",
                request_id,
            )
        except _TooLarge:
            return await self._refuse(
                send,
                413,
                "REQUEST_BODY_TOO_LARGE",
                f"request body is over the limit of {self.max_body_bytes} bytes",
                request_id,
            )
        if body is None:
            return  # the client went away mid-body: nobody to answer

        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        await self.app(scope, replay, send)

    async def _read_body(self, receive) -> bytes | None:
        """The body (None if the client disconnected), read until it ends; past the limit reading stops, so the
        rest is never buffered."""
        chunks, size = [], 0
        deadline = time.monotonic() + self.body_timeout_s
        while True:
            message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class _TooLarge(Exception):
    pass


def guarded_http_protocol(header_timeout_s: float):
    """uvicorn's httptools protocol with a deadline for each request's headers: uvicorn itself bounds only idle
    keep-alive connections, so a client sending headers one byte a second would hold a connection for ever."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        _header_timer = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            log.warning("closing a connection from %s: no complete headers in %g s", self.client, header_timeout_s)
            self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderDeadlineProtocol
