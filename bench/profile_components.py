"""Which part of a server a py-spy frame belongs to, by its file (bench_profile.py's breakdown)."""

from __future__ import annotations

import re

SERVER = "uvicorn, h11, asyncio: the server"
STARLETTE = "Starlette (routing, responses), anyio"
ENDPOINT = "the endpoint (JSON encoding)"
TIMING = "slipstream: timing, record, metrics, report, Server-Timing"
CACHE = "slipstream: response cache"
CODINGS = "slipstream: compression, ETags, HTTP helpers"
PROMETHEUS = "prometheus_client"
OPENTELEMETRY = "OpenTelemetry SDK and API (main thread)"
OTHER = "other Python (contextlib, typing, abc, …)"
OTHER_THREADS = "other threads (the span processor's)"
COMPONENTS = [SERVER, STARLETTE, ENDPOINT, TIMING, CACHE, CODINGS, PROMETHEUS, OPENTELEMETRY, OTHER, OTHER_THREADS]

# (a piece of the file's path, its component), first match wins: slipstream's parts before the rest.
_BY_PATH = [
    ("slipstream/cache/", CACHE),
    ("slipstream/middleware/cache.py", CACHE),
    ("slipstream/middleware/compression.py", CODINGS),
    ("slipstream/middleware/conditional.py", CODINGS),
    ("slipstream/http/", CODINGS),
    ("slipstream/", TIMING),
    ("/opentelemetry/", OPENTELEMETRY),
    ("/prometheus_client/", PROMETHEUS),
    ("/starlette/", STARLETTE),
    ("/anyio/", STARLETTE),
    ("/uvicorn/", SERVER),
    ("/h11/", SERVER),
    ("/asyncio/", SERVER),
    ("/selectors.py", SERVER),
    ("/socket.py", SERVER),
    ("/json/", ENDPOINT),
    ("telemetry_contenders.py", ENDPOINT),
    ("cache_contenders.py", ENDPOINT),
]
_FILE = re.compile(r"\(([^()]*?)(?::\d+)?\)$")


def component_of(frame: str) -> str:
    """The component of a py-spy frame, ``function (path/to/file.py:line)``; the bare thread line is the server's
    (a sample taken between two Python calls of the event loop)."""
    found = _FILE.search(frame)
    path = found.group(1) if found else ""
    for piece, component in _BY_PATH:
        if piece in path:
            return component
    return SERVER if not path or path.startswith("<frozen") else OTHER
