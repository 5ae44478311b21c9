"""Structured Field Dictionaries (RFC 8941 §3.2), parsed exactly as its §4.2 says.

Strict on purpose: any departure from the grammar fails the whole field, never a guess, so two caches reading
one targeted cache field (RFC 9213) agree on what it says, or agree to ignore it.
"""

from __future__ import annotations

import base64
import binascii
import re


class Token(str):
    """An sf-token, told apart from an sf-string (``max-age=abc`` against ``max-age="abc"``)."""

    __slots__ = ()


# Integer, Decimal (float), String or Token (str), Byte Sequence, Boolean.
BareItem = int | float | str | bytes | bool
Parameters = dict[str, BareItem]
InnerList = list[tuple[BareItem, Parameters]]
Member = tuple[BareItem | InnerList, Parameters]

_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_NUMBER = re.compile(r"-?([0-9]+)(?:\.([0-9]*))?")
_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_ESCAPE = re.compile(r'\\(["\\])')
_BYTES = re.compile(r":([A-Za-z0-9+/=]*):")
_BOOLEAN = {"?1": True, "?0": False}


def parse_dictionary(value: bytes) -> dict[str, Member]:
    """The members of a Dictionary field value, each with its parameters; a repeated key keeps its last value.

    Raises ValueError for anything RFC 8941 §4.2 fails on: non-ASCII bytes, upper-case keys, a trailing comma,
    junk between members, numbers out of range, unterminated strings... An empty value is an empty dictionary.
    """
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("not ASCII") from None
    members: dict[str, Member] = {}
    pos = _skip(text, 0, " ")
    while pos < len(text):
        key, pos = _key(text, pos)
        if text.startswith("=", pos):
            member, pos = _item_or_inner_list(text, pos + 1)
        else:
            parameters, pos = _parameters(text, pos)
            member = (True, parameters)
        members[key] = member
        pos = _skip(text, pos, " \t")
        if pos == len(text):
            break
        if text[pos] != ",":
            raise ValueError(f"expected ',' at {pos}")
        pos = _skip(text, pos + 1, " \t")
        if pos == len(text):
            raise ValueError("trailing comma")
    return members


def _skip(text: str, pos: int, blanks: str) -> int:
    while pos < len(text) and text[pos] in blanks:
        pos += 1
    return pos


def _key(text: str, pos: int) -> tuple[str, int]:
    match = _KEY.match(text, pos)
    if match is None:
        raise ValueError(f"expected a key at {pos}")
    return match.group(), match.end()


def _item_or_inner_list(text: str, pos: int) -> tuple[Member, int]:
    if not text.startswith("(", pos):
        item, pos = _bare_item(text, pos)
        parameters, pos = _parameters(text, pos)
        return (item, parameters), pos
    items: InnerList = []
    pos += 1
    while True:
        pos = _skip(text, pos, " ")
        if text.startswith(")", pos):
            parameters, pos = _parameters(text, pos + 1)
            return (items, parameters), pos
        item, pos = _bare_item(text, pos)
        item_parameters, pos = _parameters(text, pos)
        items.append((item, item_parameters))
        if pos >= len(text) or text[pos] not in " )":
            raise ValueError(f"expected ' ' or ')' at {pos}")


def _parameters(text: str, pos: int) -> tuple[Parameters, int]:
    parameters: Parameters = {}
    while text.startswith(";", pos):
        key, pos = _key(text, _skip(text, pos + 1, " "))
        value: BareItem = True
        if text.startswith("=", pos):
            value, pos = _bare_item(text, pos + 1)
        parameters[key] = value
    return parameters, pos


def _bare_item(text: str, pos: int) -> tuple[BareItem, int]:
    first = text[pos : pos + 1]
    if first == "-" or first.isdigit():
        return _number(text, pos)
    if first == '"':
        match = _STRING.match(text, pos)
        if match is None:
            raise ValueError(f"bad string at {pos}")
        return _ESCAPE.sub(r"\1", match.group(1)), match.end()
    if first == ":":
        return _byte_sequence(text, pos)
    if first == "?":
        boolean = _BOOLEAN.get(text[pos : pos + 2])
        if boolean is None:
            raise ValueError(f"bad boolean at {pos}")
        return boolean, pos + 2
    match = _TOKEN.match(text, pos)
    if match is None:
        raise ValueError(f"expected an item at {pos}")
    return Token(match.group()), match.end()


def _number(text: str, pos: int) -> tuple[int | float, int]:
    match = _NUMBER.match(text, pos)
    if match is None:
        raise ValueError(f"bad number at {pos}")
    whole, fraction = match.groups()
    if fraction is None:
        if len(whole) > 15:
            raise ValueError("integer beyond 15 digits")
        return int(match.group()), match.end()
    if len(whole) > 12 or not 1 <= len(fraction) <= 3:
        raise ValueError("decimal beyond 12.3 digits")
    return float(match.group()), match.end()


def _byte_sequence(text: str, pos: int) -> tuple[bytes, int]:
    match = _BYTES.match(text, pos)
    if match is None:
        raise ValueError(f"bad byte sequence at {pos}")
    encoded = match.group(1).rstrip("=")
    try:
        # RFC 8941 §4.2.7: a parser should not fail for want of "=" padding.
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True), match.end()
    except binascii.Error:
        raise ValueError(f"bad base64 at {pos}") from None
