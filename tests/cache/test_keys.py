"""Primary keys: the target as received, so a path never reads as a query and repeated parameters keep their order.
Secondary keys: Vary'd request fields, equal when their values mean the same (RFC 9111 §4.1)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote

import pytest

from slipstream.cache.keys import QueryNormaliser, primary_key, request_fields, secondary_key
from slipstream.cache.request_rules import RequestRules
from tests.support import http_scope

NORMALISER = QueryNormaliser(("utm_*", "gclid"))


def key(raw_path: bytes, query: bytes = b"") -> str:
    """The key of a request as a server hands it over: ``path`` decoded, ``raw_path`` as received."""
    scope = http_scope(path=unquote(raw_path.decode("latin-1")))
    scope["raw_path"], scope["query_string"] = raw_path, query
    return primary_key(scope, NORMALISER)


def test_the_key_is_the_target_as_received() -> None:
    distinct = [
        ((b"/items/widget%3Fcb=1", b""), (b"/items/widget", b"cb=1")),  # a path is never a query
        ((b"/a%2Fb", b""), (b"/a/b", b"")),  # an escaped slash is not a segment boundary
        ((b"/a%23b", b""), (b"/a#b", b"")),
        ((b"/a%2541", b""), (b"/a%41", b"")),  # an escaped percent sign stays escaped
        ((b"/p", b"id=2&id=1"), (b"/p", b"id=1&id=2")),  # Starlette answers with the last value
        ((b"/p", b"q=a+b"), (b"/p", b"q=a%20b")),  # raw bytes: nothing decoded and re-encoded
        ((b"/p", b"a=1&a=2&b=3"), (b"/p", b"a=2&b=3&a=1")),
    ]
    for first, second in distinct:
        assert key(*first) != key(*second), (first, second)
    shared = [
        ((b"/a%7e%41", b""), (b"/a~A", b"")),  # escaped unreserved characters are decoded
        ((b"/a%3f", b""), (b"/a%3F", b"")),  # hex digits are upper-cased
        ((b"/p", b"b=2&a=1"), (b"/p", b"a=1&b=2")),  # parameters sorted by name
        ((b"/p", b"b=2&a=1&a=0"), (b"/p", b"a=1&a=0&b=2")),  # stable: repeated names keep their order
        ((b"/p", b"a=1&utm_source=x&gclid=y"), (b"/p", b"a=1")),
        ((b"/p", b"q=%2b&&"), (b"/p", b"q=%2B")),
    ]
    for first, second in shared:
        assert key(*first) == key(*second), (first, second)
    assert key(b"/items/widget%3Fcb=1") == "http://testserver/items/widget%3Fcb=1"
    assert key(b"/p", b"utm_medium=y&b=%7e&a=1") == "http://testserver/p?a=1&b=~"
    # A server that gives no raw_path: the decoded path is escaped again, so its "?" is still not a query.
    scope = http_scope(path="/items/widget?cb=1")
    del scope["raw_path"]
    assert primary_key(scope, NORMALISER) == "http://testserver/items/widget%3Fcb=1"


VARY = ("accept-charset", "accept-language", "foo")


def variant(headers: Sequence[tuple[str, str]]) -> str:
    fields = request_fields([(name.encode(), value.encode("latin-1")) for name, value in headers], VARY)
    return secondary_key(VARY, fields)


AL, AC = "accept-language", "accept-charset"


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        # RFC 9111 §4.1: whitespace where the syntax allows it, combined field lines, and semantics-preserving
        # normalisation select the same variant (cache-tests vary-normalise-*).
        pytest.param([(AL, "en, de")], [(AL, "de, en")], True, id="9110-12.5.4-order-of-equal-weights"),
        pytest.param([(AL, "en, de")], [(AL, "eN, De")], True, id="4647-2.1-case"),
        pytest.param([(AL, "en, de")], [(AL, " en ,   de")], True, id="9110-5.6.1-whitespace"),
        pytest.param([(AL, "en ; q=0.5")], [(AL, "en;q=0.5")], True, id="9110-12.4.2-ows-around-semicolon"),
        pytest.param([(AL, "en;Q=0.5")], [(AL, "en;q=0.5")], True, id="9110-12.4.2-q-case-insensitive"),
        pytest.param([(AL, "en;q=1.000, de;q=1")], [(AL, "de, en")], True, id="9110-12.4.2-no-weight-is-1"),
        pytest.param([(AL, "en;q=0.50")], [(AL, "en;q=0.5")], True, id="9110-12.4.2-trailing-zeros"),
        pytest.param([(AL, "fr;q=0.5, de;q=1.0")], [(AL, "de, fr;q=0.5")], True, id="9110-12.4.2-ranked-by-weight"),
        pytest.param([(AL, "en,,de,")], [(AL, "en, de")], True, id="9110-5.6.1-empty-members"),
        pytest.param([(AL, "en, en")], [(AL, "en")], True, id="9110-12.5.4-exact-duplicate"),
        pytest.param([(AL, "en"), (AL, "de")], [(AL, "de, en")], True, id="9110-5.3-combined-lines"),
        pytest.param([(AC, "UTF-8, iso-8859-1;q=0.5")], [(AC, "iso-8859-1;q=0.5,utf-8")], True, id="9110-12.5.2"),
        pytest.param([("foo", "1, 2")], [("foo", "1"), ("foo", "2")], True, id="9110-5.3-unknown-combined"),
        pytest.param([("foo", "1,2")], [("foo", " 1, 2 ")], True, id="9110-5.6.1-unknown-whitespace"),
        # What changes the meaning, or might, keeps variants apart.
        pytest.param([(AL, "en, de;q=0.5")], [(AL, "en;q=0.5, de")], False, id="9110-12.4.2-different-weights"),
        pytest.param([(AL, "en, fr;q=0")], [(AL, "en")], False, id="9110-12.4.2-q0-is-kept"),
        pytest.param([(AL, "en")], [(AL, "en-us")], False, id="4647-3.3.1-range-is-not-its-prefix"),
        pytest.param([(AL, "en, *")], [(AL, "en")], False, id="4647-2.1-wildcard"),
        pytest.param([(AL, "en;q=0.5")], [(AL, "en;q=0.5, en")], False, id="9110-12.5.4-duplicate-other-weight"),
        pytest.param([(AL, "en")], [], False, id="9111-4.1-absent-matches-absent-only"),
        pytest.param([(AL, "en;q=2")], [(AL, "en")], False, id="9110-12.4.2-invalid-weight-kept-apart"),
        pytest.param([(AL, "de;x=1, en")], [(AL, "en, de;x=1")], False, id="9110-12.5.4-invalid-not-reordered"),
        pytest.param([(AL, "en, de")], [(AC, "en, de")], False, id="9111-4.1-field-name-counts"),
        pytest.param([("foo", "1, 2")], [("foo", "2, 1")], False, id="9111-4.1-unknown-order-counts"),
        pytest.param([("foo", "A")], [("foo", "a")], False, id="9111-4.1-unknown-case-counts"),
    ],
)
def test_secondary_keys_are_equal_when_the_fields_mean_the_same(
    first: list[tuple[str, str]], second: list[tuple[str, str]], same: bool
) -> None:
    assert (variant(first) == variant(second)) is same


def test_a_normalised_accept_language_is_written_one_way() -> None:
    fields = request_fields([(b"accept-language", b" DE-ch;Q=0.50 , en ,, fr;q=0 , en;q=1.0")])
    assert fields == {"accept-language": "de-ch;q=0.5,en,fr;q=0"}
    assert request_fields([(b"accept-language", b"de; x=1 ,  en")]) == {"accept-language": "de; x=1,en"}


def test_the_rules_remember_primary_keys_by_everything_they_are_made_of() -> None:
    rules = RequestRules(ignore_query_params=("utm_*",), key_headers=(), ignore_cookies=(), route_ttls=())
    normaliser = QueryNormaliser(("utm_*",))
    scopes = [
        http_scope("GET", "/a", [("host", "Example.COM:80")]),
        http_scope("GET", "/a", [("host", "example.com:8080")]),
        http_scope("GET", "/a", [("host", "")]),
        {**http_scope("GET", "/a", [("host", "example.com")]), "scheme": "https"},
        {**http_scope("GET", "/a"), "query_string": b"b=2&a=1&utm_x=3"},
        {**http_scope("GET", "/a"), "query_string": b"a=1&b=2"},
        {**http_scope("GET", "/caf%C3%A9"), "raw_path": b"/caf%c3%a9"},
        {**http_scope("GET", "/x"), "server": ("10.0.0.1", 81), "headers": []},
        {**http_scope("GET", "/x"), "server": ("10.0.0.2", 81), "headers": []},
    ]
    for _ in range(2):  # worked out, then remembered
        assert [rules.primary_key(s) for s in scopes] == [primary_key(s, normaliser) for s in scopes]
    long_target = {**http_scope("GET", "/a"), "query_string": b"q=" + b"x" * 600}
    assert rules.primary_key(long_target) == primary_key(long_target, normaliser)
    for index in range(1100):
        rules.primary_key(http_scope("GET", f"/page/{index}"))
    assert len(rules._primary_keys) <= 1024
