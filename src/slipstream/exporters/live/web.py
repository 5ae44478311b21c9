"""Serving the live page: the HTML, its JSON and its login, under a base path, for WSGI (the metrics port, the
sidecar) and ASGI (a path of the app).

Who may look is who may read /metrics: the client's address must be in ``metrics_allow_networks`` for every path,
and with ``metrics_bearer_token`` set the JSON needs the token. Scripts send it as ``Authorization: Bearer``; a
browser sends it once, in the page's login form, and gets an HttpOnly, SameSite=Strict cookie scoped to the JSON's
path, good for ``SESSION_SECONDS``. The cookie is a MAC of its expiry made with the token, so it is neither the
token nor usable on /metrics, and changing the token ends every session. The HTML itself holds no data; it is
served under a Content-Security-Policy that allows its own inline script and style (by hash) and requests to its
own origin, and nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import importlib.resources
import re
import time
import urllib.parse
from base64 import b64encode
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import anyio.to_thread
from starlette.types import Receive, Scope, Send

from slipstream.exporters.live.view import LiveView
from slipstream.exporters.prometheus import MetricsAccess

COOKIE = "slipstream_live"
SESSION_SECONDS = 12 * 3600
MAX_FORM_BYTES = 4096
Answer = tuple[int, list[tuple[str, str]], bytes]


def _load_page() -> tuple[str, str]:
    """The page's HTML, and its Content-Security-Policy naming the hashes of its inline script and style."""
    text = importlib.resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    def digests(tag: str) -> str:
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
        return " ".join(f"'sha256-{b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in found)

    policy = (
        f"default-src 'none'; script-src {digests('script')}; style-src {digests('style')}; img-src data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    return text, policy


PAGE, POLICY = _load_page()
_SECURITY_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]


class LivePage:
    """The page at ``base`` (``""`` for a port's root), its JSON at ``base/live.json``, its login at ``base/login``."""

    def __init__(
        self, view: LiveView, access: MetricsAccess, base: str = "", *, clock: Callable[[], float] = time.time
    ) -> None:
        self.view = view
        self.access = access
        self.base = base.rstrip("/")
        self.page_paths = {self.base or "/", self.base + "/"}
        self.data_path = self.base + "/live.json"
        self.login_path = self.base + "/login"
        self.paths = frozenset({*self.page_paths, self.data_path, self.login_path})
        self.clock = clock
        self.html = PAGE.replace("__BASE__", html.escape(self.base, quote=True)).encode()

    def respond(
        self, method: str, path: str, client: str | None, headers: Mapping[str, str], body: bytes, https: bool
    ) -> Answer:
        """The answer to a request for one of ``paths``; ``headers`` are keyed by lower-case name."""
        if not self.access.address_allowed(client):
            return _text(403, "403 Forbidden: this address may not read the live page\n")
        if path == self.login_path:
            return self._login(method, body, https)
        if method != "GET":
            return _text(405, "405 Method Not Allowed: use GET\n", [("Allow", "GET")])
        if path in self.page_paths:
            return (
                200,
                [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Content-Security-Policy", POLICY),
                    ("X-Frame-Options", "DENY"),
                    *_SECURITY_HEADERS,
                ],
                self.html,
            )
        authorization = headers.get("authorization")
        if not (
            self.access.bearer_allowed(authorization.encode("latin-1") if authorization else None)
            or self._session_valid(headers.get("cookie", ""))
        ):
            body = b'{"error":"a token is required: sign in on the page, or send Authorization: Bearer"}'
            return (
                401,
                [
                    ("Content-Type", "application/json"),
                    ("WWW-Authenticate", 'Bearer realm="slipstream"'),
                    *_SECURITY_HEADERS,
                ],
                body,
            )
        return 200, [("Content-Type", "application/json"), *_SECURITY_HEADERS], self.view.json()

    def _login(self, method: str, body: bytes, https: bool) -> Answer:
        if method != "POST":
            return _text(405, "405 Method Not Allowed: use POST\n", [("Allow", "POST")])
        page = self.base or "/"
        expected = self.access.expected
        token = urllib.parse.parse_qs(body[:MAX_FORM_BYTES].decode("latin-1")).get("token", [""])[0]
        if expected is not None and not hmac.compare_digest(token.encode("latin-1", "replace"), expected):
            return 303, [("Location", page + "#wrong-token"), *_SECURITY_HEADERS], b""
        headers = [("Location", page), *_SECURITY_HEADERS]
        if expected is not None:
            expires = int(self.clock()) + SESSION_SECONDS
            cookie = f"{COOKIE}={expires}.{self._mac(expected, expires)}; Path={self.data_path}; "
            cookie += f"Max-Age={SESSION_SECONDS}; HttpOnly; SameSite=Strict" + ("; Secure" if https else "")
            headers.append(("Set-Cookie", cookie))
        return 303, headers, b""

    def _mac(self, token: bytes, expires: int) -> str:
        message = f"slipstream live page {self.data_path} {expires}".encode()
        return hmac.new(token, message, hashlib.sha256).hexdigest()

    def _session_valid(self, cookies: str) -> bool:
        expected = self.access.expected
        if expected is None:
            return True
        now = self.clock()
        for part in cookies.split(";"):
            name, _, value = part.strip().partition("=")
            expires, _, mac = value.partition(".")
            if name == COOKIE and expires.isdigit() and int(expires) > now:
                if hmac.compare_digest(mac.encode(), self._mac(expected, int(expires)).encode()):
                    return True
        return False

    # Servers --------------------------------------------------------------------------------------------------

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Answer a WSGI request for one of ``paths`` (the metrics port and the sidecar call this)."""
        method = environ.get("REQUEST_METHOD", "GET")
        body = b""
        if method == "POST":
            length = environ.get("CONTENT_LENGTH") or "0"
            body = environ["wsgi.input"].read(min(int(length) if length.isdigit() else 0, MAX_FORM_BYTES))
        headers = {
            name: environ[variable]
            for name, variable in (("authorization", "HTTP_AUTHORIZATION"), ("cookie", "HTTP_COOKIE"))
            if variable in environ
        }
        status, answer_headers, answer = self.respond(
            method,
            environ.get("PATH_INFO", ""),
            environ.get("REMOTE_ADDR"),
            headers,
            body,
            environ.get("wsgi.url_scheme") == "https",
        )
        answer_headers.append(("Content-Length", str(len(answer))))
        start_response(f"{status} {_REASONS[status]}", answer_headers)
        return [answer]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer an ASGI request for one of ``paths`` (mounted on the app's port at ``live_path``)."""
        body = b""
        if scope["method"] == "POST":
            more = True
            while more and len(body) < MAX_FORM_BYTES:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in (b"authorization", b"cookie"):
                # HTTP/2 may split the Cookie field into several; they join with "; " (RFC 9113 §8.2.3).
                key = name.decode("latin-1")
                headers[key] = (
                    f"{headers[key]}; {value.decode('latin-1')}" if key in headers else value.decode("latin-1")
                )
        client = scope.get("client")
        # Reading the metrics takes a moment with many series: off the event loop.
        status, answer_headers, answer = await anyio.to_thread.run_sync(
            self.respond,
            scope["method"],
            scope["path"],
            client[0] if client else None,
            headers,
            body,
            scope.get("scheme") == "https",
        )
        encoded = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer_headers]
        encoded.append((b"content-length", b"%d" % len(answer)))
        await send({"type": "http.response.start", "status": status, "headers": encoded})
        await send({"type": "http.response.body", "body": answer})


_REASONS = {200: "OK", 303: "See Other", 401: "Unauthorized", 403: "Forbidden", 405: "Method Not Allowed"}


def _text(status: int, message: str, extra: list[tuple[str, str]] | None = None) -> Answer:
    return status, [("Content-Type", "text/plain; charset=utf-8"), *(extra or [])], message.encode()
