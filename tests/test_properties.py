"""Random header values never crash the middlewares and always get an HTTP-correct answer."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from slipstream import CompressionMiddleware, ConditionalMiddleware
from slipstream.http.dates import parse_http_date
from slipstream.http.encoding import negotiate_encoding
from slipstream.http.preconditions import EntityTag, parse_entity_tag_list
from tests.middleware.apps import TEXT, decode, respond
from tests.support import call_asgi

# Field values as a server may receive them: any visible latin-1 text, no CR/LF.
field_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"))
accept_encoding_like = st.lists(
    st.tuples(
        st.sampled_from(["br", "gzip", "zstd", "x-gzip", "identity", "*", "deflate", "GZip", "", "b r"]),
        st.one_of(st.none(), st.sampled_from(["0", "1", "0.5", "1.000", "0.001", "abc", "2", "-1", ""])),
    ),
    max_size=6,
).map(lambda items: ", ".join(name if q is None else f"{name};q={q}" for name, q in items))

LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
STACK = CompressionMiddleware(
    ConditionalMiddleware(respond(headers=[("content-type", "text/plain"), ("last-modified", LAST_MODIFIED)]))
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(field_values, accept_encoding_like))
def test_any_accept_encoding_gets_a_decodable_answer_or_406(value: str) -> None:
    result = asyncio.run(call_asgi(STACK, headers=[("accept-encoding", value)]))
    choice = negotiate_encoding(value, ("br", "zstd", "gzip"))
    if choice is None:
        assert result.status == 406
    else:
        assert result.status == 200
        assert result.headers.get("content-encoding") == choice.coding
        assert decode(choice.coding, result.body) == TEXT


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "POST"]),
    if_match=st.one_of(st.none(), field_values),
    if_none_match=st.one_of(st.none(), field_values),
    if_modified_since=st.one_of(st.none(), field_values),
    if_unmodified_since=st.one_of(st.none(), field_values),
)
def test_any_validator_headers_get_200_304_or_412(
    method: str,
    if_match: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
    if_unmodified_since: str | None,
) -> None:
    names = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
    values = (if_match, if_none_match, if_modified_since, if_unmodified_since)
    headers = [(name, value) for name, value in zip(names, values, strict=True) if value is not None]
    result = asyncio.run(call_asgi(STACK, method=method, headers=headers))
    assert result.status in (200, 304, 412)
    if result.status == 304:
        assert method in ("GET", "HEAD")
        assert result.body == b""


@given(field_values)
def test_dates_parse_or_are_none(value: str) -> None:
    parsed = parse_http_date(value.encode("latin-1"))
    assert parsed is None or isinstance(parsed, int)


etagc = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0xFF, blacklist_characters='"\x7f'), max_size=12
)


@given(st.lists(st.tuples(etagc, st.booleans()), min_size=1, max_size=5))
def test_entity_tag_lists_round_trip(tags: list[tuple[str, bool]]) -> None:
    expected = tuple(EntityTag(f'"{opaque}"'.encode("latin-1"), weak) for opaque, weak in tags)
    header = b" , ".join((b"W/" if tag.weak else b"") + tag.opaque for tag in expected)
    parsed = parse_entity_tag_list(header)
    assert not parsed.any
    assert parsed.tags == expected
