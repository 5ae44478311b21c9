"""Before/after the receivers refactor: the old checkout's bench_telemetry.py and this one's, alternately, in one run.

    python bench/bench_before_after.py --before /path/to/old/checkout [--pairs 3] [--rounds 201] [--requests 200]
        [--max-seconds 90] [--output bench/RESULTS.md]

The old checkout is a worktree of the commit before the refactor (``git worktree add <dir> 1101e4d``). Each pair
runs the old script (``PYTHONPATH=<before>/src:<before>/bench``, so that it imports the old slipstream, not the
installed editable one) and the current one (no PYTHONPATH), in alternating order, each writing its section into a
temporary Markdown file. Each run measures slipstream against the same peers (starlette-exporter, the OpenTelemetry
ASGI middleware) within the run, so the runs are compared by those in-run ratios, which the shared machine's drift
between runs mostly cancels out of; the absolute µs are shown too. Replaces only its own section of the output file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness import table_row, write_section

SECTION = "bench_before_after"
REFACTOR_COMMIT = "76db4ca"
REGRESSION_TOLERANCE = 0.10  # new median more than this above the old one: clearly slower

BARE = "bare app"
METRICS = "slipstream TimingMiddleware, metrics only"
SERVER_TIMING = "slipstream TimingMiddleware, metrics + Server-Timing"
SPAN = "slipstream TimingMiddleware + span"
EXPORTER = "starlette-exporter PrometheusMiddleware"
OTEL = "OpenTelemetry ASGI middleware"
OTEL_NOOP = "OpenTelemetry ASGI middleware, no-op meter"
STACK_TRACED = "slipstream install(), cache hit: timing + span"
STACK_UNTRACED = "slipstream install(), cache hit, tracing off"
PER_REQUEST_NAMES = (BARE, METRICS, SERVER_TIMING, SPAN, EXPORTER, OTEL, OTEL_NOOP)

# Imports slipstream and harness the way the bench script does (its folder first on sys.path) and says from where.
PROBE = """
import inspect, json, sys
sys.path.insert(0, sys.argv[1])
import harness, slipstream
parameters = list(inspect.signature(slipstream.TimingMiddleware).parameters)
print(json.dumps({"slipstream": slipstream.__file__, "harness": harness.__file__, "timing": parameters}))
"""


@dataclass(frozen=True)
class Side:
    """One checkout whose bench_telemetry.py is run: ``label`` is "old" or "new"."""

    label: str
    root: Path
    env: dict[str, str]

    @property
    def script(self) -> Path:
        return self.root / "bench" / "bench_telemetry.py"


@dataclass(frozen=True)
class Imported:
    """Where one side's bench imports slipstream and harness from, and TimingMiddleware's parameters there."""

    slipstream: str
    harness: str
    timing: list[str]


@dataclass(frozen=True)
class Row:
    """A per-request contender's row: CPU µs/request (median, min), wall µs, overhead µs over the bare app."""

    cpu: float
    min_cpu: float
    wall: float
    overhead: float | None


@dataclass
class Run:
    """What one run of bench_telemetry.py wrote."""

    side: str
    pair: int
    seconds: float
    revision: str
    rounds: int
    requests: int
    rows: dict[str, Row]
    stack_cpu: dict[str, float]
    target_ratios: dict[tuple[str, str], float]
    stack_speedup: float
    untraced_speedup: float
    text: str = field(repr=False)
    changed_since_refactor: str = ""


@dataclass(frozen=True)
class Figure:
    """A number every run yields; ``lower`` when lower is better (slipstream's share of a peer's cost)."""

    label: str
    unit: str
    of: Callable[[Run], float]
    lower: bool = True
    primary: bool = False
    digits: int = 3


def overhead(run: Run, name: str) -> float:
    value = run.rows[name].overhead
    if value is None:
        raise ValueError(f"{name}: no overhead figure")
    return value


