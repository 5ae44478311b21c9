"""What the promtool tests are made of: series in promtool's notation, labels that pass the user's selector, and
the alerts a test expects, annotations expanded as Prometheus would for labels-only templates."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from slipstream.grafana.alerts import Alert
from slipstream.grafana.values import GrafanaValues
from slipstream.grafana.yaml_text import Data

__all__ = ["GROUP_ORDER", "Phase", "counter", "expected", "gauge", "selector_labels", "series_name"]

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
_TEMPLATE = re.compile(r"\{\{ \$labels\.([a-zA-Z_][a-zA-Z0-9_]*) \}\}")
# Recording groups before the alerts, so that an evaluation's alerts read the rates recorded at the same instant
# (promtool's default order is random, and a rate recorded an evaluation earlier may be past the 5-minute lookback).
GROUP_ORDER = ["slipstream.http.rules", "slipstream.slo.rules", "slipstream.outbound.rules", "slipstream.alerts"]
# Values a label may take in a test, tried in order against the selector's regular expressions.
_CANDIDATES = ("slipstream", "app", "api", "web", "prod", "default", "x")


@dataclass(frozen=True)
class Phase:
    """``minutes`` during which a counter grows by ``per_minute`` each minute."""

    minutes: int
    per_minute: float


def _number(value: float) -> str:
    text = f"{value:.10g}"
    return text if "e" not in text else f"{value:.10f}".rstrip("0").rstrip(".")


def counter(phases: Sequence[Phase], step: int) -> str:
    """promtool's notation for a counter sampled every ``step`` minutes from 0, growing as ``phases`` say.

    promtool expands each ``a+bxn`` segment in floating point, so a segment starting where a fractional one ended
    may start a hair below it, which reads as a counter reset: the increments of several phases must be whole numbers.
    """
    parts, value = ["0"], 0.0
    for phase in phases:
        if phase.minutes % step:
            raise ValueError(f"a phase of {phase.minutes} minutes is not a whole number of {step}-minute steps")
        samples = phase.minutes // step
        increment = phase.per_minute * step
        if len(phases) > 1 and increment != int(increment):
            raise ValueError(f"a counter of several phases grows by whole numbers, not {increment}")
        parts.append(f"{_number(value + increment)}+{_number(increment)}x{samples - 1}")
        value += increment * samples
    return " ".join(parts)


def gauge(value: float, samples: int) -> str:
    return f"{_number(value)}+0x{samples}"


def series_name(metric: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{name}="{value}"' for name, value in labels.items())
    return f"{metric}{{{inner}}}"


def selector_labels(selector: str) -> dict[str, str]:
    """Label values every matcher of ``selector`` accepts (``job=~"slipstream.*"``: job="slipstream"), with an
    ``instance``, so test series are selected by the rules. ValueError when no simple value passes a matcher."""
    labels = {"job": "slipstream", "instance": "app:9464"}
    for name, operator, raw in _MATCHER.findall(selector):
        value = raw.encode().decode("unicode_escape")
        if operator == "=":
            labels[name] = value
            continue
        candidates = [labels.get(name, ""), *_CANDIDATES, *value.split("|")]

        def passes(candidate: str, value: str = value, operator: str = operator) -> bool:
            if operator == "!=":
                return candidate != value
            return (re.fullmatch(value, candidate) is not None) == (operator == "=~")

        found = next((c for c in candidates if c and passes(c)), None)
        if found is None:
            raise ValueError(f"no simple label value passes {name}{operator}{raw!r}: write the promtool tests by hand")
        labels[name] = found
    return labels


def expected(alert: Alert, values: GrafanaValues, labels: Mapping[str, str]) -> Data:
    """The alert as promtool should see it firing for a series with ``labels``."""
    annotations = alert.rule(values)["annotations"]
    assert isinstance(annotations, dict)
    expanded = {key: _TEMPLATE.sub(lambda m: labels[m[1]], str(text)) for key, text in annotations.items()}
    return {"exp_labels": {"severity": alert.severity, **alert.labels, **labels}, "exp_annotations": expanded}
