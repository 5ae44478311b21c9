"""Tagging responses for purges: the Surrogate-Key field, which the cache reads and does not send on."""

from __future__ import annotations

from starlette.responses import Response

SURROGATE_KEY = "surrogate-key"


def tag_response(response: Response, *tags: str) -> Response:
    """Add ``tags`` to the response's Surrogate-Key field; ``cache.purge_tags(tag)`` drops every entry with one."""
    for tag in tags:
        if not tag or any(c.isspace() for c in tag):
            raise ValueError(f"a tag is one non-empty word without spaces, got {tag!r}")
    existing = response.headers.get(SURROGATE_KEY, "").split()
    response.headers[SURROGATE_KEY] = " ".join(dict.fromkeys([*existing, *tags]))
    return response
