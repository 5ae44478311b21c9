"""PromQL expressions of grafana/ parsed with promql-parser (PyPI), and walked with each node's ancestors.

Grafana's ``$__rate_interval`` is not PromQL: it is replaced by a duration no one writes (as Grafana's dashboard
linter does) so that a range can be told to be it. Variables inside label values (``"$job"``) are valid strings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import promql_parser
from prometheus_client import CollectorRegistry

from slipstream.config import DURATION_BUCKETS
from slipstream.exporters.metrics import Metrics
from slipstream.outbound.metrics import OutboundMetrics

RATE_INTERVAL_STAND_IN = "1234567ms"
RATE_INTERVAL = timedelta(milliseconds=1234567)
# Functions a counter's range may be given to.
COUNTER_FUNCTIONS = {"rate", "irate", "increase"}


def _histogram_series() -> frozenset[str]:
    """The ``_bucket``, ``_count`` and ``_sum`` series of slipstream's histograms, outbound ones included, from their
    definitions (a gauge may end in ``_count`` too: ``db_client_connection_count``)."""
    registry = CollectorRegistry()
    Metrics.register(registry, DURATION_BUCKETS)
    OutboundMetrics.register(registry, DURATION_BUCKETS, "USD")
    families = [family for family in registry.collect() if family.type == "histogram"]
    return frozenset(f"{family.name}{suffix}" for family in families for suffix in ("_bucket", "_count", "_sum"))


HISTOGRAM_SERIES = _histogram_series()


@dataclass(frozen=True)
class Found:
    node: Any
    parents: tuple[Any, ...]


def parse(expr: str) -> Any:
    """The expression's tree; a syntax error raises ValueError with the parser's message."""
    try:
        return promql_parser.parse(expr.replace("$__rate_interval", RATE_INTERVAL_STAND_IN))
    except Exception as error:  # the binding raises a bare Exception subclass of its own
        raise ValueError(f"{expr!r} is not PromQL: {error}") from error


def walk(node: Any, parents: tuple[Any, ...] = ()) -> Iterator[Found]:
    """Every node under ``node`` (itself first), with its ancestors, outermost first."""
    yield Found(node, parents)
    inner = (*parents, node)
    for attribute in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attribute, None)
        if child is not None and not isinstance(child, (str, int, float)):
            yield from walk(child, inner)
    for child in getattr(node, "args", None) or ():
        yield from walk(child, inner)


def vector_selectors(tree: Any) -> list[Found]:
    return [found for found in walk(tree) if isinstance(found.node, promql_parser.VectorSelector)]


def matchers(selector: Any) -> dict[str, tuple[str, str]]:
    """``{label: (operator, value)}`` of a vector selector (the last matcher of a label wins)."""
    ops = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}
    return {m.name: (ops.get(str(m.op), str(m.op)), m.value) for m in selector.matchers.matchers}


def is_counter(name: str | None) -> bool:
    """Series that only go up: counters (``_total``) and the parts of histograms."""
    return name is not None and (name.endswith("_total") or name in HISTOGRAM_SERIES)


def counter_problems(tree: Any) -> list[str]:
    """Counters read other than as the range of rate/irate/increase."""
    problems = []
    for found in vector_selectors(tree):
        name = found.node.name
        if not is_counter(name):
            continue
        parents = found.parents
        in_range = len(parents) >= 2 and isinstance(parents[-1], promql_parser.MatrixSelector)
        call = parents[-2] if in_range else None
        if not (isinstance(call, promql_parser.Call) and call.func.name in COUNTER_FUNCTIONS):
            problems.append(f"counter {name} is not inside rate(), irate() or increase()")
    return problems


def range_problems(tree: Any) -> list[str]:
    """Ranges given to rate/irate/increase that are not ``$__rate_interval``."""
    problems = []
    for found in walk(tree):
        if not isinstance(found.node, promql_parser.MatrixSelector):
            continue
        call = found.parents[-1] if found.parents else None
        if isinstance(call, promql_parser.Call) and call.func.name in COUNTER_FUNCTIONS:
            if found.node.range != RATE_INTERVAL:
                problems.append(f"{call.func.name}() over {found.node.range}, not $__rate_interval")
    return problems
