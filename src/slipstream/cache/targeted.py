"""Targeted cache control (RFC 9213): fields such as ``CDN-Cache-Control`` that speak to some caches only.

slipstream's target list is ``cache_targeted_fields``, most specific first. The first field of it that a response
carries with a valid, non-empty value decides slipstream's own storing and freshness, and Cache-Control and Expires
are then ignored by slipstream (clients still get them): "the server keeps this 60 s, browsers revalidate".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from slipstream.cache.cache_control import MAX_DELTA_SECONDS, CacheControl, parse_cache_control
from slipstream.http.structured import Member, parse_dictionary

# RFC 9213 §3 registers it for every CDN: one in front of slipstream needs it, so it is passed on.
CDN_CACHE_CONTROL = b"cdn-cache-control"
_MEMO_LIMIT = 256
_MEMO_KEY_LIMIT = 512
_MEMO: dict[bytes, CacheControl | None] = {}


def target_list(names: Iterable[str]) -> tuple[bytes, ...]:
    """The configured field names as the lower-case bytes ASGI headers carry, in priority order."""
    return tuple(name.lower().encode("latin-1") for name in names)


def not_sent(targets: Iterable[bytes]) -> frozenset[bytes]:
    """The fields of the target list slipstream removes from what it sends: every one but ``CDN-Cache-Control``,
    since any other name on the list was chosen for slipstream by its user and is meant for it alone."""
    return frozenset(targets) - {CDN_CACHE_CONTROL}


def response_directives(fields: Mapping[bytes, bytes], targets: tuple[bytes, ...]) -> tuple[CacheControl, bytes | None]:
    """The directives in effect for a response (``fields``: lower-case names, repeated fields joined) and the Expires
    value that counts: the first valid, non-empty targeted field and no Expires (RFC 9213 §2.2), else Cache-Control
    and Expires."""
    for name in targets:
        value = fields.get(name)
        if value is not None:
            directives = parse_targeted(value)
            if directives is not None:
                return directives, None
    return parse_cache_control(fields.get(b"cache-control")), fields.get(b"expires")


def parse_targeted(value: bytes) -> CacheControl | None:
    """A targeted field's directives, or None when the field is to be ignored: not a Dictionary, or empty (§2.1)."""
    if value in _MEMO:
        return _MEMO[value]
    try:
        members = parse_dictionary(value)
    except ValueError:
        parsed = None
    else:
        parsed = _directives(members) if members else None
    if len(value) <= _MEMO_KEY_LIMIT:
        if len(_MEMO) >= _MEMO_LIMIT:
            _MEMO.clear()
        _MEMO[value] = parsed
    return parsed


def _directives(members: Mapping[str, Member]) -> CacheControl:
    # Parameters are ignored (§2.1). Request-only directives (max-stale, min-fresh, only-if-cached) mean nothing here.
    def seconds(name: str) -> int | None:
        # delta-seconds maps to a non-negative Integer; a Decimal, a String or a negative number is not used.
        member = members.get(name)
        value = None if member is None else member[0]
        if type(value) is not int or value < 0:
            return None
        return min(value, MAX_DELTA_SECONDS)

    def flag(name: str) -> bool:
        # A Boolean true. must-revalidate (like public) lets a response to a request with Authorization be stored
        # (RFC 9111 §3.5), so a wrong-typed one is ignored rather than honoured.
        member = members.get(name)
        return member is not None and member[0] is True

    s_maxage = seconds("s-maxage")
    return CacheControl(
        max_age=seconds("max-age"),
        s_maxage=s_maxage,
        # RFC 9213 §2.1 asks consumers not to use values of the wrong type, and slipstream ignores such directives
        # but these three: they only ever keep a response out or make the cache ask the app first, so they count
        # whatever their value (``no-store=1``); ignoring them would store what the author meant to keep out. A
        # field-name list (a String) is the unqualified directive, as for Cache-Control.
        no_store="no-store" in members,
        no_cache="no-cache" in members,
        private="private" in members,
        public=flag("public"),
        must_revalidate=flag("must-revalidate") or flag("proxy-revalidate") or s_maxage is not None,
        no_transform=flag("no-transform"),
        stale_while_revalidate=seconds("stale-while-revalidate"),
        stale_if_error=seconds("stale-if-error"),
    )
