"""What a rendering of ``grafana/`` is made of: the job selector, the objectives, the thresholds and the windows.

The defaults are the committed files' values. Everything is checked here, once, so that the builders can trust it:
an objective whose fastest burn rate could never be reached, a latency threshold that is not a bucket bound (the SLI
reads that bucket), a selector that is not a list of label matchers, are refused with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

from slipstream.config import DURATION_BUCKETS
from slipstream.exporters.metrics import DB_DURATION_BUCKETS

__all__ = ["BurnWindow", "GrafanaValues", "byte_size", "duration_seconds", "le"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"([1-9][0-9]*)([smhdw])")
# One label matcher of PromQL: name, operator, double-quoted value without unescaped quotes.
_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*'
_SELECTOR = re.compile(rf"{_MATCHER}(,{_MATCHER})*")
_SEVERITIES = {"page": "critical", "ticket": "warning"}


def duration_seconds(text: str) -> int:
    """Seconds in a Prometheus duration of one unit (``5m``, ``6h``, ``30d``); ValueError otherwise."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"not a duration like 5m, 6h or 30d: {text!r}")
    return int(match[1]) * _UNITS[match[2]]


def byte_size(count: int) -> str:
    """``1073741824`` as ``1 GiB``: the largest binary unit that divides it."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count % size == 0:
            return f"{count // size} {unit}"
    return f"{count} bytes"


def le(bound: float) -> str:
    """The ``le`` label value prometheus_client writes for a bucket bound (``1`` is ``"1.0"``)."""
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class BurnWindow:
    """One multi-window burn-rate condition: the error ratio over ``long`` and over ``short`` both above
    ``factor`` times the error budget. ``severity`` is ``page`` (critical) or ``ticket`` (warning)."""

    severity: str
    long: str
    short: str
    factor: float

    @classmethod
    def parse(cls, text: str) -> BurnWindow:
        """``page:1h/5m:14.4`` (severity, long/short window, burn-rate factor)."""
        try:
            severity, windows, factor = text.split(":")
            long, short = windows.split("/")
            window = cls(severity, long, short, float(factor))
        except ValueError:
            raise ValueError(f"not a burn window like page:1h/5m:14.4: {text!r}") from None
        window.check()
        return window

    def check(self) -> None:
        if self.severity not in _SEVERITIES:
            raise ValueError(f"a burn window's severity is page or ticket, not {self.severity!r}")
        if not duration_seconds(self.short) < duration_seconds(self.long):
            raise ValueError(f"the short window {self.short} must be shorter than the long one, {self.long}")
        if not self.factor > 0:
            raise ValueError(f"a burn-rate factor must be above 0, got {self.factor:g}")

    @property
    def alert_severity(self) -> str:
        return _SEVERITIES[self.severity]

    def __str__(self) -> str:
        return f"{self.severity}:{self.long}/{self.short}:{self.factor:g}"


# The Google SRE workbook's windows for a 30-day objective: 2% of the budget spent in 1 h, 5% in 6 h page;
# 10% in 1 d or in 3 d open a ticket.
DEFAULT_BURN_WINDOWS = (
    BurnWindow("page", "1h", "5m", 14.4),
    BurnWindow("page", "6h", "30m", 6),
    BurnWindow("ticket", "1d", "2h", 3),
    BurnWindow("ticket", "3d", "6h", 1),
)


@dataclass(frozen=True)
class GrafanaValues:
    """The user's values; ``GrafanaValues()`` renders the committed ``grafana/``."""

    # Label matchers every rule's raw selector carries, and the dashboards' job list is drawn from.
    selector: str = 'job=~"slipstream.*"'
    availability_objective: float = 0.99
    latency_threshold: float = 0.1
    latency_objective: float = 0.95
    slo_period: str = "30d"
    burn_windows: tuple[BurnWindow, ...] = DEFAULT_BURN_WINDOWS
    # Per-route 5xx ratio that raises a warning, and the request rate a route needs before it can.
    error_ratio: float = 0.01
    min_request_rate: float = 0.05
    cache_hit_ratio: float = 0.8
    pool_usage: float = 0.8
    slow_statement: float = 1.0
    memory_limit: int = 1024**3
    latency_regression: float = 0.2
    n_plus_one_share: float = 0.1
    # Share of a job's calls to one host that fail (a status from 400 on, or no answer) before it warns; the host needs
    # min_request_rate calls/s too.
    upstream_error_ratio: float = 0.05
    # What a job's LLM calls may cost per hour (in the apps' gen_ai_currency) before it warns.
    llm_budget_per_hour: float = 10.0
    # The request duration buckets of the apps (Settings.timing_buckets): the latency threshold must be one.
    latency_buckets: tuple[float, ...] = field(default=DURATION_BUCKETS)
    runbook_url: str = "RUNBOOK.md"

    def __post_init__(self) -> None:
        if _SELECTOR.fullmatch(self.selector) is None:
            raise ValueError(f'the selector must be label matchers like job=~"api|worker", got {self.selector!r}')
        for name in ("availability_objective", "latency_objective", "error_ratio", "cache_hit_ratio"):
            _ratio(name, getattr(self, name))
        for name in ("pool_usage", "n_plus_one_share", "upstream_error_ratio"):
            _ratio(name, getattr(self, name))
        if not self.burn_windows:
            raise ValueError("at least one burn window is needed")
        for window in self.burn_windows:
            window.check()
            for slo, objective in (("availability", self.availability_objective), ("latency", self.latency_objective)):
                if not window.factor * (1 - objective) < 1:
                    raise ValueError(
                        f"the {slo} objective {objective:g} leaves an error budget of {1 - objective:g}: burning it "
                        f"{window.factor:g}x ({window}) would need more than every request to fail, so that alert "
                        "could never fire; raise the objective or lower the factor"
                    )
        period = duration_seconds(self.slo_period)
        if any(duration_seconds(window.long) > period for window in self.burn_windows):
            raise ValueError(f"every burn window must fit in the SLO period {self.slo_period}")
        if self.latency_threshold not in self.latency_buckets:
            raise ValueError(
                f"the latency threshold {self.latency_threshold:g} s must be a bound of the request duration buckets "
                f"({', '.join(f'{b:g}' for b in self.latency_buckets)}): the SLI counts that bucket"
            )
        if self.slow_statement not in DB_DURATION_BUCKETS:
            raise ValueError(
                f"the slow statement threshold {self.slow_statement:g} s must be a bound of the statement duration "
                f"buckets ({', '.join(f'{b:g}' for b in DB_DURATION_BUCKETS)})"
            )
        for name in ("min_request_rate", "latency_regression", "memory_limit", "llm_budget_per_hour"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0, got {getattr(self, name)}")
        if not self.runbook_url:
            raise ValueError("the runbook URL must not be empty")

    @property
    def windows(self) -> list[str]:
        """Every window a burn-rate condition reads, shortest first."""
        found = {w for window in self.burn_windows for w in (window.long, window.short)}
        return sorted(found, key=duration_seconds)

    def budget_days(self, factor: float) -> float:
        """Days a burn rate of ``factor`` takes to spend the whole budget of the SLO period."""
        return duration_seconds(self.slo_period) / 86400 / factor

    def budget(self, slo: str) -> float:
        """The error budget of ``slo`` (``availability`` or ``latency``) as a ratio of requests."""
        objective = self.availability_objective if slo == "availability" else self.latency_objective
        return round(1 - objective, 12)


def _ratio(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} is a ratio between 0 and 1 (exclusive), got {value:g}")
