"""promtool tests of the burn-rate alerts, one file per severity, made from the user's windows and objectives.

For each window pair: a burn at a rate chosen to pass that pair's factor (and stay under the faster pairs'
factors) long enough to fill its long and short windows, which must fire; the same burn stopped just long enough
to empty the short window, which shows the short window resetting the alert; and a steady healthy rate that never
fires. Whether the other pairs of the alert fire too is worked out from the window averages of the scenario (what
the recording rules compute); a scenario where any average lands within 10% of its threshold is left out rather
than asserted on a knife edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from slipstream.grafana.alerts import Alert, alerts
from slipstream.grafana.promql import REQUEST_DURATION, REQUESTS
from slipstream.grafana.promtool_series import GROUP_ORDER, Phase, counter, expected, selector_labels, series_name
from slipstream.grafana.values import BurnWindow, GrafanaValues, duration_seconds, le
from slipstream.grafana.yaml_text import Data

__all__ = ["slo_test_files"]

PER_MINUTE = 100_000
MARGIN = 0.1


@dataclass(frozen=True)
class Burn:
    """Minutes of requests and the share of them that spend budget (5xx, or slower than the threshold)."""

    minutes: int
    bad: float


def _minutes(window: str) -> int:
    return duration_seconds(window) // 60


def slo_test_files(values: GrafanaValues, rule_files: list[str]) -> dict[str, Data]:
    """``{file name: test file}``: ``slo-page.test.yml`` and ``slo-ticket.test.yml`` (for severities in use)."""
    found: dict[str, Data] = {}
    for severity in ("page", "ticket"):
        pairs = [w for w in values.burn_windows if w.severity == severity]
        if not pairs:
            continue
        windows = [_minutes(m) for w in pairs for m in (w.long, w.short)]
        # Rules are evaluated once per common divisor of the windows (up to an hour): every window then starts and
        # ends on an evaluation. Samples come at least three to the shortest window, as rate() needs two inside it
        # whether the range includes its start (Prometheus 2) or not (Prometheus 3).
        evaluation = min(60, math.gcd(*windows))
        step = max(d for d in range(1, evaluation + 1) if evaluation % d == 0 and 3 * d <= min(windows))
        tests: list[Data] = []
        for slo in ("availability", "latency"):
            alert = next(
                a for a in alerts(values) if a.labels.get("slo") == slo and a.severity == pairs[0].alert_severity
            )
            tests += _scenarios(values, slo, alert, pairs, step, evaluation)
        found[f"slo-{severity}.test.yml"] = {
            "rule_files": rule_files,
            "group_eval_order": GROUP_ORDER,
            "evaluation_interval": f"{evaluation}m",
            "tests": tests,
        }
    return found


def _scenarios(
    values: GrafanaValues, slo: str, alert: Alert, pairs: list[BurnWindow], step: int, evaluation: int
) -> list[Data]:
    budget = values.budget(slo)
    tests: list[Data] = []
    for pair in pairs:
        bad = _burn_share(pair, pairs, budget)
        long, short = _minutes(pair.long), _minutes(pair.short)
        # Quiet first for as long as the longest window of a slower pair, so that pair reads mostly quiet minutes.
        warm = max((_minutes(w.long) for w in pairs if _minutes(w.long) > long), default=0)
        # Stopped: burning long enough to fill the long window, then quiet for the short one. The burn is stronger, so
        # the long window stays clearly above the threshold with the quiet minutes in it.
        quiet = short + evaluation
        stopped = min(1.0, max(bad, pair.factor * budget * 1.25 * long / max(long - quiet, 1)))
        cases = {
            f"{pair} burning at {bad:.4g}": [Burn(warm, 0), Burn(long + short + evaluation, bad)],
            f"{pair} at {stopped:.4g}, stopped for its short window": [
                Burn(warm, 0),
                Burn(long, stopped),
                Burn(quiet, 0),
            ],
        }
        for name, phases in cases.items():
            burns = [burn for burn in phases if burn.minutes]
            firing = _fires(burns, pairs, budget, step)
            if firing is not None:
                tests.append(_test(values, slo, alert, f"{slo} {name}", burns, step, firing))
    steady = min(w.factor for w in pairs) * budget / 2
    healthy = [Burn(max(_minutes(w.long) + _minutes(w.short) for w in pairs) + evaluation, steady)]
    tests.append(_test(values, slo, alert, f"{slo} healthy at {steady:.4g}", healthy, step, False))
    return tests


def _burn_share(pair: BurnWindow, pairs: list[BurnWindow], budget: float) -> float:
    """Above ``pair``'s threshold, and halfway to the next faster pair's when a faster pair reads shorter windows."""
    low = pair.factor * budget
    faster = [w.factor * budget for w in pairs if w.factor > pair.factor and _minutes(w.long) < _minutes(pair.long)]
    return (low + min(faster)) / 2 if faster else min(low * 1.25, (low + 1) / 2)


def _average(burns: list[Burn], end: int, window: int, step: int) -> float:
    """The bad share over the samples of ``window`` minutes before ``end``, as rate() over counters reads it."""
    shares: list[float] = []
    start = 0
    for burn in burns:
        shares += [burn.bad] * burn.minutes
        start += burn.minutes
    first = max(0, end - window)
    first += -first % step
    covered = shares[first:end]
    return sum(covered) / len(covered)


def _fires(burns: list[Burn], pairs: list[BurnWindow], budget: float, step: int) -> bool | None:
    """Whether the alert fires at the end of ``burns``; None when an average is too close to its threshold."""
    end = sum(burn.minutes for burn in burns)
    firing = False
    for pair in pairs:
        threshold = pair.factor * budget
        verdicts = []
        for window in (pair.long, pair.short):
            average = _average(burns, end, _minutes(window), step)
            if abs(average - threshold) <= MARGIN * threshold:
                return None
            verdicts.append(average > threshold)
        firing = firing or all(verdicts)
    return firing


def _test(values: GrafanaValues, slo: str, alert: Alert, name: str, burns: list[Burn], step: int, firing: bool) -> Data:
    labels = selector_labels(values.selector)
    route = {**labels, "http_route": "/items", "http_request_method": "GET"}
    bad_share = {"availability": [b.bad for b in burns], "latency": [0.0] * len(burns)}[slo]
    slow_share = {"availability": [0.0] * len(burns), "latency": [b.bad for b in burns]}[slo]
    # Whole requests per minute (see counter()): the shares are rounded to a thousandth of a percent at most.
    errors = [round(PER_MINUTE * e) for e in bad_share]
    fast = [round((PER_MINUTE - n) * (1 - s)) for n, s in zip(errors, slow_share, strict=True)]
    ok_series = [Phase(b.minutes, PER_MINUTE - n) for b, n in zip(burns, errors, strict=True)]
    error_series = [Phase(b.minutes, n) for b, n in zip(burns, errors, strict=True)]
    fast_series = [Phase(b.minutes, n) for b, n in zip(burns, fast, strict=True)]
    bucket = {**route, "http_response_status_code": "200", "le": le(values.latency_threshold)}
    end = sum(burn.minutes for burn in burns)
    return {
        "name": name,
        "interval": f"{step}m",
        "input_series": [
            {
                "series": series_name(REQUESTS, {**route, "http_response_status_code": "200"}),
                "values": counter(ok_series, step),
            },
            {
                "series": series_name(REQUESTS, {**route, "http_response_status_code": "500"}),
                "values": counter(error_series, step),
            },
            {"series": series_name(f"{REQUEST_DURATION}_bucket", bucket), "values": counter(fast_series, step)},
        ],
        "alert_rule_test": [
            {
                "eval_time": f"{end}m",
                "alertname": alert.name,
                "exp_alerts": [expected(alert, values, {"job": labels["job"], "slo": slo})] if firing else [],
            }
        ],
    }