RATIOS = [
    Figure(
        "metrics only overhead / starlette-exporter overhead (median of round ratios)",
        "",
        lambda run: run.target_ratios[(METRICS, EXPORTER)],
        primary=True,
    ),
    Figure(
        "metrics + Server-Timing overhead / starlette-exporter overhead (ratio of the median overheads)",
        "",
        lambda run: overhead(run, SERVER_TIMING) / overhead(run, EXPORTER),
        primary=True,
    ),
    Figure(
        "+ span overhead / OpenTelemetry ASGI overhead (median of round ratios)",
        "",
        lambda run: run.target_ratios[(SPAN, OTEL)],
        primary=True,
    ),
    Figure(
        "+ span overhead / OpenTelemetry ASGI, no-op meter, overhead (median of round ratios)",
        "",
        lambda run: run.target_ratios[(SPAN, OTEL_NOOP)],
    ),
    Figure(
        "install() cache hit + span: x faster than the peer stack", "x", lambda run: run.stack_speedup, False, digits=1
    ),
    Figure(
        "install() cache hit, tracing off: x faster than the peer stack",
        "x",
        lambda run: run.untraced_speedup,
        False,
        digits=1,
    ),
]
ABSOLUTE = [
    Figure("bare app CPU µs/request", "µs", lambda run: run.rows[BARE].cpu, digits=1),
    Figure("metrics only overhead µs", "µs", lambda run: overhead(run, METRICS), digits=1),
    Figure("metrics + Server-Timing overhead µs", "µs", lambda run: overhead(run, SERVER_TIMING), digits=1),
    Figure("+ span overhead µs", "µs", lambda run: overhead(run, SPAN), digits=1),
    Figure("starlette-exporter overhead µs", "µs", lambda run: overhead(run, EXPORTER), digits=1),
    Figure("OpenTelemetry ASGI overhead µs", "µs", lambda run: overhead(run, OTEL), digits=1),
    Figure("install() cache hit + span CPU µs/request", "µs", lambda run: run.stack_cpu[STACK_TRACED], digits=1),
    Figure(
        "install() cache hit, tracing off, CPU µs/request", "µs", lambda run: run.stack_cpu[STACK_UNTRACED], digits=1
    ),
]


