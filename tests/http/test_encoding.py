from __future__ import annotations

import pytest

from slipstream.http.encoding import (
    IDENTITY,
    EncodingChoice,
    EncodingNegotiator,
    negotiate_encoding,
    parse_accept_encoding,
)

SERVER = ("br", "zstd", "gzip")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gzip, br;q=0.5", {"gzip": 1.0, "br": 0.5}),
        ("GZIP ; Q=0.250", {"gzip": 0.25}),
        ("x-gzip", {"gzip": 1.0}),
        ("gzip;q=1.5, br;q=0.1234, zstd;q=.5", {}),  # out-of-grammar q-values drop the member
        ("gzip, gzip;q=0", {"gzip": 1.0}),  # the first occurrence counts
        ("*;q=0, identity", {"*": 0.0, "identity": 1.0}),
        ("br;foo=bar", {}),
        ("b r, g\tzip", {}),
    ],
)
def test_parse_accept_encoding(value: str, expected: dict[str, float]) -> None:
    assert parse_accept_encoding(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, IDENTITY),
        ("", IDENTITY),
        ("zstd, gzip", EncodingChoice("zstd", True)),
        ("gzip;q=0.9, zstd;q=0.8", EncodingChoice("gzip", True)),
        ("identity;q=0.5, gzip;q=0.5", EncodingChoice("gzip", True)),
        ("identity;q=0, br;q=0.1", EncodingChoice("br", False)),
        ("*;q=0.3", EncodingChoice("br", True)),
        ("*;q=0", None),
        ("identity;q=0", None),
    ],
)
def test_negotiate_encoding(value: str | None, expected: EncodingChoice | None) -> None:
    assert negotiate_encoding(value, SERVER) == expected


def test_negotiator_memo_is_bounded() -> None:
    negotiator = EncodingNegotiator(SERVER)
    for i in range(2000):
        assert negotiator(f"gzip, x-{i}".encode()) == EncodingChoice("gzip", True)
    assert len(negotiator._cache) <= 512
    assert negotiator(b"br") == negotiator(b"br") == EncodingChoice("br", True)
