"""N+1 detection and its reporting: one SELECT fingerprint run again and again while serving one request.

The statement hook counts each fingerprint in the request's record (``note_statement``); the receiver, once the
request is finished, observes the query count per request and reports every fingerprint that reached the
threshold: a counter by route, a WARNING on the ``slipstream.sql`` logger naming the line that ran it, and an
event on the request's span.
"""

from __future__ import annotations

import logging
from typing import Any

from slipstream.exporters.metrics import LabelledChildren, Metrics
from slipstream.record import MAX_FINGERPRINTS, Receiver, RequestRecord
from slipstream.sqlalchemy.fingerprint import Fingerprint
from slipstream.sqlalchemy.slow import caller_location

log = logging.getLogger("slipstream.sql")


def note_statement(record: RequestRecord, print_: Fingerprint, seconds: float, threshold: int) -> None:
    """Count one statement of the request; the ``threshold``-th run of one SELECT fingerprint is a finding."""
    record.db_queries += 1
    record.db_time += seconds
    seen = record.fingerprints
    if seen is None:
        record.fingerprints = {print_.text: 1}
        return
    count = seen.get(print_.text)
    if count is not None:
        seen[print_.text] = count = count + 1
        if count == threshold and print_.operation == "SELECT":
            findings = record.n_plus_one
            if findings is None:
                findings = record.n_plus_one = {}
            if print_.text not in findings:
                findings[print_.text] = caller_location()
    elif len(seen) < MAX_FINGERPRINTS:
        seen[print_.text] = 1


class DatabaseRequests(Receiver):
    """Per finished request: how many statements it ran, and the N+1 findings."""

    def __init__(self, metrics: Metrics) -> None:
        self.queries = LabelledChildren(metrics.db_queries_per_request.labels)
        self.findings = LabelledChildren(metrics.db_n_plus_one.labels)

    def request_finished(self, record: RequestRecord) -> None:
        route = record.label
        # Zero included: an instrumented app's requests that ran no statement are part of the distribution.
        self.queries[route].observe(record.db_queries)
        findings, seen = record.n_plus_one, record.fingerprints
        if not findings or seen is None:
            return
        self.findings[route].inc()
        span = record.span
        for text, caller in findings.items():
            count = seen.get(text, 0)
            log.warning(
                "N+1: %d executions of %s in %s %s, first reaching the threshold from %s",
                count,
                text,
                record.method,
                route,
                caller,
                extra={"fingerprint": text, "count": count, "http_route": route, "caller": caller},
            )
            if span is not None:
                event: dict[str, Any] = {"db.query.text": text, "slipstream.count": count}
                if caller is not None:
                    event["code.location"] = caller
                span.add_event("slipstream.n_plus_one", event)
