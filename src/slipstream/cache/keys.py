"""Cache keys: the primary key of a request's target URI, and the secondary key from the fields a response varies on."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode

from starlette.types import Scope

_DEFAULT_PORTS = {"http": ":80", "https": ":443", "ws": ":80", "wss": ":443"}
_SPACES_AROUND_COMMAS = re.compile(r"\s*,\s*")
_WHITESPACE = re.compile(r"\s+")


class QueryNormaliser:
    """Sorts query parameters and drops ignored ones; ``utm_*``-style glob patterns are allowed."""

    def __init__(self, ignored: Iterable[str]) -> None:
        patterns = [p for p in ignored if p]
        self._exact = frozenset(p for p in patterns if not any(c in p for c in "*?["))
        globs = [fnmatch.translate(p) for p in patterns if p not in self._exact]
        self._glob = re.compile("|".join(globs)).match if globs else None

    def __call__(self, query_string: bytes) -> str:
        if not query_string:
            return ""
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if k not in self._exact and not (self._glob is not None and self._glob(k))]
        kept.sort()
        return urlencode(kept)


def primary_key(scope: Scope, normalise_query: QueryNormaliser) -> str:
    """The target URI: scheme, host (lower-cased, default port dropped), path and normalised query."""
    scheme: str = scope.get("scheme", "http")
    host = ""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1").strip().lower()
            break
    if not host:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else "localhost"
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port and host.endswith(default_port):
        host = host[: -len(default_port)]
    path = scope.get("root_path", "") + scope["path"]
    query = normalise_query(scope.get("query_string", b""))
    return f"{scheme}://{host}{path}?{query}" if query else f"{scheme}://{host}{path}"


def normalise_field_value(value: str) -> str:
    """Whitespace folded so that ``en, fr`` and ``en,fr`` select the same variant."""
    return _SPACES_AROUND_COMMAS.sub(",", _WHITESPACE.sub(" ", value.strip()))


def request_fields(headers: Iterable[tuple[bytes, bytes]], names: Iterable[str] | None = None) -> dict[str, str]:
    """Normalised values of the request fields ``names`` (all when None); repeated fields are joined with commas."""
    wanted = None if names is None else {name.encode("latin-1") for name in names}
    fields: dict[str, str] = {}
    for key, value in headers:
        if wanted is None or key in wanted:
            name = key.decode("latin-1")
            text = normalise_field_value(value.decode("latin-1"))
            fields[name] = f"{fields[name]},{text}" if name in fields else text
    return fields


def vary_fields(vary_values: Iterable[bytes]) -> tuple[str, ...] | None:
    """The Vary field names (lower-case, sorted) other than Accept-Encoding; None for ``Vary: *``."""
    names: set[str] = set()
    for value in vary_values:
        for member in value.decode("latin-1").split(","):
            name = member.strip().lower()
            if name == "*":
                return None
            if name and name != "accept-encoding":
                names.add(name)
    return tuple(sorted(names))


def secondary_key(vary: tuple[str, ...], fields: Mapping[str, str]) -> str:
    return "".join(f"\n{name}:{fields.get(name, '')}" for name in vary)
