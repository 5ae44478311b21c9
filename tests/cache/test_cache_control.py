from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slipstream.cache import cache_control
from slipstream.cache.cache_control import (
    EMPTY,
    MAX_DELTA_SECONDS,
    NO_DIRECTIVES,
    CacheControl,
    RequestDirectives,
    parse_cache_control,
    parse_delta_seconds,
    request_directives,
)

CC = CacheControl

# Field values as a server may receive them: any visible latin-1 text, no CR/LF.
field_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"))
latin1 = field_values.map(lambda text: text.encode("latin-1"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, EMPTY),
        (b"", EMPTY),
        (b"max-age=60", CC(max_age=60)),
        (b"MAX-AGE=60", CC(max_age=60)),
        (b" max-age = 60 , Public ", CC(max_age=60, public=True)),
        (b"no-store\t,\tpublic", CC(no_store=True, public=True)),
        (b'max-age="60"', CC(max_age=60)),
        (b'max-age="\\6\\0"', CC(max_age=60)),
        (b"max-age=0", CC(max_age=0)),
        (b"max-age=abc", CC(max_age=0)),
        (b"max-age=-1", CC(max_age=0)),
        (b"max-age=1.5", CC(max_age=0)),
        (b"max-age", CC(max_age=0)),
        (b"max-age=", CC(max_age=0)),
        (b'max-age="5', CC(max_age=0)),
        (b"max-age=5 junk", CC(max_age=0)),
        (b"max-age=60, max-age=10", CC(max_age=60)),
        (b"max-age=abc, max-age=10", CC(max_age=0)),
        (b"max-age=2147483647", CC(max_age=2147483647)),
        (b"max-age=2147483648", CC(max_age=MAX_DELTA_SECONDS)),
        (b"max-age=99999999999", CC(max_age=MAX_DELTA_SECONDS)),
        (b"max-age=" + b"9" * 5000, CC(max_age=MAX_DELTA_SECONDS)),
        (b"s-maxage=30", CC(s_maxage=30, must_revalidate=True)),
        (b"s-maxage=x", CC(s_maxage=0, must_revalidate=True)),
        (b"no-cache", CC(no_cache=True)),
        (b'no-cache="Set-Cookie, X-Foo", max-age=5', CC(no_cache=True, max_age=5)),
        (b"private", CC(private=True)),
        (b'private="Set-Cookie"', CC(private=True)),
        (b"must-revalidate", CC(must_revalidate=True)),
        (b"proxy-revalidate", CC(must_revalidate=True)),
        (b"no-transform", CC(no_transform=True)),
        # RFC 9111 §5.2.2.3; a qualifier it does not define is ignored, as for any directive's stray argument.
        (b"no-store, must-understand", CC(no_store=True, must_understand=True)),
        (b"MUST-UNDERSTAND", CC(must_understand=True)),
        (b'must-understand="x"', CC(must_understand=True)),
        (b"stale-while-revalidate=30, stale-if-error=600", CC(stale_while_revalidate=30, stale_if_error=600)),
        (b"stale-while-revalidate=abc, stale-if-error", EMPTY),
        (b"only-if-cached, min-fresh=10", CC(only_if_cached=True, min_fresh=10)),
        (b"min-fresh=x", EMPTY),
        (b"max-stale", CC(max_stale=MAX_DELTA_SECONDS)),
        (b"max-stale=5", CC(max_stale=5)),
        (b"max-stale=abc", EMPTY),
        (b"max-stale=", EMPTY),
        # RFC 9111 §5.2.3: unknown extensions are ignored, known directives beside them still count.
        (b'community="UCI"', EMPTY),
        (b'private, community="UCI"', CC(private=True)),
        (b",,, ,max-age=1,,", CC(max_age=1)),
        (b'foo="bar, max-age=5", max-age=7', CC(max_age=7)),
        (b'foo="unterminated, max-age=5', CC(max_age=5)),
        (b'"max-age=5"', EMPTY),
        (b"=5, max-age=3", CC(max_age=3)),
        (b"max-age=5\xff, no-store", CC(max_age=0, no_store=True)),
    ],
)
def test_parse_cache_control(value: bytes | None, expected: CacheControl) -> None:
    assert parse_cache_control(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (b"", None),
        (b"0", 0),
        (b"007", 7),
        (b"-1", None),
        (b"+1", None),
        (b" 1", None),
        (b"\xd9\xa1", None),  # a non-ASCII digit
        (b"2147483648", MAX_DELTA_SECONDS),
        (b"9" * 5000, MAX_DELTA_SECONDS),
    ],
)
def test_parse_delta_seconds(value: bytes | None, expected: int | None) -> None:
    assert parse_delta_seconds(value) == expected


def test_nothing_understood_is_the_shared_empty_instance() -> None:
    assert parse_cache_control(b"x-unknown=1, another") is EMPTY


