"""Serving /metrics: an ASGI app to mount in the app when asked, or a small server on its own port in a thread.

Both negotiate OpenMetrics (which carries exemplars) and gzip through prometheus_client's exposition, and
both can require a bearer token or a client address in an allowlist, so metrics are never public by accident.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from slipstream.exporters.live.web import LivePage

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class MetricsAccess:
    """Who may read the metrics: a bearer token and/or client networks; with neither, everyone."""

    def __init__(self, bearer_token: str | None = None, allow_networks: Sequence[str] = ()) -> None:
        self.expected = bearer_token.encode() if bearer_token else None
        self.networks: list[Network] = [ipaddress.ip_network(n, strict=False) for n in allow_networks]

    def wsgi_verdict(self, environ: dict[str, Any]) -> int | None:
        """``verdict`` for a WSGI request: PEP 3333 hands header values over as latin-1 decoded strings."""
        authorization: str | None = environ.get("HTTP_AUTHORIZATION")
        return self.verdict(environ.get("REMOTE_ADDR"), authorization.encode("latin-1") if authorization else None)

    def verdict(self, client_host: str | None, authorization: bytes | None) -> int | None:
        """None when access is granted, else the status to answer with (403 or 401)."""
        if not self.address_allowed(client_host):
            return 403
        if not self.bearer_allowed(authorization):
            return 401
        return None

    def address_allowed(self, client_host: str | None) -> bool:
        """Whether the client's address is in the allowlist (always, without one)."""
        if not self.networks:
            return True
        try:
            address = ipaddress.ip_address(client_host or "")
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def bearer_allowed(self, authorization: bytes | None) -> bool:
        """Whether the Authorization value carries the token (always, without one)."""
        return self.expected is None or hmac.compare_digest(_bearer_credentials(authorization), self.expected)


def _bearer_credentials(authorization: bytes | None) -> bytes:
    """The token of a ``Bearer`` Authorization value, or b"" for any other scheme.

    RFC 9110 §11.1: the scheme is case-insensitive and separated from the credentials by one or more spaces;
    the token itself is compared exactly (and in constant time, by the caller).
    """
    if authorization is None:
        return b""
    scheme, _, credentials = authorization.partition(b" ")
    if scheme.lower() != b"bearer":
        return b""
    return credentials.lstrip(b" ")


_REFUSALS = {
    401: (b"401 Unauthorized: a bearer token is required\n", [(b"www-authenticate", b'Bearer realm="metrics"')]),
    403: (b"403 Forbidden: this address may not read the metrics\n", []),
}


def wsgi_refusal(status: int, start_response: Callable[..., Any]) -> list[bytes]:
    """Answer a WSGI request with the refusal ``MetricsAccess.verdict`` asked for."""
    _, headers, body = refusal_response(status)
    reason = "Unauthorized" if status == 401 else "Forbidden"
    start_response(f"{status} {reason}", [(k.decode(), v.decode()) for k, v in headers])
    return [body]


def refusal_response(status: int) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers (without Content-Length) and body of a refusal ``MetricsAccess.verdict`` asked for."""
    body, extra = _REFUSALS[status]
    return status, [(b"content-type", b"text/plain; charset=utf-8"), *extra], body


class MetricsApp:
    """ASGI app exposing ``registry``; mount it (e.g. ``Mount("/metrics", MetricsApp(...))``) only when wanted."""

    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        *,
        bearer_token: str | None = None,
        allow_networks: Sequence[str] = (),
    ) -> None:
        self.access = MetricsAccess(bearer_token, allow_networks)
        self.exposition = make_asgi_app(registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        client = scope.get("client")
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        refusal = self.access.verdict(client[0] if client else None, authorization)
        if refusal is None:
            await self.exposition(scope, receive, send)
            return
        status, headers, body = refusal_response(refusal)
        headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the log."""


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class MetricsServer:
    """/metrics on its own port, served from a daemon thread of the app's process; /report and the live page (at /)
    too when given them."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        registry: CollectorRegistry = REGISTRY,
        *,
        bearer_token: str | None = None,
        allow_networks: Sequence[str] = (),
        report: Callable[[], bytes] | None = None,
        live: LivePage | None = None,
    ) -> None:
        access = MetricsAccess(bearer_token, allow_networks)
        exposition: WSGIApp = make_wsgi_app(registry)

        def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO")
            if live is not None and path in live.paths:
                return live.wsgi(environ, start_response)
            if path != "/metrics" and (report is None or path != "/report"):
                served = "/metrics and /report" if report is not None else "/metrics"
                if live is not None:
                    served += ", and the live page at /"
                start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
                return [f"404 Not Found: this port serves {served}\n".encode()]
            refusal = access.wsgi_verdict(environ)
            if refusal is None and report is not None and path == "/report":
                body = report()
                start_response("200 OK", [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
                return [body]
            if refusal is None:
                return exposition(environ, start_response)
            return wsgi_refusal(refusal, start_response)

        self.httpd = make_server(host, port, guarded, ThreadingWSGIServer, handler_class=QuietHandler)
        self.port = int(self.httpd.server_port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="slipstream-metrics", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
