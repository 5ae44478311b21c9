"""Accept-Language and Accept-Charset in secondary keys: two values that mean the same select the same variant
(RFC 9111 §4.1), and the language a request prefers above all others finds a variant stored in it.

A list is reduced to its meaning: members lower-cased (language ranges and charset names are case-insensitive,
RFC 4647 §2.1, RFC 9110 §8.3.2), whitespace and empty members dropped, weights written one way (``q=1``, ``Q=1.000``
and none are the same), exact duplicates dropped, and members sorted. Sorting makes ``en, de`` and ``de, en`` one
key: RFC 9110 §12.5.4 says list order "cannot be relied upon" for equal weights, and different weights already
rank the members. A value with anything else in it (another parameter, a malformed weight or range) is only
whitespace-folded, so it can match nothing but itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

# RFC 4647 §2.1 language-range, lower-cased; RFC 9110 §5.6.2 token for a charset.
_LANGUAGE_RANGE = re.compile(r"\*|[a-z]{1,8}(?:-[a-z0-9]{1,8})*")
_CHARSET = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
# RFC 9110 §12.4.2 qvalue.
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_MEMO_SIZE = 512  # distinct values seen in practice are few; past this many the oldest go
_MEMO_KEY_LIMIT = 256
# The Vary of the entries a preferred language may stand in for: Accept-Language alone (Accept-Encoding is the
# cache's own business, and is not part of a stored Vary).
LANGUAGE_VARY = ("accept-language",)

Members = tuple[tuple[str, int], ...]  # (member, weight in thousandths), sorted
Parsed = tuple[Members, str]  # and the members written out: the value's normal form


def _weight(parameters: str) -> int | None:
    """The weight in thousandths of ``;q=0.5`` (1000 when there is none); None for anything else."""
    if not parameters:
        return 1000
    name, equals, value = parameters.strip(" \t").partition("=")
    if name.lower() != "q" or not equals or not _QVALUE.fullmatch(value):
        return None
    whole, _, fraction = value.partition(".")
    return int(whole) * 1000 + int(fraction.ljust(3, "0"))


def _members(value: str, member: re.Pattern[str]) -> Members | None:
    found: set[tuple[str, int]] = set()
    for item in value.split(","):
        name, _, parameters = item.partition(";")
        name = name.strip(" \t").lower()
        if not name and not parameters.strip(" \t"):
            continue  # RFC 9110 §5.6.1: empty list elements do not count
        weight = _weight(parameters)
        if weight is None or not member.fullmatch(name):
            return None
        found.add((name, weight))
    return tuple(sorted(found))


def _read(value: str, member: re.Pattern[str]) -> Parsed | None:
    members = _members(value, member)
    if members is None:
        return None
    return members, ",".join(name if weight == 1000 else f"{name};q={weight / 1000:g}" for name, weight in members)


_memoised = functools.lru_cache(maxsize=_MEMO_SIZE)(_read)


def _parsed(value: str, member: re.Pattern[str]) -> Parsed | None:
    # Memoised, as every hit on an entry varying on Accept-Language reads it; odd long values get no slot.
    return _memoised(value, member) if len(value) <= _MEMO_KEY_LIMIT else _read(value, member)


def normalise_accept_language(value: str) -> str | None:
    """The Accept-Language value reduced to its meaning; None when it is not a valid one."""
    parsed = _parsed(value, _LANGUAGE_RANGE)
    return None if parsed is None else parsed[1]


def normalise_accept_charset(value: str) -> str | None:
    """The Accept-Charset value reduced to its meaning; None when it is not a valid one."""
    parsed = _parsed(value, _CHARSET)
    return None if parsed is None else parsed[1]


def preferred_language(accept_language: str) -> str | None:
    """The language range an Accept-Language value weighs above every other one, if it names one: a single range,
    not ``*``, with the highest weight, which is above 0. None when the top weight is shared or absent."""
    parsed = _parsed(accept_language, _LANGUAGE_RANGE) if accept_language else None
    if not parsed or not parsed[0]:
        return None
    members = parsed[0]
    top = max(weight for _, weight in members)
    best = [name for name, weight in members if weight == top]
    if top == 0 or len(best) != 1 or best[0] == "*":
        return None
    return best[0]


def content_language(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The one language a response's Content-Language names (lower-cased); None for none, several or a bad tag."""
    values = [value for name, value in headers if name.lower() == b"content-language"]
    if len(values) != 1:
        return None
    tag = values[0].decode("latin-1").strip(" \t").lower()
    return tag if tag != "*" and _LANGUAGE_RANGE.fullmatch(tag) else None


def variant_language(vary: tuple[str, ...], headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The language a stored variant is found by when no variant matches a request exactly: its Content-Language,
    for an entry that varies on Accept-Language alone; None for any other."""
    return content_language(headers) if vary == LANGUAGE_VARY else None
