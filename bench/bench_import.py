"""Import-time benchmark: ``import slipstream`` against what an app with Prometheus metrics, brotli and OpenTelemetry
imports anyway, each in a fresh interpreter.

    python bench/bench_import.py [--rounds N] [--max-seconds S] [--output bench/RESULTS.md]

Each contender is a line of Python run as ``python -I -X importtime -c``; its time is the sum of the cumulative times
of the imports that line makes (the top of ``-X importtime``'s tree after a marker), so the interpreter's start-up is
not in it. Every round runs each contender once, the order rotated; ratios are taken within a round and their medians
across rounds are reported. Replaces only its own section of the output file.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import report_heading, source_revision, table_row, verdict, write_section

TARGET = 1.3
PACKAGES = "slipstream starlette prometheus-client brotli opentelemetry-api anyio xxhash starlette-exporter".split()
# Written to stderr before the measured imports: the start-up's imports come before it.
MARKER = "-- measured imports --"
# "import time: <self µs> | <cumulative µs> | <two spaces per level><module>"
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$")
RUN_TIMEOUT = 60


@dataclass
class Contender:
    label: str
    code: str
    # Per round: the total import time in µs, and each module's own (self) µs.
    totals: list[int] = field(default_factory=list)
    modules: list[dict[str, int]] = field(default_factory=list)

    def ms(self) -> list[float]:
        return [total / 1000 for total in self.totals]


BASELINE = Contender(
    "(a) baseline: what such an app imports anyway",
    "import starlette.applications, prometheus_client, brotli, opentelemetry.trace",
)
SLIPSTREAM = Contender("(b) `import slipstream`", "import slipstream")
INSTALL = Contender("(c) `from slipstream import install`", "from slipstream import install")
STARLETTE_EXPORTER = Contender("(d) starlette-exporter, a peer", "import starlette_exporter")
INSTALLED_APP = Contender(
    "(e) `install()` called on a Starlette app",
    "import slipstream; from starlette.applications import Starlette; "
    "slipstream.install(Starlette(), slipstream.Settings(metrics_port=None))",
)
CONTENDERS = (BASELINE, SLIPSTREAM, INSTALL, STARLETTE_EXPORTER, INSTALLED_APP)


@dataclass(frozen=True)
class ImportOptions:
    rounds: int
    max_seconds: float
    output: Path
    command: str

    @classmethod
    def from_command_line(cls) -> ImportOptions:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--rounds", type=int, default=41, help="rounds; medians over them are reported")
        parser.add_argument("--max-seconds", type=float, default=240, help="stop after the round that passes this")
        parser.add_argument("--output", type=Path, default=Path("bench/RESULTS.md"), help="Markdown file to update")
        args = parser.parse_args()
        if args.rounds < 1:
            parser.error("--rounds must be at least 1")
        interpreter = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
        return cls(args.rounds, args.max_seconds, args.output, shlex.join([interpreter, *sys.argv]))


def child_command(code: str, bytecode_dir: Path) -> list[str]:
    """A fresh interpreter running ``code`` under ``-X importtime``.

    -I keeps PYTHON* variables and the working directory out. Every contender reads its bytecode from one
    ``pycache_prefix`` directory, compiled there by the warm-up round: the editable slipstream's source tree has no
    __pycache__ of its own where PYTHONDONTWRITEBYTECODE is set, and would otherwise be compiled on every run.
    """
    marked = f"import os; os.write(2, {MARKER.encode()!r} + b'\\n'); {code}"
    return [sys.executable, "-I", "-X", f"pycache_prefix={bytecode_dir}", "-X", "importtime", "-c", marked]


def measure(contender: Contender, bytecode_dir: Path) -> tuple[int, dict[str, int]]:
    """One run of ``contender``: its total import µs, and the own µs of each module it imported."""
    command = child_command(contender.code, bytecode_dir)
    done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=bytecode_dir, check=False)
    if done.returncode != 0 or MARKER not in done.stderr:
        raise SystemExit(f"{contender.label}: {shlex.join(command)} failed ({done.returncode}):\n{done.stderr}")
    total, own = 0, {}
    for line in done.stderr.partition(MARKER)[2].splitlines():
        match = IMPORT_LINE.match(line)
        if match is None:
            continue
        self_us, cumulative_us, indent, module = match.groups()
        own[module] = int(self_us)
        if not indent:  # a top-level import: its cumulative time holds everything it imported
            total += int(cumulative_us)
    return total, own


def run_rounds(rounds: int, max_seconds: float, bytecode_dir: Path) -> None:
    for contender in CONTENDERS:  # warm-up, not kept: compiles the bytecode and fills the page cache
        measure(contender, bytecode_dir)
    deadline = time.monotonic() + max_seconds
    for round_index in range(rounds):
        shift = round_index % len(CONTENDERS)  # rotated so that no contender always goes first
        for contender in [*CONTENDERS[shift:], *CONTENDERS[:shift]]:
            total, own = measure(contender, bytecode_dir)
            contender.totals.append(total)
            contender.modules.append(own)
        print(f"round {round_index + 1}/{rounds} done", file=sys.stderr)
        if time.monotonic() > deadline:
            print(f"stopping after {round_index + 1} rounds: --max-seconds reached", file=sys.stderr)
            break


def ratios(contender: Contender) -> list[float]:
    """Each round's contender time / baseline time: the two ran moments apart."""
    return [c / b for c, b in zip(contender.totals, BASELINE.totals, strict=True)]


