"""Messages more than one middleware sends: the 412 answer, and what HEAD clients get of a GET's body."""

from __future__ import annotations

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


def head_body(message: Message) -> Message | None:
    """What a HEAD client gets of a body message of the GET run for it: nothing until one empty last message."""
    if message.get("more_body", False):
        return None
    return _LAST_EMPTY_BODY
