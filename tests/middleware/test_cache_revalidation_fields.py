"""A revalidation answered 304 inside the stack (ConditionalMiddleware, generated ETags) refreshes every stored field.

RFC 9110 §15.4.5 lets a 304 carry metadata that guides cache updates; to a client it repeats only the validator
and freshness fields, but to the cache revalidating its stored response it repeats the 200's fields, so what the
app says now (a new Date, a counter, a changed header) is what the client and later hits get.
"""

from __future__ import annotations

import pytest
from starlette.types import Receive, Scope, Send

from tests.middleware.test_cache import stack
from tests.support import call_asgi

pytestmark = pytest.mark.anyio


class CountingApp:
    """The same body every time; a header that counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        headers = [(b"cache-control", b"max-age=0"), (b"x-count", b"%d" % self.calls), (b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"the same body"})


async def test_a_304_made_inside_the_stack_refreshes_every_field_of_the_entry() -> None:
    app = CountingApp()
    cache = stack(app)
    first = await call_asgi(cache)
    second = await call_asgi(cache)
    assert (first.headers["x-cache"], first.headers["x-count"]) == ("MISS", "1")
    # Revalidated (max-age=0), the body unchanged: the stored body with the app's fields of now.
    assert (second.status, second.headers["x-cache"], second.headers["x-count"]) == (200, "HIT", "2")
    assert second.body == b"the same body" and second.headers["content-length"] == str(len(b"the same body"))
    assert app.calls == 2


async def test_a_client_304_repeats_only_the_validator_and_freshness_fields() -> None:
    app = CountingApp()
    cache = stack(app)
    etag = (await call_asgi(cache)).headers["etag"]
    answer = await call_asgi(cache, headers=[("if-none-match", etag)])
    assert answer.status == 304
    assert "x-count" not in answer.headers and "content-type" not in answer.headers
