"""HTTP cache conformance: the public cache-tests suite (the one behind cache-tests.fyi) run against slipstream, next
to the published results of the shared caches for the same tests.

    python bench/bench_conformance.py [--output bench/RESULTS.md] [--config cache-only|install|opt-ins] [--id TEST_ID]

Needs Node.js 20 or newer and npm (conformance_suite.py says where the suite comes from). The suite's origin server
runs on a free loopback port; for each configuration a uvicorn on another serves bench/conformance_proxy.py's
forwarding app under slipstream, and the suite's CLI client runs every test against it. Raw results are saved in
bench/conformance/results/. ``--id`` runs one test against the first configuration and prints what the client and
the origin saw, writing nothing. Replaces only its own section of the output file.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from conformance_proxy import GATEWAY_ERROR
from conformance_report import Configuration, report
from conformance_suite import (
    SUITE,
    describe_suite,
    install_client_packages,
    origin_server,
    proxy_server,
    require_node,
    run_client,
)
from harness import write_section

CONFIGURATIONS = {
    "cache-only": "CacheMiddleware with its defaults over the forwarder: the cache's own conformance",
    "install": "`install(app, Settings(metrics_port=None))`: the whole default stack (cache, compression, generated "
    "ETags, timing) over the forwarder, as users run it",
    "opt-ins": "CacheMiddleware over the forwarder with `heuristic_fraction=0.1` and `allow_set_cookie=True`, the "
    "two behaviours the defaults leave off on purpose (README, Response cache)",
}
FACTORIES = {"cache-only": "cache_only", "install": "installed", "opt-ins": "opt_ins"}


@dataclass(frozen=True)
class ConformanceOptions:
    output: Path
    configurations: tuple[str, ...]
    test_id: str
    command: str

    @classmethod
    def from_command_line(cls) -> ConformanceOptions:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--output", type=Path, default=Path("bench/RESULTS.md"), help="Markdown file to update")
        parser.add_argument("--config", choices=CONFIGURATIONS, action="append", help="run only this configuration")
        parser.add_argument("--id", default="", help="run this one test and print the exchange; writes nothing")
        args = parser.parse_args()
        interpreter = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
        configurations = tuple(args.config or CONFIGURATIONS)
        return cls(args.output, configurations, args.id, shlex.join([interpreter, *sys.argv]))


def proxy_errors(log: str) -> tuple[int, Counter[str]]:
    """Requests on which the app under test raised (uvicorn logs each one), and why the forwarder answered others
    with a 502 or 504 (conformance_proxy.py logs each one as "GATEWAY_ERROR status: method path: reason")."""
    reasons = Counter(line.split(": ", 2)[-1] for line in log.splitlines() if line.startswith(GATEWAY_ERROR))
    return log.count("Exception in ASGI application"), reasons


def main() -> None:
    options = ConformanceOptions.from_command_line()
    started = time.monotonic()
    node = require_node()
    install_client_packages()
    suite = describe_suite()
    runs: list[Configuration] = []
    with origin_server() as origin:
        for name in options.configurations:
            with proxy_server(FACTORIES[name], origin) as proxy:
                print(f"running the suite against {name} at {proxy.url}", file=sys.stderr)
                run_started = time.monotonic()
                results, client_log = run_client(proxy.url, options.test_id)
                if options.test_id:
                    print(client_log, "\n=== what the origin saw\n", origin.output()[-8000:], sep="")
                    print(f"=== proxy log\n{proxy.output()[-4000:]}")
                    return
                seconds = time.monotonic() - run_started
                log = proxy.output()
                exceptions, gateway_errors = proxy_errors(log)
            runs.append(Configuration(name, CONFIGURATIONS[name], results, seconds, exceptions, gateway_errors))
            saved = SUITE / "results" / f"slipstream-{name}.json"
            saved.parent.mkdir(exist_ok=True)
            saved.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
            outcomes = Counter("pass" if result is True else result[0] for result in results.values())
            print(f"{name}: {len(results)} tests in {seconds:.0f} s, {dict(outcomes)}", file=sys.stderr)
    elapsed = time.monotonic() - started
    section: str = report(suite, runs, options.command, node, elapsed)
    write_section(options.output, "bench_conformance", section)
    print(section)


if __name__ == "__main__":
    main()
