"""What the cache keys a request on, what it removes from the request the app sees, and which route TTL applies.

No unkeyed input: ignored query parameters and ignored cookies are left out of the key *and* out of the request
the app is handed, so no stored answer can depend on them. Route TTLs skip requests carrying credentials unless a
rule says ``;credentials``: ``/account/profile.css`` may be Alice's private page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from starlette.types import Scope

from slipstream.cache.keys import CookieFilter, QueryNormaliser, primary_key, url_key
from slipstream.config import parse_route_ttl
from slipstream.http.headers import RawHeaders

_CREDENTIALS = (b"cookie", b"authorization")
# Primary keys remembered per rules (cleared when full), for targets up to this many bytes.
_MEMO_LIMIT = 1024
_MEMO_TARGET_LIMIT = 512


class RequestRules:
    """The keying and freshness rules of one CacheMiddleware, compiled once from its options."""

    def __init__(
        self,
        *,
        ignore_query_params: Iterable[str],
        key_headers: Iterable[str],
        ignore_cookies: Iterable[str],
        route_ttls: Iterable[str],
    ) -> None:
        self.normalise_query = QueryNormaliser(tuple(ignore_query_params))
        # Every entry varies on these, as if each response named them in Vary.
        self.key_headers = tuple(sorted({name.lower() for name in key_headers}))
        self.cookies = CookieFilter(tuple(ignore_cookies))
        self.route_ttls: list[tuple[Callable[[str], object], float, bool]] = []
        self._primary_keys: dict[tuple[object, ...], str] = {}
        for route in route_ttls:
            pattern, seconds, with_credentials = parse_route_ttl(route)
            self.route_ttls.append((re.compile(pattern).match, seconds, with_credentials))

    def primary_key(self, scope: Scope) -> str:
        """`keys.primary_key`, remembered by what it is made of (scheme, Host, path as received, query, server):
        most requests ask for a few URLs again and again. Long targets are worked out each time."""
        host = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
                break
        raw_path: bytes | None = scope.get("raw_path")
        query: bytes = scope.get("query_string", b"")
        memo = (scope.get("scheme", "http"), host, raw_path, scope["path"], query, scope.get("server"))
        found = self._primary_keys.get(memo)
        if found is None:
            found = primary_key(scope, self.normalise_query)
            if len(raw_path or b"") + len(query) + len(host or b"") <= _MEMO_TARGET_LIMIT:
                if len(self._primary_keys) >= _MEMO_LIMIT:
                    self._primary_keys.clear()
                self._primary_keys[memo] = found
        return found

    def keyed_request(self, scope: Scope) -> Scope:
        """The request as the app may see it: what the key leaves out (ignored query parameters and cookies) is
        removed. A copy when something was removed (the cache hands the app a copy of it and follows that one)."""
        query: bytes = scope.get("query_string", b"")
        kept = self.normalise_query.without_ignored(query)
        headers: RawHeaders = scope["headers"]
        cookies_kept = self.cookies.without_ignored(headers)
        if kept is query and cookies_kept is headers:
            return scope
        keyed: Scope = {**scope, "query_string": kept, "headers": cookies_kept}
        raw_path: bytes | None = scope.get("raw_path")
        if raw_path is not None and b"?" in raw_path:  # a server that leaves the query in raw_path
            keyed["raw_path"] = raw_path.partition(b"?")[0] + (b"?" + kept if kept else b"")
        return keyed

    def default_ttl(self, scope: Scope) -> float | None:
        """The first matching route rule's freshness. Rules without ``;credentials`` skip requests carrying
        credentials (ignored cookies are gone by now)."""
        path: str = scope["path"]
        credentials: bool | None = None
        for match, seconds, with_credentials in self.route_ttls:
            if match(path):
                if not with_credentials:
                    if credentials is None:
                        credentials = any(name in _CREDENTIALS for name, _ in scope["headers"])
                    if credentials:
                        continue
                return seconds
        return None

    def has_route_ttl(self, path: str) -> bool:
        """Whether a route rule matches ``path``, for requests with credentials or without."""
        for match, _, _ in self.route_ttls:
            if match(path):
                return True
        return False

    def invalidated_keys(self, scope: Scope, locations: Iterable[bytes]) -> list[str]:
        """What a successful unsafe request invalidates: its target, and same-origin Location / Content-Location."""
        target = self.primary_key(scope)
        keys = [target]
        origin = target.split("/", 3)[:3]
        for location in locations:
            text = location.decode("latin-1")
            try:
                url = url_key("/".join(origin) + text if text.startswith("/") else text, self.normalise_query)
            except ValueError:  # a malformed URL (an unclosed IPv6 bracket) names nothing to invalidate
                continue
            if url.split("/", 3)[:3] == origin:
                keys.append(url)
        return keys
