"""Structured Field Dictionaries (RFC 8941): a table from the parsing algorithm of §4.2, and a round trip."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slipstream.http.structured import BareItem, Member, Token, parse_dictionary


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(b"", {}, id="4.2-empty-is-an-empty-dictionary"),
        pytest.param(b"a=1, b=2", {"a": (1, {}), "b": (2, {})}, id="3.2-members"),
        pytest.param(b"a=1 ,\tb=2  ", {"a": (1, {}), "b": (2, {})}, id="4.2.2-ows-around-commas"),
        pytest.param(b"  a=1", {"a": (1, {})}, id="4.2-leading-sp"),
        pytest.param(b"a, b;x=1", {"a": (True, {}), "b": (True, {"x": 1})}, id="4.2.2-bare-key-is-true"),
        pytest.param(b"a=1, a=2", {"a": (2, {})}, id="4.2.2-repeated-key-last-wins"),
        pytest.param(b"*a.b_c-9=1", {"*a.b_c-9": (1, {})}, id="4.2.3.3-key-characters"),
        pytest.param(b"a=-999999999999999", {"a": (-999999999999999, {})}, id="4.2.4-15-digit-integer"),
        pytest.param(b"a=123456789012.123", {"a": (123456789012.123, {})}, id="4.2.4-12.3-decimal"),
        pytest.param(b"a=-0.5", {"a": (-0.5, {})}, id="4.2.4-negative-decimal"),
        pytest.param(b'a="x \\" \\\\ y"', {"a": ('x " \\ y', {})}, id="4.2.5-string-escapes"),
        pytest.param(b"a=*tok:/x", {"a": (Token("*tok:/x"), {})}, id="4.2.6-token"),
        pytest.param(b"a=:aGVsbG8=:, b=:aGVsbG8:", {"a": (b"hello", {}), "b": (b"hello", {})}, id="4.2.7-bytes"),
        pytest.param(b"a=?1, b=?0", {"a": (True, {}), "b": (False, {})}, id="4.2.8-booleans"),
        pytest.param(b"a=(1 b;p), c=()", {"a": ([(1, {}), (Token("b"), {"p": True})], {}), "c": ([], {})}, id="3.1.1"),
        pytest.param(b"a=( 1  2 );q=?0", {"a": ([(1, {}), (2, {})], {"q": False})}, id="4.2.1.2-inner-list-sp"),
        pytest.param(b"a=1;p; q=x", {"a": (1, {"p": True, "q": Token("x")})}, id="4.2.3.2-parameters"),
    ],
)
def test_valid_dictionaries(value: bytes, expected: dict[str, Member]) -> None:
    assert parse_dictionary(value) == expected


def test_a_token_is_told_apart_from_a_string() -> None:
    assert type(parse_dictionary(b"a=x")["a"][0]) is Token
    assert type(parse_dictionary(b'a="x"')["a"][0]) is str


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"a=1,", id="4.2.2-trailing-comma"),
        pytest.param(b"a=1,,b=2", id="4.2.2-empty-member"),
        pytest.param(b"a=1 b=2", id="4.2.2-missing-comma"),
        pytest.param(b"A=1", id="4.2.3.3-upper-case-key"),
        pytest.param(b"1a=1", id="4.2.3.3-key-starting-with-a-digit"),
        pytest.param(b"\ta=1", id="4.2-leading-tab"),
        pytest.param(b"a =1", id="4.2.2-space-before-equals"),
        pytest.param(b"a= 1", id="4.2.3.1-space-after-equals"),
        pytest.param(b"a=", id="4.2.3.1-no-value"),
        pytest.param(b"a=&", id="4.2.3.1-unknown-type"),
        pytest.param(b"a=1234567890123456", id="4.2.4-16-digit-integer"),
        pytest.param(b"a=1234567890123.1", id="4.2.4-13-digit-decimal"),
        pytest.param(b"a=1.2345", id="4.2.4-four-fraction-digits"),
        pytest.param(b"a=1.", id="4.2.4-trailing-dot"),
        pytest.param(b"a=-", id="4.2.4-sign-alone"),
        pytest.param(b"a=1.2.3", id="4.2.4-two-dots"),
        pytest.param(b'a="x', id="4.2.5-unterminated-string"),
        pytest.param(b'a="\\x"', id="4.2.5-bad-escape"),
        pytest.param(b'a="\x7f"', id="4.2.5-control-character"),
        pytest.param(b'a="\xe9"', id="4.2-not-ascii"),
        pytest.param(b"a=:!!:", id="4.2.7-not-base64"),
        pytest.param(b"a=:aGVsbG8", id="4.2.7-unterminated-bytes"),
        pytest.param(b"a=?2", id="4.2.8-not-a-boolean"),
        pytest.param(b"a=(1 2", id="4.2.1.2-unterminated-inner-list"),
        pytest.param(b"a=(1,2)", id="4.2.1.2-comma-in-inner-list"),
        pytest.param(b"a=((1))", id="4.2.1.2-nested-inner-list"),
        pytest.param(b"a=1;P=2", id="4.2.3.2-upper-case-parameter"),
        pytest.param(b"a=@1659578233", id="rfc8941-has-no-dates"),
    ],
)
def test_invalid_dictionaries_fail_whole(value: bytes) -> None:
    with pytest.raises(ValueError):
        parse_dictionary(value)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64) | st.text(alphabet='abc-=;,()" ?:*.019\t', max_size=40).map(str.encode))
def test_parsing_never_fails_any_other_way(value: bytes) -> None:
    try:
        parse_dictionary(value)
    except ValueError:
        pass


keys = st.from_regex(r"[a-z*][a-z0-9_\-.*]{0,6}", fullmatch=True)
bare_items = st.one_of(
    st.integers(-(10**15) + 1, 10**15 - 1),
    st.decimals(-(10**12) + 1, 10**12 - 1, places=3, allow_nan=False).map(float),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8),
    st.from_regex(r"[A-Za-z*][A-Za-z0-9:/!#$%&'*+.^_`|~-]{0,6}", fullmatch=True).map(Token),
    st.binary(max_size=8),
    st.booleans(),
)


def serialise(item: BareItem) -> str:
    """RFC 8941 §4.1.3, for the round trip."""
    if isinstance(item, bool):
        return "?1" if item else "?0"
    if isinstance(item, bytes):
        return ":" + base64.b64encode(item).decode() + ":"
    if isinstance(item, Token):
        return str(item)
    if isinstance(item, str):
        return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(item, float):
        text = f"{item:.3f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    return str(item)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, st.tuples(bare_items, st.dictionaries(keys, bare_items, max_size=2)), max_size=4))
def test_what_a_serialiser_writes_parses_back(members: dict[str, tuple[BareItem, dict[str, BareItem]]]) -> None:
    def member(key: str, item: BareItem, parameters: dict[str, BareItem]) -> str:
        written = "".join(f";{k}" if v is True else f";{k}={serialise(v)}" for k, v in parameters.items())
        return (key if item is True else f"{key}={serialise(item)}") + written

    text = ", ".join(member(key, item, parameters) for key, (item, parameters) in members.items())
    assert parse_dictionary(text.encode("ascii")) == members
