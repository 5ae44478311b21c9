from __future__ import annotations

import pytest

from slipstream.http.preconditions import (
    EntityTag,
    Preconditions,
    parse_entity_tag,
    parse_entity_tag_list,
)

TAG = EntityTag(b'"v1"', False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'"v1"', TAG),
        (b' W/"v1" ', EntityTag(b'"v1"', True)),
        (b'""', EntityTag(b'""', False)),
        (b"v1", None),
        (b'"v"1"', None),
        (b'w/"v1"', None),
        (b'"', None),
        (b'"sp ace"', None),
    ],
)
def test_parse_entity_tag(value: bytes, expected: EntityTag | None) -> None:
    assert parse_entity_tag(value) == expected


@pytest.mark.parametrize(
    ("value", "tags"),
    [
        (b'"a", W/"b"', [b'"a"', b'W/"b"']),
        (b'"a,b"', [b'"a,b"']),
        (b'junk, "a"', [b'"a"']),
        (b'"a" junk, "b"', [b'"b"']),
        (b'"unterminated, "b"', [b'"b"']),
        (b',,, "a" ,', [b'"a"']),
        (b'W/ "a", *', []),
        (b"", []),
    ],
)
def test_parse_entity_tag_list(value: bytes, tags: list[bytes]) -> None:
    parsed = parse_entity_tag_list(value)
    assert not parsed.any
    assert [(b"W/" if t.weak else b"") + t.opaque for t in parsed.tags] == tags


def test_no_conditional_headers_means_no_preconditions() -> None:
    assert Preconditions.from_headers([(b"accept", b"*/*")]) is None


def test_repeated_if_none_match_fields_are_one_list() -> None:
    preconditions = Preconditions.from_headers([(b"if-none-match", b'"a"'), (b"if-none-match", b'"v1"')])
    assert preconditions is not None
    assert preconditions.evaluate("GET", TAG, None, True) == 304


@pytest.mark.parametrize(
    ("method", "headers", "etag", "last_modified", "exists", "outcome"),
    [
        ("GET", {b"if-none-match": b'"v1"'}, TAG, None, True, 304),
        ("PUT", {b"if-none-match": b'"v1"'}, TAG, None, True, 412),
        ("GET", {b"if-none-match": b"*"}, None, None, False, None),
        ("GET", {b"if-match": b'"v1"'}, None, None, True, 412),
        ("GET", {b"if-match": b'"v1"'}, EntityTag(b'"v1"', True), None, True, 412),
        ("GET", {b"if-modified-since": b"Sun, 06 Nov 1994 08:49:37 GMT"}, None, 784111777, True, 304),
        ("GET", {b"if-modified-since": b"Sun, 06 Nov 1994 08:49:37 GMT"}, None, None, True, None),
        ("PUT", {b"if-modified-since": b"Sun, 06 Nov 1994 08:49:37 GMT"}, None, 784111777, True, None),
        ("PUT", {b"if-unmodified-since": b"Sun, 06 Nov 1994 08:49:37 GMT"}, None, 784111778, True, 412),
        ("PUT", {b"if-unmodified-since": b"Sun, 06 Nov 1994 08:49:37 GMT"}, None, None, True, None),
    ],
)
def test_evaluation_order(
    method: str,
    headers: dict[bytes, bytes],
    etag: EntityTag | None,
    last_modified: int | None,
    exists: bool,
    outcome: int | None,
) -> None:
    preconditions = Preconditions.from_headers(list(headers.items()))
    assert preconditions is not None
    assert preconditions.evaluate(method, etag, last_modified, exists) == outcome


IMS = b"Sun, 06 Nov 1994 08:49:37 GMT"
IMS_AT = 784111777


@pytest.mark.parametrize(
    ("method", "headers", "etag", "last_modified", "stored_at", "outcome"),
    [
        # RFC 9111 §4.3.2 (1): Last-Modified, when there is one, is what If-Modified-Since is compared with.
        ("GET", {b"if-modified-since": IMS}, None, IMS_AT + 1, IMS_AT - 100, None),
        ("GET", {b"if-modified-since": IMS}, None, IMS_AT, IMS_AT + 100, 304),
        # §4.3.2 (2)/(3): without it, the stored Date (or receipt time): not after the client's date gives 304.
        ("GET", {b"if-modified-since": IMS}, None, None, IMS_AT, 304),
        ("GET", {b"if-modified-since": IMS}, None, None, IMS_AT - 0.5, 304),
        ("HEAD", {b"if-modified-since": IMS}, None, None, IMS_AT - 3000, 304),
        ("GET", {b"if-modified-since": IMS}, None, None, IMS_AT + 0.5, None),
        ("GET", {b"if-modified-since": IMS}, None, None, IMS_AT + 3000, None),
        # RFC 9110 §13.1.3: If-Modified-Since applies to GET and HEAD only.
        ("POST", {b"if-modified-since": IMS}, None, None, IMS_AT - 3000, None),
        # RFC 9110 §13.2.2: If-None-Match present, If-Modified-Since is ignored.
        ("GET", {b"if-none-match": b'"other"', b"if-modified-since": IMS}, TAG, None, IMS_AT - 3000, None),
        # RFC 9110 §13.1.3: an invalid If-Modified-Since date is ignored.
        ("GET", {b"if-modified-since": b"yesterday"}, None, None, IMS_AT - 3000, None),
        # RFC 9110 §13.1.4: If-Unmodified-Since needs a modification date; a Date is not one, so it is ignored.
        ("GET", {b"if-unmodified-since": IMS}, None, None, IMS_AT + 3000, None),
        ("GET", {b"if-unmodified-since": IMS}, None, IMS_AT + 1, IMS_AT - 3000, 412),
    ],
    ids=[
        "9111-4.3.2-1-last-modified-later",
        "9111-4.3.2-1-last-modified-wins-over-date",
        "9111-4.3.2-2-date-equal",
        "9111-4.3.2-3-received-earlier",
        "9111-4.3.2-2-head",
        "9111-4.3.2-3-received-later",
        "9111-4.3.2-2-date-later",
        "9110-13.1.3-get-and-head-only",
        "9110-13.2.2-if-none-match-first",
        "9110-13.1.3-invalid-date-ignored",
        "9110-13.1.4-no-date-fallback",
        "9110-13.1.4-last-modified-only",
    ],
)
def test_if_modified_since_falls_back_to_the_stored_date(
    method: str,
    headers: dict[bytes, bytes],
    etag: EntityTag | None,
    last_modified: int | None,
    stored_at: float | None,
    outcome: int | None,
) -> None:
    preconditions = Preconditions.from_headers(list(headers.items()))
    assert preconditions is not None
    assert preconditions.evaluate(method, etag, last_modified, True, stored_at=stored_at) == outcome
    if last_modified is None and outcome == 304:
        # Without ``stored_at`` (an origin, RFC 9110 §13.1.3) there is no modification date: no 304.
        assert preconditions.evaluate(method, etag, None, True) is None
