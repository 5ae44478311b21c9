"""What the benchmark scripts share: in-process requests, the command line, timed rounds and the results file.

Each script in bench/ runs with bench/ on ``sys.path``, so it imports this module as ``harness``.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import NamedTuple, Protocol

import brotli
import zstandard
from starlette.types import ASGIApp, Message, Scope

WORDS = """latency cache header stream token browser server client request response payload encoding window quality
level buffer socket route handler session cookie profile account invoice order basket product review rating shipping
warehouse delivery refund discount coupon search filter sort page archive category author comment reply thread notice
setting privacy security password release changelog roadmap feature migration dashboard metric""".split()
DECODERS: dict[bytes, Callable[[bytes], bytes]] = {
    b"": bytes,
    b"gzip": gzip.decompress,
    b"br": brotli.decompress,
    # a decompressobj, unlike ZstdDecompressor.decompress, needs no content size in the frame header
    b"zstd": lambda body: zstandard.ZstdDecompressor().decompressobj().decompress(body),
}


@dataclass(frozen=True)
class BenchmarkOptions:
    """The command line every benchmark script takes, and that command line as the report quotes it."""

    rounds: int
    requests: int
    max_seconds: float
    output: Path
    command: str

    @classmethod
    def from_command_line(cls, description: str | None, *, rounds: int, requests: int) -> BenchmarkOptions:
        parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--rounds", type=int, default=rounds, help="rounds; medians over them are reported")
        parser.add_argument("--requests", type=int, default=requests, help="requests per contender per round")
        parser.add_argument("--max-seconds", type=float, default=240, help="stop after the round that passes this")
        parser.add_argument("--output", type=Path, default=Path("bench/RESULTS.md"), help="Markdown file to update")
        args = parser.parse_args()
        if args.rounds < 1 or args.requests < 1:
            parser.error("--rounds and --requests must be at least 1")
        interpreter = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
        command = shlex.join([interpreter, *sys.argv])
        return cls(args.rounds, args.requests, args.max_seconds, args.output, command)


def request_scope(
    path: str, coding: str | None, query: bytes = b"", extra: Sequence[tuple[bytes, bytes]] = ()
) -> Scope:
    """A GET's HTTP scope; Accept-Encoding is sent only given a ``coding``, ``extra`` headers after it."""
    headers = [(b"host", b"bench.local"), (b"user-agent", b"bench/1.0"), (b"accept", b"*/*")]
    headers += [(b"accept-encoding", coding.encode())] if coding else []
    headers += extra
    request = {"method": "GET", "path": path, "raw_path": path.encode(), "query_string": query, "headers": headers}
    connection = {"client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "scheme": "http", "root_path": ""}
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", **request, **connection}


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def discard(message: Message) -> None:
    return None


class FetchedResponse(NamedTuple):
    status: int
    headers: dict[bytes, bytes]
    body: bytes


async def fetch(app: ASGIApp, scope: Scope) -> FetchedResponse:
    """Calls ``app`` once with a copy of ``scope`` and collects what it sends."""
    messages: list[Message] = []

    async def collect(message: Message) -> None:
        messages.append(message)

    await app(dict(scope), receive, collect)
    if messages[0]["type"] != "http.response.start":
        raise RuntimeError(f"unexpected response start {messages[0]!r}")
    body = b"".join(message.get("body", b"") for message in messages[1:])
    return FetchedResponse(messages[0]["status"], dict(messages[0]["headers"]), body)


async def fetch_ok(app: ASGIApp, scope: Scope) -> tuple[dict[bytes, bytes], bytes]:
    """Headers and body of a response that must be a 200."""
    status, headers, body = await fetch(app, scope)
    if status != 200:
        raise RuntimeError(f"{scope['path']}: status {status}, not 200")
    return headers, body


def decoded_body(headers: dict[bytes, bytes], body: bytes) -> bytes:
    """``body`` undone of its Content-Encoding."""
    return DECODERS[headers.get(b"content-encoding", b"")](body)


class TimedContender(Protocol):
    async def measure(self, requests: int) -> None:
        """Times ``requests`` requests and keeps the per-request figures as this round's sample."""


async def run_rounds(groups: Sequence[Sequence[TimedContender]], rounds: int, requests: int, deadline: float) -> None:
    """Each round times every group's contenders back to back; stops early after the round that passes ``deadline``
    (a ``time.monotonic()`` value)."""
    for round_index in range(rounds):
        for contenders in groups:
            shift = round_index % len(contenders)  # rotated so that no contender always goes first
            for contender in [*contenders[shift:], *contenders[:shift]]:
                gc.collect()  # nobody pays for the previous contender's garbage
                await contender.measure(requests)
        print(f"round {round_index + 1}/{rounds} done", file=sys.stderr)
        if time.monotonic() > deadline:
            print(f"stopping after {round_index + 1} rounds: --max-seconds reached", file=sys.stderr)
            break


def median_ratio(numerators: Iterable[float], denominators: Iterable[float]) -> float:
    """Median over rounds of each round's ratio: its two contenders ran moments apart."""
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def source_revision() -> str:
    """The commit slipstream's source comes from, and whether src/ has uncommitted changes (read-only git calls)."""
    git = ["git", "-C", str(Path(__file__).resolve().parent.parent)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, check=True, text=True)
        changed = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "src"], check=False).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"git {commit.stdout.strip()}{', with uncommitted changes in src/' if changed else ''}"


def report_heading(
    title: str, command: str, revision: str, packages: Iterable[str], other_versions: str = ""
) -> list[str]:
    """A report's title, command, date, source revision, machine and package versions (``other_versions`` last)."""
    installed = ", ".join(f"{name} {version(name)}" for name in packages)
    return [
        f"## {title}\n\nCommand: `{command}`\n",
        f"- Date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}; slipstream source: {revision}",
        f"- Python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs",
        f"- Packages: {installed}{f'; {other_versions}' if other_versions else ''}",
    ]


def table_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def write_section(path: Path, name: str, text: str) -> None:
    """Replace the part of ``path`` between the HTML comment markers ``name`` names, or append it; keep the rest."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    before, found, rest = old.partition(start)
    if found and end not in rest:
        raise SystemExit(f"{path}: {start} has no {end} after it; mend the file by hand")
    before, after = (before, rest.partition(end)[2]) if found else (old.rstrip() + "\n\n" if old.strip() else "", "\n")
    path.write_text(f"{before}{start}\n{text.strip()}\n{end}{after}", encoding="utf-8")
