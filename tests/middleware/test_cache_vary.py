"""Vary through the real CacheMiddleware: field values that mean the same select one variant, and a request's one
most preferred language finds a variant stored in it (the rows of cache-tests' vary.mjs, and their limits)."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from tests.middleware.test_cache import Origin, stack, twice

pytestmark = pytest.mark.anyio

Headers = list[tuple[str, str]]
AL = "accept-language"


class VaryCase(NamedTuple):
    """The origin's Vary and Content-Language (None: none), the request that stores, the one that may reuse it."""

    vary: str
    content_language: str | None
    first: Headers
    second: Headers
    outcome: str

    def response_headers(self) -> Headers:
        language = [] if self.content_language is None else [("content-language", self.content_language)]
        return [("cache-control", "max-age=5000"), ("vary", self.vary), *language]


def case(
    first: str | None, language: str | None, second: str | None, outcome: str, vary: str = "Accept-Language"
) -> VaryCase:
    return VaryCase(
        vary, language, [] if first is None else [(AL, first)], [] if second is None else [(AL, second)], outcome
    )


VARY_CASES = [
    # RFC 9111 §4.1 normalisation (cache-tests vary-normalise-lang-order, -lang-case, -lang-space).
    pytest.param(case("en, de", None, "de, en", "HIT"), id="9110-12.5.4-order"),
    pytest.param(case("en, de", None, "eN, De", "HIT"), id="4647-2.1-case"),
    pytest.param(case("en, de", None, " en ,   de", "HIT"), id="9110-5.6.1-whitespace"),
    pytest.param(case("en;q=0.50", None, "EN;Q=0.5", "HIT"), id="9110-12.4.2-weight-written-otherwise"),
    pytest.param(case("en, de;q=0.5", None, "en;q=0.5, de", "MISS"), id="9110-12.4.2-other-weights"),
    pytest.param(case("en", None, None, "MISS"), id="9111-4.1-absent"),
    # Unknown fields: only whitespace and combined lines (cache-tests vary-normalise-combine, -space).
    pytest.param(VaryCase("Foo", None, [("foo", "1, 2")], [("foo", "1"), ("foo", "2")], "HIT"), id="9110-5.3-combine"),
    pytest.param(VaryCase("Foo", None, [("foo", "1,2")], [("foo", " 1, 2 ")], "HIT"), id="9110-5.6.1-space"),
    pytest.param(VaryCase("Foo", None, [("foo", "1, 2")], [("foo", "2, 1")], "MISS"), id="9111-4.1-unknown-order"),
    pytest.param(VaryCase("Foo", None, [], [("foo", "")], "MISS"), id="9111-4.1-absent-is-not-empty"),
    pytest.param(VaryCase("Foo", None, [("foo", "")], [("foo", "")], "HIT"), id="9111-4.1-empty-matches-empty"),
    # A variant in the language the request prefers to all others (cache-tests vary-normalise-lang-select).
    pytest.param(case("en, de", "de", "fr;q=0.5, de;q=1.0", "HIT"), id="9110-12.5.4-select-by-weight"),
    pytest.param(case("en, de", "DE", "de", "HIT"), id="9110-12.5.4-select-case-insensitive"),
    pytest.param(case(None, "de", "de, *;q=0.1", "HIT"), id="9110-12.5.4-select-default-variant"),
    pytest.param(case("en, de", "de", "fr, de", "MISS"), id="9110-12.5.4-select-tie"),
    pytest.param(case("en, de", "de", "fr, de;q=0.5", "MISS"), id="9110-12.5.4-select-other-preferred"),
    pytest.param(case("en, de", "de", "de;q=0, fr", "MISS"), id="9110-12.4.2-select-q0"),
    pytest.param(case("en, de", "de", "*", "MISS"), id="4647-2.1-select-wildcard"),
    pytest.param(case("en, de", "de", "de-ch", "MISS"), id="4647-3.4-select-no-lookup-fallback"),
    pytest.param(case("en, de", "de-CH", "de", "MISS"), id="4647-3.3.1-select-no-prefix"),
    pytest.param(case("en, de", "de, en", "de", "MISS"), id="9110-8.5-select-one-language-only"),
    pytest.param(case("en, de", None, "de", "MISS"), id="9110-8.5-select-needs-content-language"),
    pytest.param(case("en, de", "de", "de", "HIT", "Accept-Language, Accept-Encoding"), id="9111-4.1-select-ae"),
    pytest.param(case("en, de", "de", "de", "MISS", "Accept-Language, Foo"), id="9111-4.1-select-other-field"),
]


@pytest.mark.parametrize("row", VARY_CASES)
async def test_vary_selects_by_meaning(row: VaryCase) -> None:
    origin = Origin(row.response_headers())
    assert await twice(stack(origin), row.first, row.second) == row.outcome
    assert origin.calls == (1 if row.outcome == "HIT" else 2)
