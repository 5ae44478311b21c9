"""The reverse proxy bench_conformance.py puts the suite's client in front of: an ASGI app forwarding every request
to the suite's origin server, under slipstream's cache alone or under ``install()``'s whole stack.

uvicorn serves it with ``--factory --app-dir bench conformance_proxy:<factory>``; the origin's base URL comes from
``SLIPSTREAM_CONFORMANCE_ORIGIN`` (``http://127.0.0.1:PORT``), since a factory takes no arguments.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import slipstream

ORIGIN_VARIABLE = "SLIPSTREAM_CONFORMANCE_ORIGIN"
# RFC 9110 §7.6.1: connection-specific fields an intermediary does not forward, besides those Connection names.
HOP_BY_HOP = frozenset({b"connection", b"proxy-connection", b"keep-alive", b"te", b"transfer-encoding", b"upgrade"})
ORIGIN_TIMEOUT = 30.0  # the suite's client gives up on a request after 10 s
GATEWAY_ERROR = "GATEWAY_ERROR"


def forwarded(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` less the hop-by-hop fields and those the Connection field names, names lower-cased."""
    lowered = [(name.lower(), value) for name, value in headers]
    named = {token.strip().lower() for name, value in lowered if name == b"connection" for token in value.split(b",")}
    return [(name, value) for name, value in lowered if name not in HOP_BY_HOP and name not in named]


class OriginForwarder:
    """Sends each request on to ``origin`` (method, path and query, end-to-end header fields, body) and streams the
    origin's answer back, its body as the origin encoded it. A failed exchange is a 502 (504 on a timeout), as a
    gateway answers, and a line on stderr that starts with GATEWAY_ERROR."""

    def __init__(self, origin: str) -> None:
        self.origin = origin.rstrip("/")
        # Requests are built by hand and sent with client.send: no default fields (User-Agent, Accept-Encoding) are
        # added to what the client sent, and redirects are passed back, not followed. No connection is kept open:
        # the origin closes idle ones after 5 s, which is also when httpx stops reusing them, and a request sent on
        # one the origin is closing would fail.
        limits = httpx.Limits(max_keepalive_connections=0)
        self.client = httpx.AsyncClient(timeout=ORIGIN_TIMEOUT, limits=limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        path = scope.get("raw_path") or scope["path"].encode()
        query = b"?" + scope["query_string"] if scope["query_string"] else b""
        headers = [(name, value) for name, value in forwarded(scope["headers"]) if name != b"host"]
        url = self.origin + (path + query).decode("latin-1")
        request = httpx.Request(scope["method"], url, headers=headers, content=bytes(body))
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as error:
            reason = f"{scope['method']} {request.url.path}: {error!r}"
            await self.fail(send, 504 if isinstance(error, httpx.TimeoutException) else 502, reason)
            return
        if not 100 <= response.status_code <= 599:
            # RFC 9110 §15: outside 100-599 a status is invalid, and a client takes it for a 5xx. The suite's origin
            # answers 999 where it expected a conditional request the cache did not send; uvicorn sends 100-599 only.
            await response.aclose()
            reason = f"the origin answered with the invalid status {response.status_code}"
            await self.fail(send, 502, f"{scope['method']} {request.url.path}: {reason}")
            return
        # Each chunk goes on once the next has come, so that the last one carries more_body=False: a body the
        # origin sent in one piece reaches the cache as one message, as an app's buffered response does (slipstream
        # does not store a body that comes in several). Should the origin break off mid-body, the error propagates:
        # the response has started, and the server ends the connection, as a gateway would.
        try:
            start = {"type": "http.response.start", "status": response.status_code}
            await send({**start, "headers": forwarded(response.headers.raw)})
            held = b""
            async for chunk in response.aiter_raw():
                if held:
                    await send({"type": "http.response.body", "body": held, "more_body": True})
                held = chunk
            await send({"type": "http.response.body", "body": held, "more_body": False})
        finally:
            await response.aclose()

    @staticmethod
    async def fail(send: Send, status: int, reason: str) -> None:
        print(f"{GATEWAY_ERROR} {status}: {reason}", file=sys.stderr, flush=True)
        body = f"{reason}\n".encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """The lifespan protocol, for when the forwarder is the app uvicorn runs: the client closes at shutdown."""
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @contextlib.asynccontextmanager
    async def running(self, app: Starlette) -> AsyncIterator[None]:
        """The same for a Starlette app that mounts the forwarder (Starlette runs the lifespan itself)."""
        yield
        await self.client.aclose()


def origin_forwarder() -> OriginForwarder:
    origin = os.environ.get(ORIGIN_VARIABLE)
    if not origin:
        raise RuntimeError(f"{ORIGIN_VARIABLE} is not set: bench_conformance.py sets it to the origin's base URL")
    return OriginForwarder(origin)


def cache_only() -> ASGIApp:
    """Configuration (a): CacheMiddleware with its defaults, straight over the forwarder."""
    return slipstream.CacheMiddleware(origin_forwarder())


def opt_ins() -> ASGIApp:
    """Configuration (c): the cache alone with the two opt-ins the defaults leave off on purpose: heuristic
    freshness (10% of the time since Last-Modified) and storing responses that set cookies."""
    return slipstream.CacheMiddleware(origin_forwarder(), heuristic_fraction=0.1, allow_set_cookie=True)


def installed() -> Starlette:
    """Configuration (b): what users run, ``install()`` with the default settings (compression and generated ETags
    on) but for the metrics port, which would be a second listening socket and changes no response."""
    forwarder = origin_forwarder()
    app = Starlette(routes=[Mount("", app=forwarder)], lifespan=forwarder.running)
    slipstream.install(app, slipstream.Settings(metrics_port=None))
    return app
