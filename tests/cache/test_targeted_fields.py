"""Targeted cache control (RFC 9213), one row per rule, through the real stack: cache → compression → ETags → app.

Outcomes of a second identical request: FRESH (served from the cache, one app call), REVALIDATED (stored, but the
app was asked again and answered 304), NOT_STORED (the app answered both).
"""

from __future__ import annotations

import anyio
import pytest
from starlette.types import Message, Receive, Scope, Send

from slipstream import CacheMiddleware, Settings
from tests.middleware.apps import TEXT
from tests.middleware.test_cache import Origin, stack
from tests.support import call_asgi, instrumented

pytestmark = pytest.mark.anyio

SCC, CDN, CC = "slipstream-cache-control", "cdn-cache-control", "cache-control"
PAST, FUTURE = "Thu, 01 Jan 2015 00:00:00 GMT", "Thu, 01 Jan 2099 00:00:00 GMT"
FRESH, REVALIDATED, NOT_STORED = ("HIT", 1), ("HIT", 2), ("MISS", 2)
AUTHORIZATION, COOKIE = [("authorization", "Bearer a")], [("cookie", "session=1")]
Headers = list[tuple[str, str]]


def row(id: str, response: Headers, outcome: tuple[str, int], request: Headers | None = None) -> object:
    return pytest.param(response, request or [], outcome, id=id)


