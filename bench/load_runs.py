"""bench_load.py's figures: one app on one route over the rounds, read from wrk's output."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
SIZES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


@dataclass
class Run:
    """One app on one route: each round's requests/s, latency percentiles (ms), server CPU µs/request, bytes read."""

    app: str
    route: str
    rates: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    bytes_per_response: float = 0.0
    requests: int = 0
    errors: list[str] = field(default_factory=list)

    def ratio(self, bare: Run) -> float:
        """Median over rounds of this run's requests/s over the bare app's in the same round."""
        return statistics.median(f / b for f, b in zip(self.rates, bare.rates, strict=True))

    def p99_ratio(self, bare: Run) -> float:
        return statistics.median(self.p99) / statistics.median(bare.p99)

    def added_cpu(self, bare: Run) -> float:
        return statistics.median(f - b for f, b in zip(self.cpu, bare.cpu, strict=True))


def milliseconds(text: str) -> float:
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    return float(number) * UNITS[text[len(number) :]]


def parse_wrk(output: str, run: Run) -> int:
    """Adds one wrk run's figures to ``run``, its non-2xx/3xx answers and socket errors to ``run.errors``; returns
    the number of requests it completed."""
    lines = [line.split() for line in output.splitlines()]
    rate = next(float(words[1]) for words in lines if words[:1] == ["Requests/sec:"])
    percentiles = {words[0]: milliseconds(words[1]) for words in lines if len(words) == 2 and words[0][-1:] == "%"}
    total = next(words for words in lines if len(words) >= 5 and words[1:3] == ["requests", "in"])
    size = total[4].rstrip("BKMG")
    run.rates.append(rate)
    run.p50.append(percentiles["50%"])
    run.p99.append(percentiles["99%"])
    run.bytes_per_response = float(size) * SIZES[total[4][len(size) :]] / int(total[0])
    run.requests += int(total[0])
    run.errors += [" ".join(words) for words in lines if words[:1] in (["Non-2xx"], ["Socket"])]
    return int(total[0])


def counted_requests(metrics: str, route: str) -> float:
    """The requests ``http_server_request_duration_seconds_count`` counted for ``route``, over every label set."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("http_server_request_duration_seconds_count{") and f'http_route="{route}"' in line:
            total += float(line.rpartition(" ")[2])
    return total


RATIO_TABLE = [
    "| route | app | requests/s | ratio to bare | server CPU µs/request | + µs over bare | p99 ms |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
]


def ratio_rows(runs: list[Run], bare_app: str) -> list[str]:
    """`RATIO_TABLE`'s rows: each run against the run of ``bare_app`` on its route (medians over the rounds)."""
    by_key = {(run.app, run.route): run for run in runs}
    rows = []
    for run in runs:
        bare = by_key[bare_app, run.route]
        added = f"{run.added_cpu(bare):+.0f}" if run.app != bare_app else ""
        cells = [run.route, run.app, f"{statistics.median(run.rates):.0f}", f"{run.ratio(bare):.2f}"]
        cells += [f"{statistics.median(run.cpu):.0f}", added, f"{statistics.median(run.p99):.2f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return rows
