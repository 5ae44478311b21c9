"""The ``slipstream`` command. ``slipstream sidecar`` serves the merged metrics of multiprocess workers;
``slipstream grafana render`` writes the dashboards, rules and runbook with the user's values.

Every subcommand is a parser built by one function and run by the function set as its ``run`` default, so a new
subcommand is a new pair added in ``build_parser``. Defaults come from ``Settings.from_env()``.
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from slipstream.config import Settings
from slipstream.exporters.sidecar import DEFAULT_CLEANUP_INTERVAL, Sidecar
from slipstream.grafana.command import configure_grafana


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    """The ``slipstream`` argument parser, with defaults taken from ``settings``."""
    parser = argparse.ArgumentParser(prog="slipstream", description="slipstream's command-line tools.")
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    sidecar = commands.add_parser(
        "sidecar",
        help="serve the merged metrics of every worker process (PROMETHEUS_MULTIPROC_DIR) on their own port",
        description=(
            "Merge the prometheus_client files the workers write to the multiprocess directory and serve them at "
            "/metrics, with /healthz and the live page at /, on their own port. Live gauges of dead workers are "
            "removed; their counters stay."
        ),
    )
    _configure_sidecar(sidecar, settings)
    grafana = commands.add_parser(
        "grafana",
        help="Grafana dashboards, Prometheus rules and their runbook",
        description="Render the dashboards, recording and alert rules, promtool tests and runbook with your values.",
    )
    configure_grafana(grafana, settings)
    return parser


def _configure_sidecar(sidecar: argparse.ArgumentParser, settings: Settings) -> None:
    port = settings.metrics_port if settings.metrics_port is not None else Settings().metrics_port
    sidecar.add_argument(
        "--dir",
        default=settings.metrics_multiprocess_dir,
        help="the multiprocess directory (default: $PROMETHEUS_MULTIPROC_DIR, currently %(default)s)",
    )
    sidecar.add_argument("--port", type=int, default=port, help="port to listen on (default: %(default)s)")
    sidecar.add_argument("--host", default=settings.metrics_host, help="address to listen on (default: %(default)s)")
    sidecar.add_argument(
        "--token",
        default=settings.metrics_bearer_token,
        help="bearer token required on /metrics; prefer SLIPSTREAM_METRICS_BEARER_TOKEN, which `ps` does not show",
    )
    sidecar.add_argument(
        "--allow",
        action="append",
        type=_network,
        metavar="CIDR",
        help="client network allowed to read /metrics, repeatable (default: SLIPSTREAM_METRICS_ALLOW_NETWORKS)",
    )
    sidecar.add_argument(
        "--cleanup-interval",
        type=_positive_seconds,
        default=DEFAULT_CLEANUP_INTERVAL,
        metavar="SECONDS",
        help="how often dead workers' live gauges are removed (default: %(default)s)",
    )
    sidecar.set_defaults(
        run=run_sidecar,
        allow_default=settings.metrics_allow_networks,
        live=settings.live_enabled,
        history_interval=settings.live_history_interval,
    )


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an address or network: {value!r}") from None
    return value


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value!r}")
    return seconds


def run_sidecar(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; 2 when the directory is missing, 1 when the port cannot be bound."""
    if args.dir is None:
        return _fail("slipstream sidecar", "no multiprocess directory: pass --dir or set PROMETHEUS_MULTIPROC_DIR")
    allow = args.allow if args.allow is not None else args.allow_default
    try:
        sidecar = Sidecar(
            args.dir,
            args.port,
            args.host,
            bearer_token=args.token,
            allow_networks=allow,
            cleanup_interval=args.cleanup_interval,
            live=args.live,
            history_interval=args.history_interval,
        )
    except ValueError as error:
        return _fail("slipstream sidecar", f"{error}; create it, empty, before the workers start")
    except OSError as error:
        return _fail("slipstream sidecar", f"cannot listen on {args.host}:{args.port}: {error.strerror}", status=1)

    def stop(signum: int, frame: FrameType | None) -> None:
        sidecar.request_stop()

    previous = {number: signal.signal(number, stop) for number in (signal.SIGTERM, signal.SIGINT)}
    page = f"; the live page: {sidecar.url}/" if sidecar.live is not None else ""
    print(f"slipstream sidecar: serving {sidecar.url}/metrics and /healthz, merging {args.dir}{page}", flush=True)
    try:
        sidecar.serve_forever()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0


def _fail(command: str, message: str, status: int = 2) -> int:
    print(f"{command}: error: {message}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``slipstream`` with ``argv`` (default: the process's arguments); returns the exit status."""
    try:
        settings = Settings.from_env()
    except ValueError as error:
        return _fail("slipstream", str(error))
    args = build_parser(settings).parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":  # pragma: no cover - the tests run it in a subprocess, where coverage is not measured
    raise SystemExit(main())