@pytest.mark.parametrize(
    ("response_headers", "request_headers", "outcome"),
    [
        # §2.2: the first valid field of the target list replaces Cache-Control and Expires.
        row("2.2-targeted-max-age-over-a-shorter-cc-max-age", [(SCC, "max-age=3600"), (CC, "max-age=0")], FRESH),
        row("2.2-targeted-max-age-over-a-longer-cc-max-age", [(SCC, "max-age=0"), (CC, "max-age=3600")], REVALIDATED),
        row("2.2-past-expires-ignored", [(SCC, "max-age=3600"), ("expires", PAST)], FRESH),
        row("2.2-future-expires-ignored", [(SCC, "max-age=0"), ("expires", FUTURE)], REVALIDATED),
        row("2.2-invalid-expires-ignored", [(CDN, "max-age=3600"), ("expires", "0")], FRESH),
        row(
            "2.2-no-store-over-public-cc",
            [(SCC, "no-store"), (CC, "public, max-age=3600"), ("expires", FUTURE)],
            NOT_STORED,
        ),
        row("2.2-private-over-public-cc", [(SCC, "private"), (CC, "public, max-age=3600")], NOT_STORED),
        row("2.2-no-cache-over-fresh-cc", [(SCC, "no-cache"), (CC, "max-age=3600"), ("expires", FUTURE)], REVALIDATED),
        row("3.1-stored-though-cc-says-no-store", [(CDN, "max-age=600"), (CC, "no-store")], FRESH),
        row("2.2-stored-though-cc-says-private", [(SCC, "max-age=3600"), (CC, "private")], FRESH),
        row("2.2-targeted-s-maxage", [(SCC, "s-maxage=3600"), (CC, "max-age=0")], FRESH),
        row("2.2-age-beyond-targeted-max-age", [(CDN, "max-age=3600"), ("age", "7200")], REVALIDATED),
        row("2.2-most-specific-first-stores", [(SCC, "max-age=3600"), (CDN, "no-store")], FRESH),
        row("2.2-most-specific-first-refuses", [(SCC, "no-store"), (CDN, "max-age=3600")], NOT_STORED),
        row("2.2-cdn-field-without-ours", [(CDN, "no-store"), (CC, "max-age=3600")], NOT_STORED),
        row("3.1-a-field-of-unknown-directives-is-in-effect", [(CDN, "none"), (CC, "max-age=3600")], NOT_STORED),
        row("2.2-extension-directives-ignored", [(CDN, "foobar, max-age=3600")], FRESH),
        row("2.2-fields-off-the-list-change-nothing", [("other-cache-control", "no-store"), (CC, "max-age=60")], FRESH),
        row("2.2-field-names-in-any-case", [("Slipstream-Cache-Control", "max-age=3600"), (CC, "no-store")], FRESH),
        row("2.1-field-lines-combined", [(SCC, "max-age=3600"), (SCC, "no-store")], NOT_STORED),
        # §2.1: a field that is empty or fails to parse is ignored; the next one (or Cache-Control) decides.
        row(
            "2.1-invalid-ours-falls-back-to-cdn", [(SCC, "max-age=0,"), (CDN, "max-age=3600"), (CC, "no-store")], FRESH
        ),
        row("2.1-invalid-ours-falls-back-to-cdn-no-store", [(SCC, "MAX-AGE=3600"), (CDN, "no-store")], NOT_STORED),
        row(
            "2.1-both-invalid-fall-back-to-cc",
            [(SCC, "max-age=3600, &&"), (CDN, "max-age= 3600"), (CC, "no-store")],
            NOT_STORED,
        ),
        row(
            "2.1-both-invalid-fall-back-to-cc-max-age",
            [(SCC, "no-store;"), (CDN, "no-store =?1"), (CC, "max-age=3600")],
            FRESH,
        ),
        row("2.1-empty-field-ignored", [(SCC, ""), (CC, "max-age=3600")], FRESH),
        row("2.1-space-before-equals-fails-the-field", [(CDN, "max-age =3600"), (CC, "max-age=0")], REVALIDATED),
        row("2.1-parameters-ignored", [(SCC, "max-age=3600;foo=bar"), (CC, "no-store")], FRESH),
        row("2.1-max-age-beyond-2-31-capped", [(CDN, "max-age=99999999999")], FRESH),
        # §2.1: a directive whose value has the wrong type is not used; the field is still the one in effect.
        row("2.1-decimal-max-age-not-used", [(SCC, "max-age=3600.5"), (CDN, "max-age=3600")], NOT_STORED),
        row("2.1-string-max-age-not-used", [(CDN, 'max-age="3600"'), (CC, "max-age=3600")], NOT_STORED),
        row("2.1-negative-max-age-not-used", [(SCC, "max-age=-1"), (CC, "max-age=3600")], NOT_STORED),
        row("2.1-no-store-counts-whatever-its-value", [(SCC, "no-store=?0, max-age=3600")], NOT_STORED),
        row("2.1-private-with-field-names-counts", [(SCC, 'private="set-cookie", max-age=3600')], NOT_STORED),
        # RFC 9111 §3.5 and the cookie rule, read from the field in effect: never weaker than with Cache-Control.
        row(
            "3.5-authorization-ignores-public-in-cc",
            [(SCC, "max-age=3600"), (CC, "public, max-age=3600")],
            NOT_STORED,
            AUTHORIZATION,
        ),
        row(
            "3.5-authorization-with-targeted-public",
            [(SCC, "public, max-age=3600"), (CC, "private")],
            FRESH,
            AUTHORIZATION,
        ),
        row("3.5-authorization-with-targeted-s-maxage", [(SCC, "s-maxage=3600")], FRESH, AUTHORIZATION),
        row("3.5-authorization-with-must-revalidate", [(SCC, "must-revalidate, max-age=3600")], FRESH, AUTHORIZATION),
        row(
            "3.5-wrong-typed-must-revalidate-not-used",
            [(SCC, "must-revalidate=1, max-age=3600")],
            NOT_STORED,
            AUTHORIZATION,
        ),
        row("3.5-wrong-typed-public-not-used", [(SCC, "public=1, max-age=3600")], NOT_STORED, AUTHORIZATION),
        row("cookie-ignores-public-in-cc", [(SCC, "max-age=3600"), (CC, "public, max-age=3600")], NOT_STORED, COOKIE),
        row("cookie-with-targeted-public", [(SCC, "public, max-age=3600")], FRESH, COOKIE),
        row("set-cookie-still-refused", [(SCC, "public, max-age=3600"), ("set-cookie", "id=1")], NOT_STORED),
    ],
)
async def test_rfc_9213(response_headers: Headers, request_headers: Headers, outcome: tuple[str, int]) -> None:
    origin = Origin(response_headers)
    app = stack(origin)
    await call_asgi(app, headers=request_headers)
    second = await call_asgi(app, headers=request_headers)
    assert (second.status, second.body) == (200, TEXT)
    assert (second.headers["x-cache"], origin.calls) == outcome


