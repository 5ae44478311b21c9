"""Outbound-call totals: one request's (its record's ``outbound``), and the same summed over a route's requests by the
report. Imports nothing of the app's instrumentation, so the record and the report can both use it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipstream.outbound.metrics import OTHER

if TYPE_CHECKING:
    from slipstream.outbound.llm import Usage
    from slipstream.record import RequestRecord

# Hosts one request's record keeps apart; further ones are counted as "other".
MAX_HOSTS_PER_REQUEST = 16


class OutboundTotals:
    """Calls out: count and time (in all and by host: [calls, seconds, slowest], at most ``max_hosts`` hosts, the
    rest under ``overflow``), and the LLM calls among them with their tokens and cost."""

    __slots__ = (
        "calls",
        "cost",
        "hosts",
        "input_tokens",
        "llm_calls",
        "max_hosts",
        "output_tokens",
        "overflow",
        "seconds",
    )

    def __init__(self, max_hosts: int = MAX_HOSTS_PER_REQUEST, overflow: str = OTHER) -> None:
        self.calls = 0
        self.seconds = 0.0
        self.hosts: dict[str, list[float]] = {}
        self.max_hosts = max_hosts
        self.overflow = overflow
        self.llm_calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost = 0.0

    @staticmethod
    def of(record: RequestRecord) -> OutboundTotals:
        totals = record.outbound
        if totals is None:
            totals = record.outbound = OutboundTotals()
        return totals

    def add_call(self, host: str, seconds: float) -> None:
        self.calls += 1
        self.seconds += seconds
        self._add_host(host, 1, seconds, seconds)

    def add_usage(self, usage: Usage, cost: float | None) -> None:
        self.llm_calls += 1
        self.input_tokens += usage.input_tokens or 0
        self.output_tokens += usage.output_tokens or 0
        self.cost += cost or 0.0

    def merge(self, other: OutboundTotals) -> None:
        """Add ``other``'s calls, time, hosts and LLM use to these."""
        self.calls += other.calls
        self.seconds += other.seconds
        self.llm_calls += other.llm_calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost += other.cost
        for host, (calls, seconds, slowest) in other.hosts.items():
            self._add_host(host, calls, seconds, slowest)

    def _add_host(self, host: str, calls: float, seconds: float, slowest: float) -> None:
        found = self.hosts.get(host)
        if found is None:
            if len(self.hosts) >= self.max_hosts:
                host = self.overflow
                found = self.hosts.get(host)
            if found is None:
                self.hosts[host] = [calls, seconds, slowest]
                return
        found[0] += calls
        found[1] += seconds
        found[2] = max(found[2], slowest)
