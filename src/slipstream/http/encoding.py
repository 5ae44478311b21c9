"""Accept-Encoding parsing and content-coding negotiation (RFC 9110 §12.5.3)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")
_ALIASES = {"x-gzip": "gzip"}
# Distinct Accept-Encoding values seen in practice are few; past this many the cache starts over.
_CACHE_LIMIT = 512


@dataclass(frozen=True)
class EncodingChoice:
    """The outcome of negotiation: ``coding`` is None for identity (no content coding)."""

    coding: str | None
    identity_acceptable: bool


IDENTITY = EncodingChoice(None, True)


def parse_accept_encoding(value: str) -> dict[str, float]:
    """Map each listed coding (lower-cased, aliases folded) to its q-value; malformed members are dropped."""
    weights: dict[str, float] = {}
    for member in value.split(","):
        coding, _, params = member.partition(";")
        coding = coding.strip().lower()
        if not _TOKEN.fullmatch(coding):
            continue
        coding = _ALIASES.get(coding, coding)
        q = _parse_q(params)
        if q is not None and coding not in weights:
            weights[coding] = q
    return weights


def _parse_q(params: str) -> float | None:
    q = 1.0
    for param in params.split(";"):
        name, _, raw = param.partition("=")
        name = name.strip().lower()
        if not name:
            continue
        if name != "q":
            return None  # Accept-Encoding codings take no other parameters
        raw = raw.strip()
        if not _QVALUE.fullmatch(raw):
            return None
        q = float(raw)
    return q


def negotiate_encoding(value: str | None, available: Sequence[str]) -> EncodingChoice | None:
    """Pick the coding to send, or None when nothing is acceptable (not even identity).

    Without an Accept-Encoding field we send identity: RFC 9110 allows any coding then, but clients
    that omit the field (curl without --compressed, simple scripts) do not expect one. Client q-values
    rank first; among equal q-values the server's order in ``available`` decides.
    """
    if value is None:
        return IDENTITY
    weights = parse_accept_encoding(value)
    star = weights.get("*")
    best: str | None = None
    best_q = 0.0
    for coding in available:
        q = weights.get(coding, star if star is not None else 0.0)
        if q > best_q:
            best, best_q = coding, q
    # Identity is acceptable unless refused, but it only outranks a coding when the client listed it higher.
    identity_q = weights.get("identity")
    identity_acceptable = identity_q > 0 if identity_q is not None else star is None or star > 0
    if best is not None and (identity_q is None or best_q >= identity_q):
        return EncodingChoice(best, identity_acceptable)
    return IDENTITY if identity_acceptable else None


class EncodingNegotiator:
    """Negotiation against one server's codings, memoised per distinct Accept-Encoding value."""

    def __init__(self, available: Sequence[str]) -> None:
        self.available = tuple(available)
        self._cache: dict[bytes | None, EncodingChoice | None] = {}

    def __call__(self, header: bytes | None) -> EncodingChoice | None:
        try:
            return self._cache[header]
        except KeyError:
            pass
        text = None if header is None else header.decode("latin-1")
        choice = negotiate_encoding(text, self.available)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[header] = choice
        return choice
