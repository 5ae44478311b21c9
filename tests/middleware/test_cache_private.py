"""Private data through the cache: cookie-authenticated pages, analytics cookies and route TTLs."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from slipstream import CacheMiddleware, Settings
from tests.middleware.test_cache import stack
from tests.support import asgi_client, call_asgi

pytestmark = pytest.mark.anyio
ALICE = {"cookie": "session=alice"}


def account(cache_control: str = "max-age=60", vary: str | None = None) -> Starlette:
    """A page personalised by a session cookie, answering with the given Cache-Control (and Vary)."""

    async def page(request: Request) -> Response:
        headers = {"cache-control": cache_control} if cache_control else {}
        if vary is not None:
            headers["vary"] = vary
        return PlainTextResponse(f"hello {request.cookies.get('session', 'anonymous')}", headers=headers)

    return Starlette(routes=[Route("/{path:path}", page)])


async def test_a_cookie_request_is_shared_only_when_public_or_keyed_on_the_cookie() -> None:
    async with asgi_client(stack(account())) as client:
        alice = await client.get("/account", headers=ALICE)
        anonymous = await client.get("/account")
        alice_again = await client.get("/account", headers=ALICE)
    assert (alice.text, anonymous.text, anonymous.headers["x-cache"]) == ("hello alice", "hello anonymous", "MISS")
    assert alice_again.headers["x-cache"] == "HIT"  # the anonymous page: the response did not vary on Cookie
    async with asgi_client(stack(account("max-age=60", vary="Cookie"))) as client:
        await client.get("/account", headers=ALICE)
        bob = await client.get("/account", headers={"cookie": "session=bob"})
        alice_again = await client.get("/account", headers=ALICE)
    assert (bob.text, bob.headers["x-cache"]) == ("hello bob", "MISS")
    assert (alice_again.text, alice_again.headers["x-cache"]) == ("hello alice", "HIT")
    async with asgi_client(stack(account("public, max-age=60"))) as client:
        await client.get("/account", headers=ALICE)
        assert (await client.get("/account")).headers["x-cache"] == "HIT"  # the app said the page is shared


async def test_ignored_cookies_do_not_count_and_never_reach_the_app() -> None:
    seen: list[bytes | None] = []

    async def reflects_cookies(scope: Scope, receive: Receive, send: Send) -> None:
        cookie = dict(scope["headers"]).get(b"cookie")
        seen.append(cookie)
        headers = [(b"cache-control", b"max-age=60")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"cookies: " + (cookie or b"none")})

    app = stack(reflects_cookies)
    analytics = [("cookie", "_ga=GA1.1.1; _gid=GA1.2.2; _gcl_au=1.1"), ("cookie", "_fbp=fb.1")]
    planted = await call_asgi(app, path="/a", headers=analytics)
    anonymous = await call_asgi(app, path="/a")
    assert (planted.body, anonymous.body, anonymous.headers["x-cache"]) == (b"cookies: none", b"cookies: none", "HIT")
    signed_in = await call_asgi(app, path="/b", headers=[("cookie", "_ga=GA1.1.1; session=alice; _gid=x")])
    assert signed_in.body == b"cookies: session=alice"
    assert (await call_asgi(app, path="/b")).headers["x-cache"] == "MISS"
    assert seen == [None, b"session=alice", None]


async def test_store_cookie_requests_restores_rfc_9111s_rule() -> None:
    async with asgi_client(stack(account(), Settings(cache_store_cookie_requests=True))) as client:
        await client.get("/account", headers=ALICE)
        assert (await client.get("/account")).text == "hello alice"
    # The middleware's own keywords; without ignored cookies an analytics cookie makes a request personal.
    app = CacheMiddleware(account(), ignore_cookies=(), store_cookie_requests=False)
    async with asgi_client(app) as client:
        await client.get("/account", headers={"cookie": "_ga=1"})
        assert (await client.get("/account")).headers["x-cache"] == "MISS"
    assert Settings.from_env({"SLIPSTREAM_CACHE_STORE_COOKIE_REQUESTS": "1"}).cache_store_cookie_requests is True
    assert Settings.from_env({"SLIPSTREAM_CACHE_IGNORE_COOKIES": "_ga*, consent"}).cache_ignore_cookies == (
        "_ga*",
        "consent",
    )


async def test_route_ttls_skip_requests_carrying_credentials() -> None:
    # Cache deception: a catch-all route renders Alice's page at a path that looks like a stylesheet.
    for settings in (
        Settings(cache_route_ttls=(r".*\.css$=3600",)),
        Settings(cache_route_ttls=(r".*\.css$=3600",), cache_store_cookie_requests=True),
    ):
        async with asgi_client(stack(account(cache_control=""), settings)) as client:
            alice = await client.get("/account/profile.css", headers=ALICE)
            anonymous = await client.get("/account/profile.css")
            assert (alice.text, anonymous.text, anonymous.headers["x-cache"]) == (
                "hello alice",
                "hello anonymous",
                "MISS",
            )
            assert (await client.get("/account/profile.css")).headers["x-cache"] == "HIT"
    # Authorization with a bare "public": explicit sharing, but no freshness; the route's must not supply it.
    settings = Settings(cache_route_ttls=(r".*\.css$=3600",))
    async with asgi_client(stack(account(cache_control="public"), settings)) as client:
        await client.get("/me.css", headers={"authorization": "Bearer alice"})
        assert (await client.get("/me.css")).headers["x-cache"] == "MISS"


async def test_a_credentials_route_ttl_applies_to_requests_carrying_credentials() -> None:
    settings = Settings(cache_route_ttls=("^/me$=60;credentials", "^/me=5"))
    async with asgi_client(stack(account(cache_control="", vary="Cookie"), settings)) as client:
        await client.get("/me", headers=ALICE)
        bob = await client.get("/me", headers={"cookie": "session=bob"})
        alice_again = await client.get("/me", headers=ALICE)
        await client.get("/me/settings", headers=ALICE)
        settings_again = await client.get("/me/settings", headers=ALICE)
    assert (bob.text, bob.headers["x-cache"]) == ("hello bob", "MISS")
    assert (alice_again.text, alice_again.headers["x-cache"]) == ("hello alice", "HIT")
    assert settings_again.headers["x-cache"] == "MISS"