def package_ms_beyond_baseline(contender: Contender) -> dict[str, float]:
    """Median over rounds of the own ms of the modules ``contender`` loads and the baseline does not, by package."""
    per_round: list[dict[str, float]] = []
    for own, baseline in zip(contender.modules, BASELINE.modules, strict=True):
        packages: dict[str, float] = {}
        for module, self_us in own.items():
            if module not in baseline:
                package = module.partition(".")[0]
                packages[package] = packages.get(package, 0.0) + self_us / 1000
        per_round.append(packages)
    names = {name for packages in per_round for name in packages}
    return {name: statistics.median(packages.get(name, 0.0) for packages in per_round) for name in names}


def spread(values: Sequence[float]) -> str:
    quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return f"{min(values):.2f} to {max(values):.2f} (quartiles {quartiles[0]:.2f} to {quartiles[2]:.2f})"


def contender_row(contender: Contender) -> str:
    ms = contender.ms()
    modules = statistics.median(len(own) for own in contender.modules)
    cells = [contender.label, f"`{contender.code}`", f"{statistics.median(ms):.1f}", f"{min(ms):.1f}", f"{max(ms):.1f}"]
    cells.append(f"{modules:g}")
    if contender is BASELINE:
        return table_row([*cells, "1", ""])
    return table_row([*cells, f"{statistics.median(ratios(contender)):.3f}", spread(ratios(contender))])


def ratio_line(contender: Contender, *, target: bool) -> str:
    """The median ratio to the baseline; checked against TARGET for ``target``, else held up to it for information."""
    round_ratios = ratios(contender)
    ratio = statistics.median(round_ratios)
    within = sum(r <= TARGET for r in round_ratios)
    held_up = "target" if target else "for information; held up to the same bound"
    against = f"{held_up} ≤ {TARGET:g}: {verdict(ratio <= TARGET)}"
    return (
        f"- {contender.label} / baseline: {ratio:.3f}, at most {TARGET:g} in {within} of {len(round_ratios)} rounds "
        f"({against})"
    )


def heaviest(packages: dict[str, float], count: int) -> Iterable[str]:
    for name, ms in sorted(packages.items(), key=lambda item: -item[1])[:count]:
        yield f"{name} {ms:.1f} ms"


def report(options: ImportOptions) -> str:
    rounds = len(BASELINE.totals)
    lines = report_heading("Import-time benchmark", options.command, source_revision(), PACKAGES)
    lines += [
        f"- Rounds: {rounds} after one warm-up round (not kept); in each, every contender once, in rotated order, "
        "as `python -I -X pycache_prefix=DIR -X importtime -c 'import os; os.write(2, MARKER); CODE'`",
        "- Method: `-X importtime` totals. A contender's time is the sum of the cumulative times of the imports its "
        "line makes (the top level of the import tree after a marker the line writes to stderr first), so the "
        "interpreter's start-up and the process's creation are not in it. On this shared 2-CPU machine "
        "`python -I -c pass` takes 10 to 30 ms of wall time and the baseline's `python -c` anywhere from 90 to "
        "250 ms, so wall time minus start-up would mostly measure the neighbours. `-X importtime` adds its own "
        "bookkeeping to each import (a clock read and a line to stderr), the same for every contender; it counts "
        "import work only, so for (e) the imports `install()` makes are counted and its other work is not",
        "- Bytecode: every contender reads bytecode compiled into one `pycache_prefix` directory by the warm-up "
        "round (the editable slipstream's src/ has no `__pycache__` here, PYTHONDONTWRITEBYTECODE being set), as "
        "an installed package reads what pip compiled",
        "- ms: median, minimum and maximum over the rounds. modules: median count of modules imported. Ratios: "
        "medians over the rounds of that round's ratio to the baseline; spread: their range, and quartiles\n",
        "| contender | code | median ms | min ms | max ms | modules | ratio to baseline | per-round ratio spread |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
        *(contender_row(contender) for contender in CONTENDERS),
        "\n### Targets\n",
        ratio_line(SLIPSTREAM, target=True),
        ratio_line(INSTALL, target=False),
        ratio_line(INSTALLED_APP, target=False),
        f"- for reference: {STARLETTE_EXPORTER.label} / baseline: {statistics.median(ratios(STARLETTE_EXPORTER)):.3f}",
    ]
    for contender in (SLIPSTREAM, INSTALL, INSTALLED_APP):
        beyond = package_ms_beyond_baseline(contender)
        extra = statistics.median(c - b for c, b in zip(contender.ms(), BASELINE.ms(), strict=True))
        lines.append(
            f"- for information: {contender.label} minus the baseline: {extra:+.1f} ms; what it loads that the "
            f"baseline does not, own ms by package: {', '.join(heaviest(beyond, 6)) or 'nothing'}"
        )
    return "\n".join([*lines, ""])


def main() -> None:
    options = ImportOptions.from_command_line()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as bytecode_dir:
        run_rounds(options.rounds, options.max_seconds, Path(bytecode_dir))
    text = report(options)
    print(text)
    write_section(options.output, "bench_import", text)


if __name__ == "__main__":
    main()