def git(root: Path, *args: str) -> str:
    """A read-only git query's output, or "" when ``root`` is not a checkout."""
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def probe(side: Side, python: str, cwd: Path) -> Imported:
    """Where slipstream and harness come from in ``side``'s environment; exits if not from ``side.root``."""
    command = [python, "-c", PROBE, str(side.root / "bench")]
    result = subprocess.run(command, capture_output=True, text=True, env=side.env, cwd=cwd, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{side.label}: importing slipstream failed:\n{result.stderr}")
    found = Imported(**json.loads(result.stdout))
    for module, path, folder in (
        ("slipstream", found.slipstream, side.root / "src"),
        ("harness", found.harness, side.root / "bench"),
    ):
        if not Path(path).resolve().is_relative_to(folder.resolve()):
            raise SystemExit(f"{side.label}: {module} is imported from {path}, not from under {folder}")
    return found


def run_side(side: Side, pair: int, options: argparse.Namespace, workdir: Path, cwd: Path) -> Run:
    output = workdir / f"pair{pair}-{side.label}.md"
    command = [options.python, str(side.script), "--rounds", str(options.rounds), "--requests", str(options.requests)]
    command += ["--max-seconds", str(options.max_seconds), "--output", str(output)]
    print(f"pair {pair}, {side.label}: {shlex.join(command)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=side.env, cwd=cwd, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(
            f"pair {pair}, {side.label}: bench_telemetry.py failed ({result.returncode}):\n{result.stderr}"
        )
    run = parse(side.label, pair, seconds, output.read_text(encoding="utf-8"))
    if side.label == "new":
        run.changed_since_refactor = changed_since_refactor(side.root)
    return run


def changed_since_refactor(root: Path) -> str:
    """The files of src/slipstream/ that differ (committed or not) from the refactor commit, or "nothing"."""
    paths = git(root, "diff", "--name-only", REFACTOR_COMMIT, "--", "src").split()
    return ", ".join(path.removeprefix("src/slipstream/") for path in paths) or "nothing"


def search(pattern: str, text: str, what: str) -> re.Match[str]:
    found = re.search(pattern, text, re.MULTILINE)
    if found is None:
        raise ValueError(f"no {what} in bench_telemetry.py's section")
    return found


def table(text: str, heading: str) -> list[list[str]]:
    """The cells of the Markdown table after the ``### heading`` line (header and rule left out)."""
    section = text[search(rf"^### {re.escape(heading)}", text, f"'### {heading}' table").end() :]
    rows: list[list[str]] = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def parse(side: str, pair: int, seconds: float, text: str) -> Run:
    rows: dict[str, Row] = {}
    for cells in table(text, "/items/"):
        name, cpu, min_cpu, wall, extra = cells[0], *map(float, cells[1:4]), cells[4]
        rows[name] = Row(cpu, min_cpu, wall, float(extra) if extra else None)
    missing = [name for name in PER_REQUEST_NAMES if name not in rows]
    if missing:
        raise ValueError(f"{side} run: no row for {missing}")
    stack_cpu = {cells[0]: float(cells[1]) for cells in table(text, "/page.html")}
    ratios = {
        (ours, theirs): float(ratio)
        for ours, theirs, ratio in re.findall(r"^- (.+?) overhead / (.+?) overhead: ([0-9.]+),", text, re.MULTILINE)
    }
    shape = search(r"^- Rounds: (\d+), each of (\d+) requests", text, "rounds line")
    return Run(
        side=side,
        pair=pair,
        seconds=seconds,
        revision=search(r"slipstream source: (.+)$", text, "source revision").group(1),
        rounds=int(shape.group(1)),
        requests=int(shape.group(2)),
        rows=rows,
        stack_cpu=stack_cpu,
        target_ratios=ratios,
        stack_speedup=float(search(r"([0-9.]+)x faster than the peer stack, at least", text, "stack target").group(1)),
        untraced_speedup=float(search(r"with tracing off, ([0-9.]+)x faster", text, "tracing-off line").group(1)),
        text=text,
    )


def spread(values: Sequence[float], digits: int) -> str:
    median = statistics.median(values)
    return f"{median:.{digits}f} ({min(values):.{digits}f} to {max(values):.{digits}f})"


def judge(figure: Figure, old: Sequence[float], new: Sequence[float]) -> str:
    """Whether the new runs are worse than the old ones, beyond the tolerance and the runs' spread."""
    old_median, new_median = statistics.median(old), statistics.median(new)
    worse_by = new_median / old_median - 1 if figure.lower else old_median / new_median - 1
    better_throughout = max(new) < min(old) if figure.lower else min(new) > max(old)
    worse_throughout = min(new) > max(old) if figure.lower else max(new) < min(old)
    if better_throughout:
        return f"better ({abs(worse_by):.1%}), every new run better than every old one"
    if worse_by <= 0:
        return f"no worse ({abs(worse_by):.1%} better)"
    every = ", every new run worse than every old one" if worse_throughout else ", the runs' ranges overlap"
    if worse_by <= REGRESSION_TOLERANCE:
        return f"within noise ({worse_by:.1%} worse{every})"
    return f"WORSE ({worse_by:.1%} worse{every})"


def figures_table(figures: Sequence[Figure], runs: Sequence[Run]) -> list[str]:
    """Per-run values, one column per run, then old and new medians (min to max), new/old and the verdict."""
    old = [run for run in runs if run.side == "old"]
    new = [run for run in runs if run.side == "new"]
    header = ["figure", *(f"pair {run.pair} {run.side}" for run in runs), "old median (range)"]
    header += ["new median (range)", "new / old", "verdict"]
    lines = [table_row(header), table_row(["---", *["---:"] * (len(header) - 2), "---"])]
    for figure in figures:
        olds, news = [figure.of(run) for run in old], [figure.of(run) for run in new]
        digits = figure.digits
        per_run = [f"{figure.of(run):.{digits}f}" for run in runs]
        ratio = statistics.median(news) / statistics.median(olds)
        cells = [figure.label, *per_run, spread(olds, digits), spread(news, digits), f"{ratio:.3f}"]
        lines.append(table_row([*cells, judge(figure, olds, news)]))
    return lines


def paired_changes(runs: Sequence[Run]) -> list[str]:
    """Within each pair (runs minutes apart), new / old of each primary ratio."""
    lines = []
    for figure in (f for f in RATIOS if f.primary):
        changes = []
        for pair in sorted({run.pair for run in runs}):
            old, new = (next(r for r in runs if r.pair == pair and r.side == side) for side in ("old", "new"))
            changes.append(figure.of(new) / figure.of(old))
        listed = ", ".join(f"{change:.3f}" for change in changes)
        lines.append(f"- {figure.label}: new / old per pair {listed}; median {statistics.median(changes):.3f}")
    return lines


def new_source_states(new_runs: Sequence[Run]) -> str:
    """The new side's source as each new run finished (other engineers commit meanwhile): the first run's files
    differing from the refactor commit in full, later runs' only where those files changed."""
    said: list[str] = []
    previous: set[str] | None = None
    for run in new_runs:
        files = set(run.changed_since_refactor.split(", ")) - {"nothing"}
        if previous is None:
            changes = f"src/slipstream/ differing from {REFACTOR_COMMIT} in: {', '.join(sorted(files)) or 'nothing'}"
        elif files == previous:
            changes = "the same files"
        else:
            added, dropped = sorted(files - previous), sorted(previous - files)
            changes = "those files" + (f" and {', '.join(added)}" if added else "")
            changes += f" but not {', '.join(dropped)}" if dropped else ""
        said.append(f"pair {run.pair}: {run.revision}, {changes}")
        previous = files
    return "; ".join(said)


def report(runs: Sequence[Run], sides: Sequence[Side], found: dict[str, Imported], options: argparse.Namespace) -> str:
    old_side, new_side = sides
    old_runs = [run for run in runs if run.side == "old"]
    new_runs = [run for run in runs if run.side == "new"]
    interpreter = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    before_commit = git(old_side.root, "rev-parse", "--short", "HEAD") or "unknown"
    after_commit = git(new_side.root, "rev-parse", "--short", "HEAD") or "unknown"
    state = new_source_states(new_runs)
    primary = [figure for figure in RATIOS if figure.primary]
    verdicts = [
        judge(figure, [figure.of(run) for run in old_runs], [figure.of(run) for run in new_runs]) for figure in primary
    ]
    worse = [figure.label for figure, said in zip(primary, verdicts, strict=True) if said.startswith("WORSE")]
    lines = [
        "## Telemetry before/after the receivers refactor\n",
        f"Command: `{shlex.join([interpreter, *sys.argv])}`\n",
        f"- Date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}; "
        f"Python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs (shared)",
        f"- old: commit {before_commit} (before the refactor), checked out with `git worktree add <dir> 1101e4d` and "
        f"passed as `--before <dir>`; run as `PYTHONPATH=<dir>/src:<dir>/bench {interpreter} "
        f"<dir>/bench/bench_telemetry.py`, which imports slipstream from `{found['old'].slipstream}` "
        f"(TimingMiddleware parameters: {', '.join(found['old'].timing)})",
        f"- new: this checkout (HEAD {after_commit} at the end; the refactor is {REFACTOR_COMMIT}. Source as each "
        f"new run finished: {state}), run as `{interpreter} bench/bench_telemetry.py` without PYTHONPATH, which "
        f"imports slipstream from `{found['new'].slipstream}` (TimingMiddleware parameters: "
        f"{', '.join(found['new'].timing)})",
        f"- Each run: `--rounds {options.rounds} --requests {options.requests} --max-seconds {options.max_seconds}`, "
        "its own section written to a temporary file and read back; the same interpreter and installed peers. "
        f"{len(runs) // 2} pairs, alternating which side goes first (old first in odd pairs)",
        "- Method: each run measures slipstream against the same peers back to back within its rounds, so the runs "
        "are compared by those in-run ratios (the machine's drift between runs mostly cancels out of them); the "
        "metrics-only and span ratios are the script's own medians over rounds of each round's ratio, the "
        "Server-Timing one is its median overhead over starlette-exporter's (the script does not print that ratio). "
        "Verdict per figure: WORSE when the new median is more than "
        f"{REGRESSION_TOLERANCE:.0%} worse than the old median, within noise up to that",
        "- Runs: "
        + "; ".join(
            f"pair {run.pair} {run.side}: {run.rounds} rounds of {run.requests}, {run.seconds:.0f} s, "
            f"source {run.revision}"
            for run in runs
        ),
        "\n### In-run ratios (lower is better, except the x faster rows)\n",
        *figures_table(RATIOS, runs),
        "\n### Absolute CPU µs per request (drift between runs included)\n",
        *figures_table(ABSOLUTE, runs),
        "\n### Within each pair\n",
        *paired_changes(runs),
        "\n### Verdict\n",
    ]
    if worse:
        lines.append(f"- NOT met: new is worse than old beyond {REGRESSION_TOLERANCE:.0%} in: {'; '.join(worse)}")
    else:
        said = "; ".join(f"{figure.label.split(' (')[0]}: {v}" for figure, v in zip(primary, verdicts, strict=True))
        lines.append(f"- met: new ≤ old within noise ({said})")
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="checkout of the commit before the refactor")
    parser.add_argument("--pairs", type=int, default=3, help="old/new pairs of runs")
    parser.add_argument("--rounds", type=int, default=201, help="bench_telemetry.py --rounds")
    parser.add_argument("--requests", type=int, default=200, help="bench_telemetry.py --requests")
    parser.add_argument("--max-seconds", type=float, default=90, help="bench_telemetry.py --max-seconds, per run")
    parser.add_argument("--python", default=sys.executable, help="interpreter for both sides")
    parser.add_argument("--output", type=Path, default=Path("bench/RESULTS.md"), help="Markdown file to update")
    options = parser.parse_args()
    if options.pairs < 1:
        parser.error("--pairs must be at least 1")
    here = Path(__file__).resolve().parent.parent
    before = options.before.resolve()
    if not (before / "bench" / "bench_telemetry.py").is_file() or not (before / "src" / "slipstream").is_dir():
        parser.error(f"{before} has no bench/bench_telemetry.py and src/slipstream/")
    base = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    base["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing written into the old checkout
    old_env = {**base, "PYTHONPATH": f"{before / 'src'}{os.pathsep}{before / 'bench'}"}
    sides = [Side("old", before, old_env), Side("new", here, base)]
    found = {side.label: probe(side, options.python, here) for side in sides}
    for label, where in found.items():
        print(f"{label}: slipstream from {where.slipstream}, harness from {where.harness}", file=sys.stderr)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-before-after-") as workdir:
        for pair in range(1, options.pairs + 1):
            for side in sides if pair % 2 else sides[::-1]:
                runs.append(run_side(side, pair, options, Path(workdir), here))
    runs.sort(key=lambda run: (run.pair, run.side != "old"))
    text = report(runs, sides, found, options)
    print(text)
    write_section(options.output, SECTION, text)


if __name__ == "__main__":
    main()