@pytest.mark.parametrize(
    ("response_headers", "outcome"),
    [
        pytest.param([("expires", FUTURE)], FRESH, id="9111-3-expires-is-explicit-freshness"),
        pytest.param([(SCC, "none"), ("expires", FUTURE)], NOT_STORED, id="2.2-an-ignored-expires-is-none"),
    ],
)
async def test_expires_is_ignored_by_the_status_rule_too(response_headers: Headers, outcome: tuple[str, int]) -> None:
    """A 302 is stored only with explicit freshness (RFC 9111 §3): a route TTL alone does not make it storable."""
    origin = Origin(response_headers, status=302)
    app = stack(origin, Settings(cache_route_ttls=("^/=60",)))
    await call_asgi(app)
    second = await call_asgi(app)
    assert (second.status, second.headers["x-cache"], origin.calls) == (302, *outcome)


@pytest.mark.parametrize(
    ("response_headers", "second_status", "outcome"),
    [
        pytest.param(
            [(SCC, "max-age=0, stale-while-revalidate=60"), (CC, "max-age=0")], 200, (200, "STALE"), id="5861-3-swr"
        ),
        pytest.param(
            [(SCC, "max-age=0"), (CC, "max-age=0, stale-while-revalidate=60")],
            200,
            (200, "HIT"),
            id="2.2-swr-in-cc-ignored",
        ),
        pytest.param(
            [(SCC, "max-age=0, must-revalidate, stale-while-revalidate=60")],
            200,
            (200, "HIT"),
            id="2.2-must-revalidate",
        ),
        pytest.param(
            [(SCC, "max-age=0, stale-while-revalidate=60.0")], 200, (200, "HIT"), id="2.1-decimal-swr-not-used"
        ),
        pytest.param([(SCC, "max-age=0, stale-if-error=60")], 503, (200, "STALE"), id="5861-4-sie"),
        pytest.param(
            [(SCC, "max-age=0"), (CC, "max-age=0, stale-if-error=60")], 503, (503, "MISS"), id="2.2-sie-in-cc-ignored"
        ),
        pytest.param([(SCC, 'max-age=0, stale-if-error="60"')], 503, (503, "MISS"), id="2.1-string-sie-not-used"),
    ],
)
async def test_stale_windows_come_from_the_field_in_effect(
    response_headers: Headers, second_status: int, outcome: tuple[int, str]
) -> None:
    origin = Origin(response_headers)
    app = stack(origin)
    await call_asgi(app)
    origin.status = second_status
    second = await call_asgi(app)
    assert (second.status, second.headers["x-cache"]) == outcome
    with anyio.fail_after(5):
        while app.cache.refreshing:  # the background refresh a STALE answer starts
            await anyio.sleep(0.01)


Request = tuple[str, str, Headers]
GET: Request = ("GET", "/", [])


@pytest.mark.parametrize(
    ("own", "requests", "expected"),
    [
        pytest.param("max-age=60", [GET], (200, "MISS"), id="miss"),
        pytest.param("max-age=60", [GET, GET], (200, "HIT"), id="hit"),
        pytest.param("max-age=60", [GET, ("GET", "/", [("accept-encoding", "gzip")])], (200, "HIT"), id="hit-gzip"),
        pytest.param("max-age=60", [GET, ("HEAD", "/", [])], (200, "HIT"), id="head-hit"),
        pytest.param("max-age=60", [GET, ("GET", "/", [("if-none-match", "*")])], (304, "HIT"), id="304-by-the-cache"),
        pytest.param("max-age=0", [GET, GET], (200, "HIT"), id="hit-after-the-app-answered-304"),
        pytest.param("max-age=0, stale-while-revalidate=60", [GET, GET], (200, "STALE"), id="stale"),
        pytest.param("no-store", [GET, GET], (200, "MISS"), id="not-stored"),
        pytest.param("max-age=60", [("GET", "/", [("cache-control", "no-store")])], (200, "BYPASS"), id="bypass"),
        pytest.param("max-age=60", [("GET", "/excluded", [])], (200, "BYPASS"), id="excluded-path"),
        pytest.param("max-age=60", [("POST", "/", [])], (200, None), id="unsafe-method"),
    ],
)
async def test_slipstreams_own_field_never_reaches_clients(
    own: str, requests: list[Request], expected: tuple[int, str | None]
) -> None:
    """The field the app sets for slipstream ends here; CDN-Cache-Control and fields off the list go on."""
    origin = Origin([("Slipstream-Cache-Control", own), (CDN, "max-age=30"), ("other-cache-control", "x")])
    app = stack(origin, Settings(cache_exclude_paths=("^/excluded",)))
    response = [await call_asgi(app, method, path, headers) for method, path, headers in requests][-1]
    assert (response.status, response.headers.get("x-cache")) == expected
    assert "slipstream-cache-control" not in {name.lower() for name in response.headers}
    if response.status != 304:  # a 304 repeats only the fields RFC 9110 §15.4.5 names
        assert (response.headers[CDN], response.headers["other-cache-control"]) == ("max-age=30", "x")
    with anyio.fail_after(5):
        while app.cache.refreshing:
            await anyio.sleep(0.01)


