"""Every example in examples/ run as a user runs it: its own process, a real uvicorn on free loopback ports.

The FastAPI example on SQLite (aiosqlite), then on a real PostgreSQL (asyncpg) with a real Redis tier; the
multi-worker script (two uvicorn workers and the sidecar); the minimal Starlette app. The demo is run by the live
page's browser test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import redis

from tests.postgres_server import PostgresDatabase
from tests.redis_server import RedisServer
from tests.support import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
START_TIMEOUT = 60.0


def example_env(**extra: str) -> dict[str, str]:
    """The test's environment with this checkout importable and no setting of the developer's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPSTREAM_", "PROMETHEUS_", "DATABASE_URL"))}
    return {**env, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), **extra}


@contextlib.contextmanager
def serving(command: list[str], env: Mapping[str, str], ready: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until the test is done; first wait (bounded) for ``ready`` to answer 200."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=dict(env), stdout=output, stderr=subprocess.STDOUT, cwd=log.parent)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(ready, timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{command} did not become ready:\n{log.read_text()}")
            time.sleep(0.1)
        yield process
    finally:
        stop_process(process, timeout=20)


def check_books(base: str) -> None:
    """The FastAPI example's story: an HTTP cache entry, a @cached summary with its @timed operation, a purge."""
    with httpx.Client(base_url=base, timeout=10) as client:
        first, second = client.get("/books"), client.get("/books")
        assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
        assert len(first.json()) == 15 and second.json() == first.json()
        assert "surrogate-key" not in second.headers
        one, again = client.get("/books/1"), client.get("/books/1")
        assert one.json() == again.json() == {"id": 1, "title": "book 1.1", "author": "author 1"}
        # The summary is computed once: the second call is served by @cached, so its operation does not run.
        assert "book-summary" in one.headers["server-timing"]
        assert "book-summary" not in again.headers["server-timing"]
        assert client.get("/books/999").status_code == 404
        created = client.post("/books", json={"title": "a new one", "author_id": 2})
        assert created.status_code == 201 and created.json()["purged"] >= 2
        after = client.get("/books")
        assert after.headers["x-cache"] == "MISS" and len(after.json()) == 16
        assert "book-summary" in client.get("/books/1").headers["server-timing"]


def live_data(metrics_base: str) -> dict[str, object]:
    answer = httpx.get(f"{metrics_base}/live.json", timeout=10)
    assert answer.status_code == 200
    data: dict[str, object] = answer.json()
    return data


def test_fastapi_example_on_sqlite(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = example_env(SLIPSTREAM_METRICS_PORT=str(metrics_port))
    command = [sys.executable, str(EXAMPLES / "fastapi_app.py"), "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with serving(command, env, f"{base}/health", tmp_path / "fastapi.log"):
        check_books(base)
        data = live_data(f"http://127.0.0.1:{metrics_port}")
    printed = (tmp_path / "fastapi.log").read_text()
    assert "sqlite+aiosqlite" in printed and f"live page: http://127.0.0.1:{metrics_port}/" in printed
    routes = {(row["method"], row["route"]): row for row in data["routes"]}  # type: ignore[attr-defined]
    assert routes["GET", "/books"]["hit_ratio"] == round(1 / 3, 4)
    assert routes["POST", "/books"]["requests"] == 1 and ("GET", "/books/{book_id}") in routes
    assert {row["system"] for row in data["database"]["statements"]} == {"sqlite"}  # type: ignore[index]
    assert data["cache_state"]["redis"] is None  # type: ignore[index]


def test_fastapi_example_on_postgresql_with_the_redis_tier(
    tmp_path: Path, postgres_database: PostgresDatabase, redis_server: RedisServer
) -> None:
    port, metrics_port = free_port(), free_port()
    env = example_env(
        SLIPSTREAM_METRICS_PORT=str(metrics_port),
        DATABASE_URL=postgres_database.url("asyncpg"),
        SLIPSTREAM_CACHE_REDIS_URL=redis_server.url,
    )
    command = [sys.executable, str(EXAMPLES / "fastapi_app.py"), "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with serving(command, env, f"{base}/health", tmp_path / "fastapi.log"):
        check_books(base)
        with redis.Redis.from_url(redis_server.url) as client:
            assert client.keys("slipstream:e:*"), "nothing was written to the Redis tier"
        data = live_data(f"http://127.0.0.1:{metrics_port}")
    assert {row["system"] for row in data["database"]["statements"]} == {"postgresql"}  # type: ignore[index]
    # Up: the breaker is closed (a first call may have timed out on a busy machine; it closes again by itself).
    assert data["cache_state"]["redis"]["state"] == "closed"  # type: ignore[index]


def test_multiworker_script_serves_two_workers_and_the_sidecar_merges_them(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    command = [sys.executable, str(EXAMPLES / "multiworker.py"), "--port", str(port)]
    command += ["--metrics-port", str(metrics_port), "--workers", "2", "--dir", str(tmp_path / "metrics")]
    base, sidecar = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
    with serving(command, example_env(), f"{base}/health", tmp_path / "multiworker.log") as script:
        deadline = time.monotonic() + START_TIMEOUT
        while httpx.get(f"{sidecar}/healthz", timeout=5).json()["workers"] < 2:
            assert time.monotonic() < deadline, "the sidecar never saw two workers"
            time.sleep(0.2)
        # No keep-alive: every request opens a connection, so the kernel spreads them over both workers.
        with httpx.Client(base_url=base, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for _ in range(30):
                assert client.get("/books").status_code == 200
        # The workers write their counts every metrics_multiprocess_flush_interval (0.1 s).
        deadline = time.monotonic() + 10
        while True:
            data = live_data(sidecar)
            counted = {(row["method"], row["route"]): row["requests"] for row in data["routes"]}  # type: ignore[attr-defined]
            if counted.get(("GET", "/books")) == 30 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        script.send_signal(signal.SIGTERM)
        assert script.wait(30) == 0
    assert data["source"] == "sidecar" and data["workers"] == 2
    routes = {(row["method"], row["route"]): row for row in data["routes"]}  # type: ignore[attr-defined]
    assert routes["GET", "/books"]["requests"] == 30
    # Each worker has its own memory tier: a miss each at least, the rest hits, summed over both.
    assert 0 < routes["GET", "/books"]["hit_ratio"] < 1
    for free in (port, metrics_port):
        with contextlib.suppress(ConnectionRefusedError), socket.create_connection(("127.0.0.1", free), 2):
            raise AssertionError(f"port {free} still answers after the script stopped")


def test_minimal_starlette_example_adds_middlewares_one_by_one(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, str(EXAMPLES / "starlette_minimal.py"), "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with serving(command, example_env(), f"{base}/items", tmp_path / "starlette.log"):
        with httpx.Client(base_url=base, timeout=10, headers={"accept-encoding": "br"}) as client:
            # The readiness probe filled the entry.
            hit = client.get("/items")
            assert hit.headers["content-encoding"] == "br" and hit.headers["x-cache"] == "HIT"
            assert len(hit.json()) == 50
            not_modified = client.get("/items", headers={"if-none-match": hit.headers["etag"]})
            assert not_modified.status_code == 304
