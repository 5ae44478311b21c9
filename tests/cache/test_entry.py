from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slipstream.cache.entry import CacheEntry, deserialise, serialise

ENTRY = CacheEntry(
    status=200,
    headers=[(b"content-type", b"text/html"), (b"etag", b'"v1"')],
    body=b"<p>hello</p>" * 100,
    etag=b'"v1"',
    last_modified=784111777.0,
    response_time=1_700_000_000.5,
    initial_age=3.0,
    lifetime=60.0,
    stale_while_revalidate=30.0,
    stale_if_error=600.0,
    no_cache=True,
    must_revalidate=True,
    compressible=True,
    negotiated=True,
    vary=("accept-language", "cookie"),
    tags=("product-1", "listing"),
    variants={"br": b"\x0b\x01\x80", "gzip": b"\x1f\x8b"},
    route="/products/{product_id}",
)


def test_round_trip_keeps_every_field() -> None:
    assert deserialise(serialise(ENTRY)) == ENTRY


def test_round_trip_of_a_minimal_entry() -> None:
    entry = CacheEntry(200, [], b"", None, None, 0.0, 0.0, 0.0)
    assert deserialise(serialise(entry)) == entry


@pytest.mark.parametrize(
    "data",
    [b"", b"pickle\x80\x04", serialise(ENTRY)[:-1], serialise(ENTRY) + b"x", b"SLC\x02" + b"\xff" * 80],
    ids=["empty", "foreign", "truncated", "trailing", "garbage"],
)
def test_unreadable_values_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        deserialise(data)


@given(st.binary(max_size=300))
def test_random_bytes_never_do_more_than_raise_value_error(data: bytes) -> None:
    try:
        deserialise(b"SLC\x02" + data)
    except ValueError:
        pass


def test_age_and_storage_ttl() -> None:
    assert ENTRY.age(ENTRY.response_time + 10) == 13.0
    assert ENTRY.age(ENTRY.response_time - 10) == 3.0  # clocks going back never make it younger
    assert ENTRY.storage_ttl(revalidation_grace=300) == 60 - 3 + 600
    no_validator = CacheEntry(200, [], b"", None, None, 0.0, 0.0, 5.0)
    assert no_validator.storage_ttl(revalidation_grace=300) == 5.0
    assert CacheEntry(200, [], b"", None, None, 0.0, 10.0, 5.0).storage_ttl(0) == 1.0
