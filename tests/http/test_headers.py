from __future__ import annotations

import pytest

from slipstream.http.content_types import CompressiblePolicy
from slipstream.http.headers import add_vary, request_header, weaken_etag


def test_request_header_joins_repeated_fields() -> None:
    headers = [(b"accept", b"a"), (b"x", b"1"), (b"accept", b"b")]
    assert request_header(headers, b"accept") == b"a, b"
    assert request_header(headers, b"missing") is None


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ([], [(b"vary", b"Accept-Encoding")]),
        ([(b"vary", b"")], [(b"vary", b"Accept-Encoding")]),
        ([(b"Vary", b"Origin"), (b"vary", b"Cookie")], [(b"vary", b"Origin, Accept-Encoding"), (b"vary", b"Cookie")]),
        ([(b"vary", b"Cookie"), (b"vary", b"accept-encoding")], [(b"vary", b"Cookie"), (b"vary", b"accept-encoding")]),
        ([(b"vary", b"*")], [(b"vary", b"*")]),
    ],
)
def test_add_vary(before: list[tuple[bytes, bytes]], after: list[tuple[bytes, bytes]]) -> None:
    add_vary(before, b"Accept-Encoding")
    assert before == after


@pytest.mark.parametrize(("value", "weak"), [(b'"x"', b'W/"x"'), (b' W/"x" ', b'W/"x"'), (b"bare", b"bare")])
def test_weaken_etag(value: bytes, weak: bytes) -> None:
    assert weaken_etag(value) == weak


@pytest.mark.parametrize(
    ("content_type", "compressible"),
    [
        (None, True),
        (b"text/html; charset=utf-8", True),
        (b"TEXT/HTML", True),
        (b"image/png", False),
        (b"image/svg+xml", True),
        (b"video/webm", False),
        (b"text/event-stream", False),
        (b"application/x-custom", False),
        (b"application/x-custom+json", True),
    ],
)
def test_compressible_policy(content_type: bytes | None, compressible: bool) -> None:
    policy = CompressiblePolicy(("image/*", "video/", "application/x-custom", ""), ("image/svg+xml",), False)
    assert policy(content_type) is compressible
    assert policy(content_type) is compressible  # memoised answer is the same


def test_compressible_policy_memo_is_bounded() -> None:
    policy = CompressiblePolicy(("image/",), (), False)
    for i in range(1000):
        assert policy(f"text/x-{i}".encode())
    assert len(policy._cache) <= 256
