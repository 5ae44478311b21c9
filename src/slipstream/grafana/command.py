"""``slipstream grafana render --out DIR``: the options of a rendering, with the committed files' values as defaults.

The latency buckets default to the environment's ``SLIPSTREAM_TIMING_BUCKETS`` (the settings the CLI reads), so the
threshold is checked against the buckets the apps really use.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slipstream.config import Settings
from slipstream.grafana.render import write
from slipstream.grafana.values import DEFAULT_BURN_WINDOWS, BurnWindow, GrafanaValues

__all__ = ["configure_grafana"]

_DEFAULTS = GrafanaValues()


def configure_grafana(grafana: argparse.ArgumentParser, settings: Settings) -> None:
    """Add ``render`` under ``slipstream grafana``."""
    commands = grafana.add_subparsers(title="commands", dest="grafana_command", required=True, metavar="COMMAND")
    render = commands.add_parser(
        "render",
        help="write the dashboards, rules, their tests, the runbook and provisioning files with your values",
        description=(
            "Render grafana/ (dashboards, recording and alert rules, promtool tests, RUNBOOK.md, Grafana provisioning "
            "and a Prometheus example) into a directory. The defaults render the files shipped in the repository."
        ),
    )
    render.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory to write (created if needed)")
    option = render.add_argument
    option("--selector", default=_DEFAULTS.selector, help="label matchers of the apps' series (default: %(default)s)")
    option(
        "--availability-objective",
        type=float,
        default=_DEFAULTS.availability_objective,
        metavar="RATIO",
        help="share of requests without a 5xx (default: %(default)s)",
    )
    option(
        "--latency-threshold",
        type=float,
        default=_DEFAULTS.latency_threshold,
        metavar="SECONDS",
        help="a request is fast enough within this, a bucket bound (default: %(default)s)",
    )
    option(
        "--latency-objective",
        type=float,
        default=_DEFAULTS.latency_objective,
        metavar="RATIO",
        help="share of requests within the latency threshold; also the quantile the panels show (default: %(default)s)",
    )
    option(
        "--slo-period",
        default=_DEFAULTS.slo_period,
        metavar="DURATION",
        help="the objectives' period (default: %(default)s)",
    )
    option(
        "--burn-window",
        action="append",
        type=_burn_window,
        metavar="SEVERITY:LONG/SHORT:FACTOR",
        help="a burn-rate condition, repeatable (default: " + ", ".join(map(str, DEFAULT_BURN_WINDOWS)) + ")",
    )
    option(
        "--error-ratio",
        type=float,
        default=_DEFAULTS.error_ratio,
        metavar="RATIO",
        help="per-route 5xx ratio that raises a warning (default: %(default)s)",
    )
    option(
        "--min-request-rate",
        type=float,
        default=_DEFAULTS.min_request_rate,
        metavar="PER_SECOND",
        help="requests/s a route, a cache or an upstream host needs before its ratio alerts (default: %(default)s)",
    )
    option(
        "--cache-hit-ratio",
        type=float,
        default=_DEFAULTS.cache_hit_ratio,
        metavar="RATIO",
        help="lowest acceptable cache hit ratio (default: %(default)s)",
    )
    option(
        "--pool-usage",
        type=float,
        default=_DEFAULTS.pool_usage,
        metavar="RATIO",
        help="share of a pool in use that raises a warning (default: %(default)s)",
    )
    option(
        "--slow-statement",
        type=float,
        default=_DEFAULTS.slow_statement,
        metavar="SECONDS",
        help="statements slower than this raise a warning, a bucket bound (default: %(default)s)",
    )
    option(
        "--memory-limit",
        type=int,
        default=_DEFAULTS.memory_limit,
        metavar="BYTES",
        help="resident memory per process that raises a warning (default: %(default)s)",
    )
    option(
        "--latency-regression",
        type=float,
        default=_DEFAULTS.latency_regression,
        metavar="RATIO",
        help="rise of the quantile against the same hour a week earlier that raises a warning (default: %(default)s)",
    )
    option(
        "--n-plus-one-share",
        type=float,
        default=_DEFAULTS.n_plus_one_share,
        metavar="RATIO",
        help="share of a route's requests with an N+1 finding that raises a warning (default: %(default)s)",
    )
    option(
        "--upstream-error-ratio",
        type=float,
        default=_DEFAULTS.upstream_error_ratio,
        metavar="RATIO",
        help="share of a job's calls to one host that fail before it warns (default: %(default)s)",
    )
    option(
        "--llm-budget-per-hour",
        type=float,
        default=_DEFAULTS.llm_budget_per_hour,
        metavar="AMOUNT",
        help="what a job's LLM calls may cost per hour, in the apps' gen_ai_currency, before it warns "
        "(default: %(default)s)",
    )
    option(
        "--runbook-url",
        default=_DEFAULTS.runbook_url,
        metavar="URL",
        help="where RUNBOOK.md is published; each alert links to its section (default: %(default)s)",
    )
    render.set_defaults(run=run_render, latency_buckets=settings.timing_buckets)


def _burn_window(text: str) -> BurnWindow:
    try:
        return BurnWindow.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run_render(args: argparse.Namespace) -> int:
    """Render into ``args.out``; 2 when the values are refused."""
    try:
        values = GrafanaValues(
            selector=args.selector,
            availability_objective=args.availability_objective,
            latency_threshold=args.latency_threshold,
            latency_objective=args.latency_objective,
            slo_period=args.slo_period,
            burn_windows=tuple(args.burn_window) if args.burn_window else DEFAULT_BURN_WINDOWS,
            error_ratio=args.error_ratio,
            min_request_rate=args.min_request_rate,
            cache_hit_ratio=args.cache_hit_ratio,
            pool_usage=args.pool_usage,
            slow_statement=args.slow_statement,
            memory_limit=args.memory_limit,
            latency_regression=args.latency_regression,
            n_plus_one_share=args.n_plus_one_share,
            upstream_error_ratio=args.upstream_error_ratio,
            llm_budget_per_hour=args.llm_budget_per_hour,
            latency_buckets=tuple(args.latency_buckets),
            runbook_url=args.runbook_url,
        )
        written = write(values, args.out)
    except ValueError as error:
        print(f"slipstream grafana render: error: {error}", file=sys.stderr)
        return 2
    print(f"slipstream grafana render: wrote {len(written)} files to {args.out}")
    return 0