def test_memo_returns_the_same_object_for_an_equal_value() -> None:
    first = parse_cache_control(b"max-age=123, public")
    assert parse_cache_control(bytes(bytearray(b"max-age=123, public"))) is first


def test_memo_stays_bounded() -> None:
    for number in range(1000):
        parse_cache_control(b"max-age=%d" % number)
        assert len(cache_control._MEMO) <= cache_control._MEMO_LIMIT
    assert parse_cache_control(b"max-age=999") == CC(max_age=999)


def test_long_values_are_parsed_but_not_memoised() -> None:
    value = b"max-age=5, " + b"x" * 600
    assert parse_cache_control(value) == CC(max_age=5)
    assert value not in cache_control._MEMO


@settings(max_examples=500, deadline=None)
@given(latin1)
def test_parse_cache_control_never_raises(value: bytes) -> None:
    parsed = parse_cache_control(value)
    for number in (parsed.max_age, parsed.s_maxage, parsed.min_fresh, parsed.max_stale):
        assert number is None or 0 <= number <= MAX_DELTA_SECONDS


KNOWN = [
    "max-age=5",
    "s-maxage=7",
    "no-store",
    "no-cache",
    "private",
    "public",
    "must-revalidate",
    "max-stale",
    "must-understand",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(KNOWN), st.sampled_from(["", " ", "\t", " \t "]), st.booleans()),
        min_size=1,
        max_size=6,
    )
)
def test_case_and_whitespace_do_not_matter(members: list[tuple[str, str, bool]]) -> None:
    canonical = ", ".join(name for name, _, _ in members).encode()
    noisy = ",".join(f"{space}{name.upper() if upper else name}{space}" for name, space, upper in members).encode()
    assert parse_cache_control(noisy) == parse_cache_control(canonical) != EMPTY


RD = RequestDirectives


@pytest.mark.parametrize(
    ("cc", "pragma", "honour", "expected"),
    [
        (None, None, True, NO_DIRECTIVES),
        (b"no-cache", None, True, RD(revalidate=True)),
        (b"max-age=0", None, True, RD(revalidate=True, max_age=0)),
        (b"max-age=abc", None, True, RD(revalidate=True, max_age=0)),
        (b"max-age=10", None, True, RD(max_age=10)),
        (b"no-store", None, True, RD(no_store=True)),
        (b"only-if-cached", None, True, RD(only_if_cached=True)),
        (b"max-stale", None, True, RD(max_stale=MAX_DELTA_SECONDS)),
        (b"min-fresh=5, max-stale=9", None, True, RD(min_fresh=5, max_stale=9)),
        (None, b"no-cache", True, RD(revalidate=True)),
        (None, b"No-Cache", True, RD(revalidate=True)),
        (None, b"foo, no-cache ", True, RD(revalidate=True)),
        (None, b"no-cachex", True, NO_DIRECTIVES),
        (None, b"x-no-cache", True, NO_DIRECTIVES),
        (None, b"", True, NO_DIRECTIVES),
        # RFC 9111 §5.4: Pragma is ignored when Cache-Control is present and understood.
        (b"max-age=10", b"no-cache", True, RD(max_age=10)),
        (b"", b"no-cache", True, RD(revalidate=True)),
        (b"x-extension", b"no-cache", True, RD(revalidate=True)),
        (b"no-cache", None, False, NO_DIRECTIVES),
        (b"max-age=0", None, False, NO_DIRECTIVES),
        (None, b"no-cache", False, NO_DIRECTIVES),
        (
            b"no-store, max-stale=5, only-if-cached, min-fresh=3, max-age=1",
            None,
            False,
            RD(no_store=True, max_stale=5, only_if_cached=True),
        ),
    ],
)
def test_request_directives(cc: bytes | None, pragma: bytes | None, honour: bool, expected: RequestDirectives) -> None:
    assert request_directives(cc, pragma, honour) == expected


def test_request_directives_default_honours_client_no_cache() -> None:
    assert request_directives(b"no-cache", None).revalidate


def test_request_memo_stays_bounded() -> None:
    for number in range(1000):
        assert request_directives(b"max-age=%d" % number, None).max_age == number
        assert all(len(memo) <= cache_control._MEMO_LIMIT for memo in cache_control._REQUEST_MEMO)


def test_long_request_values_are_not_memoised() -> None:
    value = b"max-age=5, " + b"x" * 600
    assert request_directives(value, None) == RD(max_age=5)
    assert all(value not in memo for memo in cache_control._REQUEST_MEMO)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.none(), latin1), st.one_of(st.none(), latin1), st.booleans())
def test_request_directives_never_raise(cc: bytes | None, pragma: bytes | None, honour: bool) -> None:
    directives = request_directives(cc, pragma, honour)
    if not honour:
        assert not directives.revalidate
        assert directives.max_age is None and directives.min_fresh is None
