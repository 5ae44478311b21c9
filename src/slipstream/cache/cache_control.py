"""Cache-Control parsing (RFC 9111 §5.2) for a shared cache, and the request directives derived from it."""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 9111 §1.2.2: a delta-seconds too large to represent is sent on as 2**31.
MAX_DELTA_SECONDS = 2**31

# One list member: name, optional "=" value (quoted-string or anything up to the next comma), trailing junk.
# Every alternative can match empty and the tail always ends at a comma or the end, so finditer never stalls
# and a malformed member only ever spoils itself.
_MEMBER = re.compile(rb'[ \t]*([^ \t,=]*)[ \t]*(?:=[ \t]*("(?:[^"\\]|\\.)*"|[^,]*))?[^,]*(?:,|\Z)', re.DOTALL)
_QUOTED_PAIR = re.compile(rb"\\(.)", re.DOTALL)
_MEMO_LIMIT = 256
_MEMO_KEY_LIMIT = 512  # longer values are odd enough not to deserve a memo slot


@dataclass(frozen=True, slots=True)
class CacheControl:
    """The Cache-Control directives a shared cache acts on; absent directives are None or False."""

    max_age: int | None = None
    s_maxage: int | None = None
    no_store: bool = False
    # RFC 9111 §5.2.2.3: store only if the status code's caching rules are understood, and then ignore no-store.
    must_understand: bool = False
    no_cache: bool = False
    private: bool = False
    public: bool = False
    # must-revalidate, proxy-revalidate, or s-maxage (which implies proxy-revalidate, RFC 9111 §5.2.2.10).
    must_revalidate: bool = False
    no_transform: bool = False
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None
    only_if_cached: bool = False
    min_fresh: int | None = None
    max_stale: int | None = None


EMPTY = CacheControl()
_MEMO: dict[bytes, CacheControl] = {}


def parse_delta_seconds(value: bytes | None) -> int | None:
    """``1*DIGIT`` as an int capped at 2**31, None when absent or not delta-seconds."""
    if value is None or not value.isdigit():
        return None
    # int() refuses digit strings past ~4300 characters; anything over ten digits is past the cap anyway.
    return MAX_DELTA_SECONDS if len(value) > 10 else min(int(value), MAX_DELTA_SECONDS)


def _directives(value: bytes) -> dict[bytes, bytes | None]:
    """Lower-cased directive names to unquoted arguments (None when bare); the first occurrence wins."""
    found: dict[bytes, bytes | None] = {}
    for match in _MEMBER.finditer(value):
        name = match.group(1).lower()
        if not name or name in found:
            continue
        argument: bytes | None = match.group(2)
        if argument is not None:
            if argument[:1] == b'"' and len(argument) > 1 and argument[-1:] == b'"':
                argument = _QUOTED_PAIR.sub(rb"\1", argument[1:-1])
            else:
                argument = argument.rstrip(b" \t")
        found[name] = argument
    return found


def _parse(value: bytes) -> CacheControl:
    found = _directives(value)
    # Invalid max-age / s-maxage read as 0, i.e. stale: the safe reading of RFC 9111 §4.2.1.
    max_age = None if b"max-age" not in found else parse_delta_seconds(found[b"max-age"]) or 0
    s_maxage = None if b"s-maxage" not in found else parse_delta_seconds(found[b"s-maxage"]) or 0
    max_stale: int | None = None
    if b"max-stale" in found:
        stale_argument = found[b"max-stale"]
        max_stale = MAX_DELTA_SECONDS if stale_argument is None else parse_delta_seconds(stale_argument)
    parsed = CacheControl(
        max_age=max_age,
        s_maxage=s_maxage,
        no_store=b"no-store" in found,
        must_understand=b"must-understand" in found,
        # The qualified forms name fields to drop; a shared cache may treat them as unqualified (§5.2.2.4, §5.2.2.7).
        no_cache=b"no-cache" in found,
        private=b"private" in found,
        public=b"public" in found,
        must_revalidate=b"must-revalidate" in found or b"proxy-revalidate" in found or s_maxage is not None,
        no_transform=b"no-transform" in found,
        stale_while_revalidate=parse_delta_seconds(found.get(b"stale-while-revalidate")),
        stale_if_error=parse_delta_seconds(found.get(b"stale-if-error")),
        only_if_cached=b"only-if-cached" in found,
        min_fresh=parse_delta_seconds(found.get(b"min-fresh")),
        max_stale=max_stale,
    )
    # Returning the shared EMPTY lets callers test "nothing understood" with an identity check.
    return EMPTY if parsed == EMPTY else parsed


def parse_cache_control(value: bytes | None) -> CacheControl:
    """Parse a Cache-Control field value; never raises, memoised because the same few values repeat."""
    if not value:
        return EMPTY
    cached = _MEMO.get(value)
    if cached is not None:
        return cached
    parsed = _parse(value)
    if len(value) <= _MEMO_KEY_LIMIT:
        if len(_MEMO) >= _MEMO_LIMIT:
            _MEMO.clear()
        _MEMO[value] = parsed
    return parsed


@dataclass(frozen=True, slots=True)
class RequestDirectives:
    """What a request's Cache-Control (or, without one, Pragma) asks of the cache."""

    no_store: bool = False
    revalidate: bool = False
    max_age: int | None = None
    min_fresh: int | None = None
    max_stale: int | None = None
    only_if_cached: bool = False


NO_DIRECTIVES = RequestDirectives()
_PRAGMA_NO_CACHE = RequestDirectives(revalidate=True)
_REQUEST_MEMO: tuple[dict[bytes, RequestDirectives], dict[bytes, RequestDirectives]] = ({}, {})


def _pragma_no_cache(pragma: bytes) -> bool:
    return b"no-cache" in pragma.lower() and any(m.strip(b" \t").lower() == b"no-cache" for m in pragma.split(b","))


def request_directives(
    cache_control: bytes | None, pragma: bytes | None, honour_client_no_cache: bool = True
) -> RequestDirectives:
    """The request's cache directives; with ``honour_client_no_cache`` off, clients cannot force revalidation."""
    cc = parse_cache_control(cache_control)
    if cache_control is None or cc is EMPTY:
        # RFC 9111 §5.4: Pragma counts only when Cache-Control is absent (or carries nothing understood).
        if honour_client_no_cache and pragma is not None and _pragma_no_cache(pragma):
            return _PRAGMA_NO_CACHE
        return NO_DIRECTIVES
    memo = _REQUEST_MEMO[honour_client_no_cache]
    cached = memo.get(cache_control)
    if cached is not None:
        return cached
    if honour_client_no_cache:
        directives = RequestDirectives(
            no_store=cc.no_store,
            revalidate=cc.no_cache or cc.max_age == 0,
            max_age=cc.max_age,
            min_fresh=cc.min_fresh,
            max_stale=cc.max_stale,
            only_if_cached=cc.only_if_cached,
        )
    else:
        # max-age and min-fresh would force revalidation as surely as no-cache does, so they go too.
        directives = RequestDirectives(no_store=cc.no_store, max_stale=cc.max_stale, only_if_cached=cc.only_if_cached)
    if len(cache_control) <= _MEMO_KEY_LIMIT:
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[cache_control] = directives
    return directives
