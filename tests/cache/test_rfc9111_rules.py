"""RFC 9111 (with RFC 5861 and RFC 9110's caching rules) as one table: a row per rule, the RFC's words beside it.

Each row scripts the origin's answers, then sends requests through the cache alone (CacheMiddleware in front of
the origin, as a shared cache in front of a server) and checks what the client got, whether the cache answered
it, and how often the origin was asked. Rows marked ``slipstream:`` are rules stricter than the RFC, on purpose
(README, "Response cache").
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

import anyio
import pytest
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send

from slipstream import CacheMiddleware
from slipstream.exporters.otel import Telemetry
from slipstream.instrumentation import Instrumentation
from tests.support import call_asgi

pytestmark = pytest.mark.anyio

Fields = tuple[tuple[str, str], ...]
LONG = (("cache-control", "max-age=3600"),)
LAST_MODIFIED = "Sun, 06 Nov 1994 08:49:37 GMT"


def ago(seconds: int) -> str:
    """An IMF-fixdate ``seconds`` before now."""
    return email.utils.formatdate(time.time() - seconds, usegmt=True)


@dataclass(frozen=True)
class Answer:
    """One response of the scripted origin."""

    headers: Fields = LONG
    status: int = 200
    body: bytes = b"one"


@dataclass(frozen=True)
class Step:
    """A request and what must come of it. ``calls``: how many times the origin was asked so far; ``sent``: fields
    the origin must have received for this request (None: absent); ``got``: response fields (None: absent)."""

    request: Fields = ()
    method: str = "GET"
    path: str = "/"
    status: int = 200
    outcome: str | None = None
    calls: int | None = None
    body: bytes | None = None
    sent: tuple[tuple[str, str | None], ...] = ()
    got: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class Rule:
    section: str
    says: str
    answers: tuple[Answer, ...]
    steps: tuple[Step, ...]
    settle: bool = False  # wait for background work (a stale-while-revalidate refresh) before the last step


class ScriptedOrigin:
    """Answers with ``answers`` in turn (the last one repeats) and keeps the fields of every request."""

    def __init__(self, answers: tuple[Answer, ...]) -> None:
        self.answers = answers
        self.seen: list[dict[bytes, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = self.answers[min(len(self.seen), len(self.answers) - 1)]
        self.seen.append(dict(scope["headers"]))
        headers = [(b"content-type", b"text/plain")] + [(k.encode(), v.encode()) for k, v in answer.headers]
        body = b"" if answer.status == 304 else answer.body
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def fields(*pairs: tuple[str, str]) -> Fields:
    return tuple(pairs)


VALIDATED = fields(("cache-control", "max-age=0"), ("etag", '"v1"'))
STALE = fields(("cache-control", "max-age=60"), ("age", "7200"))

RULES = [
    # §3: storing responses.
    Rule(
        "9111-3-stores-explicit-freshness",
        "A cache MAY store a response with explicit freshness to a GET",
        (Answer(),),
        (Step(outcome="MISS"), Step(outcome="HIT", calls=1, body=b"one")),
    ),
    Rule(
        "9111-3-no-store",
        "The no-store directive is not present in the response",
        (Answer(fields(("cache-control", "no-store, max-age=3600"))),),
        (Step(), Step(outcome="MISS", calls=2)),
    ),
    Rule(
        "9111-3-private",
        "if the cache is shared: the private response directive is either not present or allows a shared cache",
        (Answer(fields(("cache-control", "private, max-age=3600"))),),
        (Step(), Step(outcome="MISS", calls=2)),
    ),
    Rule(
        "9111-3-explicit-freshness-any-final-status",
        "the response contains ... a max-age ... (any final status code understood)",
        (Answer(status=302, headers=fields(("cache-control", "max-age=3600"), ("location", "/a"))),),
        (Step(status=302), Step(status=302, outcome="HIT", calls=1)),
    ),
    Rule(
        "9111-3-heuristically-cacheable-status",
        "a status code that is defined as heuristically cacheable (404)",
        (Answer(status=404),),
        (Step(status=404), Step(status=404, outcome="HIT", calls=1)),
    ),
    *[
        Rule(
            f"6585-{status}-never-stored",
            f"RFC 6585: a {status} response MUST NOT be stored by a cache",
            (Answer(status=status, headers=fields(("cache-control", "public, max-age=3600"))),),
            (Step(status=status), Step(status=status, outcome="MISS", calls=2)),
        )
        for status in (428, 429, 431, 511)
    ],
    Rule(
        "9111-3-no-freshness-not-stored",
        "slipstream: heuristic freshness is off by default; nothing without explicit freshness is stored",
        (Answer(fields(("last-modified", LAST_MODIFIED))),),
        (Step(), Step(outcome="MISS", calls=2)),
    ),
    Rule(
        "9111-3-request-no-store",
        "the no-store cache directive is not present in the request",
        (Answer(),),
        (Step(request=fields(("cache-control", "no-store")), outcome="BYPASS"), Step(outcome="MISS", calls=2)),
    ),
    Rule(
        "9111-3-partial-not-stored-as-whole",
        "a cache MUST NOT use an incomplete response to answer requests unless it has been made complete (§3.3)",
        (Answer(status=206, headers=fields(("cache-control", "max-age=3600"), ("content-range", "bytes 0-2/9"))),),
        (Step(status=206), Step(status=206, outcome="MISS", calls=2)),
    ),
    # §3.1: storing header fields.
    Rule(
        "9111-3.1-hop-by-hop-not-stored",
        "Connection and the hop-by-hop fields MUST NOT be stored",
        (Answer(fields(("cache-control", "max-age=3600"), ("keep-alive", "timeout=5"), ("x-kept", "1"))),),
        (Step(), Step(outcome="HIT", got=(("keep-alive", None), ("x-kept", "1")))),
    ),
    # §3.5: Authorization.
    Rule(
        "9111-3.5-authorization",
        "a shared cache MUST NOT use a response to a request with Authorization to satisfy any subsequent request",
        (Answer(),),
        (Step(request=fields(("authorization", "Bearer a"))), Step(outcome="MISS", calls=2)),
    ),
    *[
        Rule(
            f"9111-3.5-authorization-{directive.split('=')[0]}",
            f"unless the response explicitly allows it: {directive}",
            (Answer(fields(("cache-control", directive))),),
            (Step(request=fields(("authorization", "Bearer a"))), Step(outcome="HIT", calls=1)),
        )
        for directive in ("public, max-age=3600", "s-maxage=3600", "must-revalidate, max-age=3600")
    ],
    Rule(
        "slipstream-cookie-request",
        "slipstream: a response to a request with Cookie is shared only when public or keyed on Cookie (Varnish)",
        (Answer(),),
        (Step(request=fields(("cookie", "session=a"))), Step(outcome="MISS", calls=2)),
    ),
    Rule(
        "slipstream-set-cookie",
        "slipstream: a response setting a cookie is not stored unless cache_allow_set_cookie",
        (Answer(fields(("cache-control", "max-age=3600"), ("set-cookie", "id=1"))),),
        (Step(), Step(outcome="MISS", calls=2)),
    ),
    # §4: constructing responses from caches.
    Rule(
        "9111-4-method",
        "the presented target URI and that of the stored response match, and the request method allows it",
        (Answer(),),
        (Step(), Step(method="POST", calls=2)),
    ),
    Rule(
        "9111-4.1-vary-match",
        "the selecting header fields nominated by the stored response match those presented",
        (Answer(fields(("cache-control", "max-age=3600"), ("vary", "Accept-Language"))),),
        (
            Step(request=fields(("accept-language", "en"))),
            Step(request=fields(("accept-language", "en")), outcome="HIT", calls=1),
            Step(request=fields(("accept-language", "fr")), outcome="MISS", calls=2),
        ),
    ),
    Rule(
        "9111-4.1-vary-absent-matches-absent",
        "a header field absent from a request can only match another request also lacking it",
        (Answer(fields(("cache-control", "max-age=3600"), ("vary", "X-Tenant"))),),
        (
            Step(),
            Step(outcome="HIT"),
            Step(request=fields(("x-tenant", "a")), outcome="MISS", calls=2),
            Step(request=fields(("x-tenant", "")), outcome="MISS", calls=3),  # sent empty is not absent
            Step(request=fields(("x-tenant", "")), outcome="HIT", calls=3),
        ),
    ),
    Rule(
        "9111-4.1-vary-star",
        "a stored response with a Vary header field value containing * always fails to match",
        (Answer(fields(("cache-control", "max-age=3600"), ("vary", "*"))),),
        (Step(), Step(outcome="MISS", calls=2)),
    ),
    # §4.2: freshness.
    Rule(
        "9111-4.2.1-s-maxage-first",
        "If the cache is shared and the s-maxage response directive is present, use its value",
        (Answer(fields(("cache-control", "max-age=0, s-maxage=3600"))),),
        (Step(), Step(outcome="HIT", calls=1)),
    ),
    Rule(
        "9111-4.2.1-max-age-over-expires",
        "If the max-age response directive is present, use its value (Expires is then ignored)",
        (Answer(fields(("cache-control", "max-age=3600"), ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"))),),
        (Step(), Step(outcome="HIT", calls=1)),
    ),
    Rule(
        "9111-4.2.1-max-age-zero-over-expires",
        "max-age=0 wins over a future Expires",
        (Answer(fields(("cache-control", "max-age=0"), ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"))),),
        (Step(), Step(outcome="MISS", calls=2)),
    ),
    Rule(
        "9111-4.2.1-expires-minus-date",
        "If the Expires response header field is present, use its value minus the value of the Date field",
        (Answer(fields(("expires", ago(-3600)), ("date", ago(0)))),),
        (Step(), Step(outcome="HIT", calls=1)),
    ),
    Rule(
        "9111-4.2.1-expires-before-date",
        "an Expires before the Date: stale on arrival",
        (Answer(fields(("expires", ago(60)), ("date", ago(0)))),),
        (Step(), Step(outcome="MISS", calls=2)),
    ),
    Rule(
        "9111-5.3-invalid-expires",
        "A cache recipient MUST interpret invalid date formats, especially the value 0, as representing a time in "
        "the past",
        (Answer(fields(("expires", "0"))),),
        (Step(), Step(outcome="MISS", calls=2)),
    ),
    Rule(
        "9111-4.2-dates-any-case",
        "a cache recipient SHOULD match the field value case-insensitively (Expires, Date)",
        (Answer(fields(("expires", "thu, 01 JAN 2099 00:00:00 gmt"))),),
        (Step(), Step(outcome="HIT", calls=1)),
    ),
    Rule(
        "9111-4.2.3-age",
        "the current age counts the Age the response arrived with",
        (Answer(STALE),),
        (Step(), Step(outcome="MISS", calls=2)),
    ),
    Rule(
        "9111-5.1-age-list",
        "a list: the first value is used (Age: 7200, 0)",
        (Answer(fields(("cache-control", "max-age=60"), ("age", "7200, 0"))),),
        (Step(), Step(outcome="MISS", calls=2)),
    ),
    Rule(
        "9111-4.2.3-apparent-age",
        "apparent_age = max(0, response_time - date_value)",
        (Answer(fields(("cache-control", "max-age=60"), ("date", ago(7200)))),),
        (Step(), Step(outcome="MISS", calls=2)),
    ),
    Rule(
        "9111-5.1-age-sent",
        "a cache SHOULD send Age with a response it generated from a stored one",
        (Answer(fields(("cache-control", "max-age=3600"), ("age", "100"))),),
        (Step(), Step(outcome="HIT", got=(("age", "100"),))),
    ),
    # §4.2.4 and §5.2.1: serving stale, request directives.
    Rule(
        "9111-5.2.1.2-max-stale",
        "max-stale: the client is willing to accept a response that has exceeded its freshness lifetime",
        (Answer(STALE),),
        (Step(), Step(request=fields(("cache-control", "max-stale=86400")), outcome="HIT", calls=1)),
    ),
    Rule(
        "9111-5.2.2.2-must-revalidate",
        "must-revalidate: once stale, a cache MUST NOT reuse it without successful validation (even with max-stale)",
        (Answer(fields(("cache-control", "max-age=60, must-revalidate"), ("age", "7200"))),),
        (Step(), Step(request=fields(("cache-control", "max-stale=86400")), calls=2)),
    ),
    Rule(
        "9111-5.2.2.8-proxy-revalidate",
        "proxy-revalidate: must-revalidate, for shared caches only",
        (Answer(fields(("cache-control", "max-age=60, proxy-revalidate"), ("age", "7200"))),),
        (Step(), Step(request=fields(("cache-control", "max-stale=86400")), calls=2)),
    ),
    Rule(
        "9111-5.2.2.10-s-maxage-implies-proxy-revalidate",
        "s-maxage incorporates the semantics of proxy-revalidate",
        (Answer(fields(("cache-control", "s-maxage=60"), ("age", "7200"))),),
        (Step(), Step(request=fields(("cache-control", "max-stale=86400")), calls=2)),
    ),
    Rule(
        "9111-5.2.1.1-request-max-age",
        "max-age: the client prefers a response whose age is at most the given seconds",
        (Answer(fields(("cache-control", "max-age=3600"), ("age", "100"))),),
        (
            Step(),
            Step(request=fields(("cache-control", "max-age=1000")), outcome="HIT", calls=1),
            Step(request=fields(("cache-control", "max-age=50")), calls=2),
        ),
    ),
    Rule(
        "9111-5.2.1.3-min-fresh",
        "min-fresh: the client prefers a response that will still be fresh for at least the given seconds",
        (Answer(fields(("cache-control", "max-age=100"))),),
        (
            Step(),
            Step(request=fields(("cache-control", "min-fresh=10")), outcome="HIT", calls=1),
            Step(request=fields(("cache-control", "min-fresh=3600")), calls=2),
        ),
    ),
    Rule(
        "9111-5.2.1.4-request-no-cache",
        "no-cache: a cache MUST NOT use a stored response without successful validation",
        (Answer(),),
        (Step(), Step(request=fields(("cache-control", "no-cache")), calls=2)),
    ),
    Rule(
        "9111-5.2.1.7-only-if-cached",
        "only-if-cached: respond with a stored response or with 504",
        (Answer(),),
        (Step(request=fields(("cache-control", "only-if-cached")), status=504, calls=0),),
    ),
    Rule(
        "9111-5.4-pragma",
        "Pragma: no-cache counts as Cache-Control: no-cache when Cache-Control is absent",
        (Answer(),),
        (
            Step(),
            Step(request=fields(("pragma", "no-cache")), calls=2),
            Step(request=fields(("pragma", "no-cache"), ("cache-control", "max-stale=1")), outcome="HIT", calls=2),
        ),
    ),
    # §4.3: validation.
    Rule(
        "9111-4.3.1-if-none-match",
        "a cache generating a conditional request sends the stored entity tag in If-None-Match",
        (Answer(VALIDATED), Answer(status=304, headers=LONG)),
        (Step(), Step(outcome="HIT", calls=2, body=b"one", sent=(("if-none-match", '"v1"'),))),
    ),
    Rule(
        "9111-4.3.1-if-modified-since",
        "and the stored Last-Modified in If-Modified-Since",
        (
            Answer(fields(("cache-control", "max-age=0"), ("last-modified", LAST_MODIFIED))),
            Answer(status=304, headers=LONG),
        ),
        (Step(), Step(outcome="HIT", calls=2, sent=(("if-modified-since", LAST_MODIFIED),))),
    ),
    Rule(
        "9111-4.3.1-client-validators-not-forwarded",
        "the client's own conditionals are replaced by the stored response's validators",
        (Answer(VALIDATED), Answer(status=304, headers=LONG)),
        (Step(), Step(request=fields(("if-none-match", '"old"')), status=200, sent=(("if-none-match", '"v1"'),))),
    ),
    Rule(
        "9111-4.3.2-cache-answers-if-none-match",
        "a cache evaluates a conditional request against its fresh stored response",
        (Answer(fields(("cache-control", "max-age=3600"), ("etag", '"v1"'))),),
        (Step(), Step(request=fields(("if-none-match", '"v1"')), status=304, outcome="HIT", calls=1)),
    ),
    Rule(
        "9111-4.3.2-cache-answers-if-modified-since",
        "If-Modified-Since against the stored Last-Modified",
        (Answer(fields(("cache-control", "max-age=3600"), ("last-modified", LAST_MODIFIED))),),
        (Step(), Step(request=fields(("if-modified-since", LAST_MODIFIED)), status=304, outcome="HIT", calls=1)),
    ),
    Rule(
        "9111-4.3.3-304-serves-stored",
        "a 304 response: the cache updates the stored response and uses it to satisfy the request",
        (Answer(VALIDATED), Answer(status=304, headers=fields(("cache-control", "max-age=3600"), ("x-new", "2")))),
        (Step(), Step(body=b"one", got=(("x-new", "2"),)), Step(outcome="HIT", calls=2, got=(("x-new", "2"),))),
    ),
    Rule(
        "9111-4.3.3-200-replaces",
        "a full response: the cache uses it to satisfy the request and MAY replace the stored response",
        (Answer(VALIDATED), Answer(LONG, body=b"two")),
        (Step(), Step(outcome="MISS", body=b"two"), Step(outcome="HIT", calls=2, body=b"two")),
    ),
    Rule(
        "9111-4.3.3-5xx-forwarded",
        "a 5xx response: the cache forwards it (stale-if-error absent)",
        (Answer(VALIDATED), Answer(status=500, headers=())),
        (Step(), Step(status=500, calls=2)),
    ),
    Rule(
        "9111-5.2.2.4-no-cache",
        "response no-cache: the response MUST NOT be used without successful validation on the origin server",
        (Answer(fields(("cache-control", "no-cache"), ("etag", '"v1"'))), Answer(status=304, headers=())),
        (Step(), Step(outcome="HIT", calls=2, sent=(("if-none-match", '"v1"'),)), Step(calls=3)),
    ),
    # §4.4: invalidation.
    Rule(
        "9111-4.4-unsafe-invalidates",
        "a cache MUST invalidate the target URI when it receives a non-error status code to an unsafe method",
        (Answer(),),
        (Step(), Step(method="POST"), Step(outcome="MISS", calls=3)),
    ),
    Rule(
        "9111-4.4-error-does-not-invalidate",
        "only a non-error status code invalidates",
        (Answer(), Answer(status=500, headers=()), Answer()),
        (Step(), Step(method="POST", status=500), Step(outcome="HIT", calls=2)),
    ),
    Rule(
        "9111-4.4-location",
        "a cache MAY invalidate the URIs in the Location and Content-Location fields (same origin)",
        (Answer(), Answer(status=201, headers=fields(("location", "/"))), Answer()),
        (Step(), Step(method="POST", path="/new", status=201), Step(outcome="MISS", calls=3)),
    ),
    # RFC 5861.
    Rule(
        "5861-3-stale-while-revalidate",
        "stale-while-revalidate: a cache MAY serve the stale response while it revalidates in the background",
        (
            Answer(fields(("cache-control", "max-age=60, stale-while-revalidate=86400"), ("age", "7200"))),
            Answer(LONG, body=b"two"),
        ),
        (Step(), Step(outcome="STALE", body=b"one"), Step(outcome="HIT", calls=2, body=b"two")),
        settle=True,
    ),
    Rule(
        "5861-4-stale-if-error",
        "stale-if-error: a cache MAY use the stale response when the origin answers with an error",
        (Answer(fields(("cache-control", "max-age=60, stale-if-error=86400"), ("age", "7200"))), Answer(status=503)),
        (Step(), Step(outcome="STALE", body=b"one", calls=2)),
    ),
]


def check(result_headers: dict[str, str], expected: tuple[tuple[str, str | None], ...], what: str) -> None:
    for name, value in expected:
        assert result_headers.get(name) == value, f"{what} {name}"


@pytest.mark.parametrize("rule", RULES, ids=[rule.section for rule in RULES])
async def test_rule(rule: Rule) -> None:
    origin = ScriptedOrigin(rule.answers)
    app = CacheMiddleware(
        origin, instrumentation=Instrumentation(registry=CollectorRegistry(), telemetry=Telemetry(enabled=False))
    )
    for number, step in enumerate(rule.steps):
        if rule.settle and number == len(rule.steps) - 1:
            await anyio.sleep(0.05)
        before = len(origin.seen)
        result = await call_asgi(app, step.method, step.path, headers=step.request)
        label = f"{rule.section} ({rule.says}), step {number + 1}:"
        assert result.status == step.status, label
        if step.outcome is not None:
            assert result.headers.get("x-cache") == step.outcome, label
        if step.calls is not None:
            assert len(origin.seen) == step.calls, label
        if step.body is not None:
            assert result.body == step.body, label
        if step.sent:
            assert len(origin.seen) > before, f"{label} the origin was not asked"
            sent = {k.decode(): v.decode() for k, v in origin.seen[-1].items()}
            check(sent, step.sent, f"{label} sent")
        check(result.headers, step.got, f"{label} got")
