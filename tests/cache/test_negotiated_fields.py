"""The language a request prefers above all others, and the one language a stored variant is in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slipstream.cache.negotiated_fields import (
    LANGUAGE_VARY,
    content_language,
    normalise_accept_charset,
    normalise_accept_language,
    preferred_language,
    variant_language,
)


@pytest.mark.parametrize(
    ("accept_language", "expected"),
    [
        # RFC 9110 §12.4.2: the highest weight wins (cache-tests vary-normalise-lang-select).
        pytest.param("fr;q=0.5, de;q=1.0", "de", id="9110-12.4.2-highest-weight"),
        pytest.param("de", "de", id="9110-12.4.2-no-weight-is-1"),
        pytest.param("en;q=0.5, de;q=0.9", "de", id="9110-12.4.2-highest-below-1"),
        pytest.param("DE-CH, en;q=0.8", "de-ch", id="4647-2.1-case-insensitive"),
        pytest.param("de, *;q=0.5", "de", id="4647-2.1-wildcard-below"),
        pytest.param("de;q=0.5, de", "de", id="9110-12.4.2-one-range-twice"),
        # §12.5.4: order among equal weights "cannot be relied upon", so a shared top weight names no language.
        pytest.param("en, de", None, id="9110-12.5.4-tie"),
        pytest.param("de-ch, de", None, id="4647-3.4-range-and-prefix-tie"),
        pytest.param("*", None, id="4647-2.1-wildcard-names-none"),
        pytest.param("de;q=0.9, *", None, id="4647-2.1-wildcard-on-top"),
        pytest.param("de;q=0", None, id="9110-12.4.2-q0-not-acceptable"),
        pytest.param("", None, id="absent"),
        pytest.param("de;x=1", None, id="9110-12.5.4-invalid"),
    ],
)
def test_preferred_language(accept_language: str, expected: str | None) -> None:
    assert preferred_language(accept_language) == expected
    # The secondary key holds the normalised value: it names the same language.
    assert preferred_language(normalise_accept_language(accept_language) or "") == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param([(b"content-language", b"de")], "de", id="9110-8.5-one-tag"),
        pytest.param([(b"Content-Language", b" DE-CH ")], "de-ch", id="5646-2.1.1-case-insensitive"),
        pytest.param([(b"content-language", b"de, en")], None, id="9110-8.5-several-languages"),
        pytest.param([(b"content-language", b"de"), (b"content-language", b"en")], None, id="9110-8.5-two-lines"),
        pytest.param([(b"content-language", b"*")], None, id="4647-2.1-wildcard-is-no-tag"),
        pytest.param([(b"content-language", b"de_DE")], None, id="5646-2.1-invalid-tag"),
        pytest.param([(b"content-type", b"text/html")], None, id="absent"),
    ],
)
def test_content_language(headers: list[tuple[bytes, bytes]], expected: str | None) -> None:
    assert content_language(headers) == expected


def test_only_a_vary_of_accept_language_alone_finds_variants_by_language() -> None:
    headers = [(b"content-language", b"de")]
    assert variant_language(LANGUAGE_VARY, headers) == "de"
    assert variant_language(("accept-language", "x-tenant"), headers) is None
    assert variant_language((), headers) is None


def test_long_values_are_normalised_without_a_memo_slot() -> None:
    members = [f"en-{index:03d};q=0.{index:03d}" for index in range(1, 200)]
    normalised = normalise_accept_language(", ".join(members))
    assert normalised is not None and normalised == normalise_accept_language(",".join(reversed(members)))
    assert preferred_language(normalised) == "en-199"
    assert normalise_accept_charset("UTF-8 ;q=1") == "utf-8"


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f")))
def test_normalising_twice_changes_nothing_and_never_raises(value: str) -> None:
    for normalise in (normalise_accept_language, normalise_accept_charset):
        once = normalise(value)
        assert once is None or normalise(once) == once
    assert preferred_language(value) in (None, *value.lower().replace(",", " ").replace(";", " ").split())
