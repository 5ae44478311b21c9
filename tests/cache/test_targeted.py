"""parse_targeted (RFC 9213 §2.1 over RFC 8941 Dictionaries) and the cache_targeted_fields setting."""

from __future__ import annotations

import pytest

from slipstream import Settings
from slipstream.cache.cache_control import MAX_DELTA_SECONDS, CacheControl
from slipstream.cache.targeted import not_sent, parse_targeted, target_list


def test_the_target_list_from_the_environment() -> None:
    assert Settings().cache_targeted_fields == ("Slipstream-Cache-Control", "CDN-Cache-Control")
    environ = {"SLIPSTREAM_CACHE_TARGETED_FIELDS": " Acme-Cache-Control , CDN-Cache-Control"}
    assert Settings.from_env(environ).cache_targeted_fields == ("Acme-Cache-Control", "CDN-Cache-Control")
    assert Settings.from_env({"SLIPSTREAM_CACHE_TARGETED_FIELDS": ""}).cache_targeted_fields == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Cache-Control", "other than Cache-Control and Expires"),
        ("CDN-Cache-Control, expires", "other than Cache-Control and Expires"),
        ("Acme Cache Control", "expected field names"),
        ("Acme-Cache-Control, acme-cache-control", "a field named twice"),
    ],
)
def test_bad_target_lists(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env({"SLIPSTREAM_CACHE_TARGETED_FIELDS": value})


C = CacheControl


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(b"max-age=60", C(max_age=60), id="2.1-integer"),
        pytest.param(b"max-age=60;foo=bar", C(max_age=60), id="2.1-parameters-ignored"),
        pytest.param(b"max-age=60,\tpublic", C(max_age=60, public=True), id="sf-ows-around-commas"),
        pytest.param(b"max-age=60, max-age=10", C(max_age=10), id="sf-last-member-wins"),
        pytest.param(b"max-age=99999999999", C(max_age=MAX_DELTA_SECONDS), id="9111-1.2.2-capped"),
        pytest.param(b"max-age=1.5", C(), id="2.1-decimal-not-used"),
        pytest.param(b'max-age="60"', C(), id="2.1-string-not-used"),
        pytest.param(b"max-age=sixty", C(), id="2.1-token-not-used"),
        pytest.param(b"max-age=-1", C(), id="2.1-negative-not-used"),
        pytest.param(b"max-age", C(), id="2.1-boolean-not-used"),
        pytest.param(b"s-maxage=30", C(s_maxage=30, must_revalidate=True), id="s-maxage-implies-proxy-revalidate"),
        pytest.param(b"s-maxage=30.0", C(), id="2.1-decimal-s-maxage-not-used"),
        pytest.param(b"no-store", C(no_store=True), id="no-store"),
        pytest.param(b"no-store=?0", C(no_store=True), id="no-store-whatever-its-value"),
        pytest.param(b'no-cache="set-cookie"', C(no_cache=True), id="no-cache-with-field-names"),
        pytest.param(b"private=(a b)", C(private=True), id="private-whatever-its-value"),
        pytest.param(b"public", C(public=True), id="public"),
        pytest.param(b"public=?0", C(), id="2.1-public-false-not-used"),
        pytest.param(b"must-revalidate, proxy-revalidate", C(must_revalidate=True), id="must-revalidate"),
        pytest.param(b"must-revalidate=1", C(), id="2.1-integer-must-revalidate-not-used"),
        pytest.param(
            b"stale-while-revalidate=30, stale-if-error=600", C(stale_while_revalidate=30, stale_if_error=600)
        ),
        pytest.param(b"max-stale=5, min-fresh=5, only-if-cached", C(), id="request-directives-mean-nothing"),
        pytest.param(b"none", C(), id="3.1-valid-and-not-empty"),
        pytest.param(b"", None, id="2.1-empty"),
        pytest.param(b"   ", None, id="2.1-blank"),
        pytest.param(b"max-age=60,", None, id="2.1-trailing-comma"),
        pytest.param(b"MAX-AGE=60", None, id="2.1-upper-case-key"),
        pytest.param(b"max-age =60", None, id="2.1-space-before-equals"),
        pytest.param(b"max-age=60, &&", None, id="2.1-junk-member"),
        pytest.param(b"max-age=1234567890123456", None, id="2.1-integer-beyond-15-digits"),
        pytest.param(b'max-age=60, x="\xe9"', None, id="2.1-not-ascii"),
    ],
)
def test_parse_targeted(value: bytes, expected: CacheControl | None) -> None:
    """None: the field is ignored (RFC 9213 §2.1); CacheControl(): valid, in effect, and saying nothing we use."""
    assert parse_targeted(value) == expected


def test_every_field_of_the_list_but_cdn_cache_control_ends_at_slipstream() -> None:
    targets = target_list(("Acme-Cache-Control", "CDN-Cache-Control", "Slipstream-Cache-Control"))
    assert targets == (b"acme-cache-control", b"cdn-cache-control", b"slipstream-cache-control")
    assert not_sent(targets) == {b"acme-cache-control", b"slipstream-cache-control"}