async def test_a_304_freshens_from_the_stored_targeted_field() -> None:
    """RFC 9111 §4.3.4 recomputes freshness from the stored fields: the targeted one still decides, until a 304
    carrying a new value replaces it (as any field); clients never see it."""
    calls = 0
    renewed: Headers = []

    async def origin(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal calls
        calls += 1
        if dict(scope["headers"]).get(b"if-none-match") == b'"v1"':
            headers = [(b"etag", b'"v1"'), *((k.encode(), v.encode()) for k, v in renewed)]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = [(b"etag", b'"v1"'), (SCC.encode(), b"max-age=0"), (b"cache-control", b"max-age=3600")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": TEXT})

    app = stack(origin)
    for _ in range(3):
        await call_asgi(app)
    assert calls == 3, "each use revalidated: the stored max-age=0 is in effect, not Cache-Control's 3600"
    renewed.append((SCC, "max-age=3600"))
    refreshed = await call_asgi(app)
    again = await call_asgi(app)
    assert calls == 4, "the 304's Slipstream-Cache-Control replaced the stored one"
    for response in (refreshed, again):
        assert (response.status, response.headers["x-cache"], response.body) == (200, "HIT", TEXT)
        assert SCC not in response.headers


@pytest.mark.parametrize(
    ("headers", "waits"),
    [
        pytest.param([(SCC, "no-store"), (CC, "max-age=60")], False, id="targeted-no-store"),
        pytest.param([(SCC, "max-age=60"), (CC, "no-store")], True, id="targeted-max-age"),
    ],
)
async def test_concurrent_misses_wait_only_for_what_the_targeted_field_lets_be_stored(
    headers: Headers, waits: bool
) -> None:
    """The early decision at the start message (hit-for-miss, RFC 9213 too): no request waits on a response that
    will not be stored, and one that will be stored is fetched once."""
    origin = Origin(headers)
    release, started, done = anyio.Event(), anyio.Event(), anyio.Event()

    async def held(scope: Scope, receive: Receive, send: Send) -> None:
        async def slow_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                started.set()
                await release.wait()
            await send(message)

        await origin(scope, receive, slow_body if origin.calls == 0 else send)

    async def second() -> None:
        await call_asgi(app)
        done.set()

    # The cache alone: compression and ETags would hold the start message back until the body comes.
    app = CacheMiddleware(held, instrumentation=instrumented())
    async with anyio.create_task_group() as tg:
        tg.start_soon(call_asgi, app)
        await started.wait()
        tg.start_soon(second)
        with anyio.move_on_after(0.3 if waits else 2):
            await done.wait()
        assert done.is_set() is not waits
        release.set()
    assert origin.calls == (1 if waits else 2)


@pytest.mark.parametrize(
    ("targeted_fields", "outcome", "sent"),
    [
        pytest.param((), NOT_STORED, {SCC, CDN, "acme-cache-control"}, id="empty-list-turns-it-off"),
        pytest.param(("Acme-Cache-Control",), FRESH, {SCC, CDN}, id="a-list-of-ones-own"),
        pytest.param(("CDN-Cache-Control",), NOT_STORED, {SCC, CDN, "acme-cache-control"}, id="cdn-alone-is-sent"),
    ],
)
async def test_the_target_list_is_configurable(
    targeted_fields: tuple[str, ...], outcome: tuple[str, int], sent: set[str]
) -> None:
    headers = [("acme-cache-control", "max-age=60"), (SCC, "max-age=60"), (CDN, "no-store"), (CC, "no-store")]
    origin = Origin(headers)
    app = CacheMiddleware(origin, targeted_fields=targeted_fields, instrumentation=instrumented())
    await call_asgi(app)
    second = await call_asgi(app)
    assert (second.headers["x-cache"], origin.calls) == outcome
    assert {name for name in second.headers if name.endswith("cache-control")} == sent | {CC}
