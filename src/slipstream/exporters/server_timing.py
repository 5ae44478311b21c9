"""Receivers that explain one request: the Server-Timing header, and the log line naming its bottleneck."""

from __future__ import annotations

import logging

from slipstream.record import Receiver, RequestRecord

_TOKEN_CHARACTERS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_REMEMBERED_TOKENS = 1000

log = logging.getLogger("slipstream.timing")


class BottleneckLog(Receiver):
    """Flags the operation that took more than ``share`` of its request (span attribute, INFO log record)."""

    def __init__(self, share: float) -> None:
        self.share = share

    def request_finished(self, record: RequestRecord) -> None:
        if not record.operations:
            return
        found = record.bottleneck_within(record.seconds, self.share)
        if found is None:
            return
        name, seconds = found
        record.bottleneck = name
        log.info(
            "bottleneck: %s took %.1f ms of %.1f ms in %s %s",
            name,
            seconds * 1000,
            record.seconds * 1000,
            record.method,
            record.label,
            extra={"operation": name, "http_route": record.label, "share": seconds / record.seconds},
        )


class ServerTiming(BottleneckLog):
    """``Server-Timing``: app time until the headers, cache outcome, db time and query count, each operation; and,
    as BottleneckLog, the log line once the request is finished (one receiver explaining the request both ways)."""

    def __init__(self, share: float) -> None:
        super().__init__(share)
        self._tokens: dict[str, str] = {}

    def response_started(self, record: RequestRecord, headers: list[tuple[bytes, bytes]]) -> None:
        # Timing notes the first byte just before the headers go out: app time is up to then.
        headers.append((b"server-timing", self.header(record, record.first_byte - record.start)))

    def header(self, record: RequestRecord, elapsed: float) -> bytes:
        if not record.operations and not record.db_queries:
            # The common case, in one step.
            if record.cache is None:
                return b"app;dur=%.3f" % (elapsed * 1000)
            return b'app;dur=%.3f, cache;desc="%s"' % (elapsed * 1000, record.cache.encode())
        parts = [f"app;dur={elapsed * 1000:.3f}"]
        if record.cache is not None:
            parts.append(f'cache;desc="{record.cache}"')
        if record.db_queries:
            parts.append(f'db;dur={record.db_time * 1000:.3f};desc="{record.db_queries} queries"')
        bottleneck = record.bottleneck_within(elapsed, self.share)
        for name, (calls, seconds) in record.operations.items():
            entry = f"{self.token(name)};dur={seconds * 1000:.3f}"
            notes = [f"{int(calls)} calls"] if calls > 1 else []
            if bottleneck is not None and name == bottleneck[0]:
                notes.append("bottleneck")
            parts.append(f'{entry};desc="{", ".join(notes)}"' if notes else entry)
        return ", ".join(parts).encode("latin-1")

    def token(self, name: str) -> str:
        """A Server-Timing metric name for an operation: its name with non-token characters replaced."""
        found = self._tokens.get(name)
        if found is None:
            found = "".join(c if c in _TOKEN_CHARACTERS else "-" for c in name) or "-"
            if len(self._tokens) < _REMEMBERED_TOKENS:
                self._tokens[name] = found
        return found
