"""ResponseRecorder: forwards the app's response as a miss and keeps what the cache may store of it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from starlette.types import Message, Send

from slipstream.cache.tags import SURROGATE_KEY
from slipstream.http.capture import IdentityCapture
from slipstream.http.headers import length_matches
from slipstream.http.responses import edited_headers, head_body

if TYPE_CHECKING:
    from slipstream.cache.storage import StoragePolicy

# Removed from the responses the cache forwards: for slipstream only (add the targeted fields that end here).
NOT_SENT = frozenset({SURROGATE_KEY.encode("ascii")})


class ResponseRecorder:
    """Wraps ``send``: forwards the response (tagged MISS, ``not_sent`` fields removed) and keeps a copy of a complete
    one.

    With ``hold`` (revalidating a stale entry) the start message is kept back: a 304, or a 5xx the cache may
    answer with stale content, never reaches the client; anything else is forwarded as usual.
    """

    __slots__ = (
        "body",
        "capture",
        "chunks",
        "claimed",
        "default_ttl",
        "downstream",
        "forwarded",
        "head",
        "hold",
        "kept",
        "not_sent",
        "on_not_stored",
        "primary",
        "refused",
        "request_headers",
        "serve_stale_on_error",
        "start",
        "storage",
        "streaming",
        "swallowed",
        "tag",
    )

    def __init__(
        self,
        downstream: Send,
        tag: list[tuple[bytes, bytes]],
        *,
        hold: bool = False,
        serve_stale_on_error: bool = False,
        head: bool = False,
        storage: StoragePolicy | None = None,
        request_headers: Iterable[tuple[bytes, bytes]] = (),
        default_ttl: float | None = None,
        on_not_stored: Callable[[], None] | None = None,
        not_sent: frozenset[bytes] = NOT_SENT,
        capture: IdentityCapture | None = None,
        streaming: set[str] | None = None,
        primary: str = "",
    ) -> None:
        """``storage`` (with the request's fields and route default) decides from the start message whether the
        response may be stored; when it may not, ``on_not_stored`` is called once, before that message goes out,
        and also when a streamed body cannot be kept. A body in several messages is kept as it goes out (each
        chunk forwarded at once), up to ``capture.limit`` bytes, when ``storage`` says yes to its start and no other
        request keeps a stream of the same URL (``primary`` in ``streaming``: concurrent downloads of one URL hold
        one copy, not one each; ``claimed`` says this one added it); ``capture`` tells compression inside to keep
        the identity chunks."""
        self.downstream = downstream
        self.storage = storage
        self.request_headers = request_headers
        self.default_ttl = default_ttl
        self.on_not_stored = on_not_stored
        self.not_sent = not_sent
        self.head = head
        self.tag = tag  # added to the start message: the status header of a miss, if any
        self.hold = hold
        self.serve_stale_on_error = serve_stale_on_error
        self.start: Message | None = None
        self.body: bytes | None = None
        self.swallowed = False  # the response was a 304 or an error the stale entry answers instead
        self.forwarded = False
        # ``storage`` said no to the start message: the response is not built into an entry at the end either.
        self.refused = False
        self.capture = capture
        self.streaming = streaming
        self.primary = primary
        self.claimed = False
        self.chunks: list[bytes] | None = None  # a streamed body kept so far
        self.kept = 0

    def may_store(self, start: Message) -> bool:
        storage = self.storage
        return storage is not None and storage.may_store_start(start, self.request_headers, self.default_ttl)

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
            status: int = message["status"]
            if self.hold and (status == 304 or (status >= 500 and self.serve_stale_on_error)):
                self.swallowed = True
                return
            if self.on_not_stored is not None and self.storage is not None and not self.may_store(message):
                self.refused = True
                self._not_stored()
            self.forwarded = True
            await self.downstream(edited_headers(message, self.not_sent, self.tag))
            return
        if self.swallowed:
            return
        if message["type"] == "http.response.body":
            more = message.get("more_body", False)
            if self.chunks is None and self.body is None and not more:
                self.body = message.get("body", b"")  # the common case: the whole body in one message
            else:
                self._keep_streamed(message.get("body", b""), more)
        if self.head and message["type"] == "http.response.body":
            # The app answered as for GET; the client asked for headers only.
            stripped = head_body(message)
            if stripped is None:
                return
            message = stripped
        await self.downstream(message)

    def _keep_streamed(self, chunk: bytes, more: bool) -> None:
        capture = self.capture
        if self.chunks is None:
            start = self.start
            if self.body is not None or start is None or self.refused or capture is None or self.storage is None:
                self._give_up()
                return
            if not capture.limit or not self.may_store(start) or not self._claim_stream():
                self._give_up()
                return
            self.chunks = []
            capture.keep = True
            # Nobody waits on a stream (a client may read it slowly, or never): the waiting requests go to the app
            # themselves now, and the response is stored when its last chunk has gone out.
            self._not_stored()
        assert capture is not None  # chunks are kept only with a capture
        self.kept += len(chunk)
        if self.kept > capture.limit or capture.keep is False:
            self._give_up()
            return
        self.chunks.append(chunk)
        if not more:
            body, self.chunks = b"".join(self.chunks), None
            if self.start is None or not length_matches(self.start.get("headers", ()), len(body)):
                self._give_up()
                return
            self.body = body

    def _claim_stream(self) -> bool:
        streaming = self.streaming
        if streaming is None:
            return True
        if self.primary in streaming:
            return False
        streaming.add(self.primary)
        self.claimed = True
        return True

    def _give_up(self) -> None:
        """Not storable after all (streamed and refused, or past the limit): nothing kept, nobody waits."""
        self.body = b""
        self.start = None
        self.chunks = None
        if self.capture is not None:
            self.capture.keep = False
        self._not_stored()

    def _not_stored(self) -> None:
        callback, self.on_not_stored = self.on_not_stored, None
        if callback is not None:
            callback()
