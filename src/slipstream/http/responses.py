"""Messages more than one middleware sends: the 406 and 412 answers, and what HEAD clients get of a GET's body."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Message, Send

PRECONDITION_FAILED_BODY = b"Precondition Failed\n"
_LAST_EMPTY_BODY: Message = {"type": "http.response.body", "body": b""}


def precondition_failed() -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of a 412 Precondition Failed."""
    body = PRECONDITION_FAILED_BODY
    return [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))], body


async def send_precondition_failed(send: Send, method: str) -> None:
    headers, body = precondition_failed()
    await send({"type": "http.response.start", "status": 412, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


def not_acceptable(codings: Iterable[str]) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of the 406 Not Acceptable answered when a client accepts none of ``codings``, not even
    identity: CompressionMiddleware sends it on a miss, the cache on a hit."""
    body = f"Not Acceptable: this response is only available in: {', '.join(codings)}\n".encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
        (b"vary", b"Accept-Encoding"),
    ]
    return headers, body


def head_body(message: Message) -> Message | None:
    """What a HEAD client gets of a body message of the GET run for it: nothing until one empty last message."""
    if message.get("more_body", False):
        return None
    return _LAST_EMPTY_BODY


def edited_headers(start: Message, drop: frozenset[bytes], add: list[tuple[bytes, bytes]]) -> Message:
    """A copy of the start message with its ``drop`` fields (lower-case names) removed and ``add`` appended."""
    kept = [(k, v) for k, v in start.get("headers", ()) if k.lower() not in drop]
    return {**start, "headers": [*kept, *add]}


def edited_start(send: Send, drop: frozenset[bytes], add: list[tuple[bytes, bytes]]) -> Send:
    """``send`` with the start message edited by `edited_headers`; ``send`` itself when that changes nothing."""
    if not drop and not add:
        return send

    async def edited(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = edited_headers(message, drop, add)
        await send(message)

    return edited
