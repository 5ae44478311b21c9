"""Helpers shared by the Redis tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import httpx
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.support import free_port, stop_process

__all__ = ["eventually", "shared_app_processes", "simultaneous_reports"]
ROOT = Path(__file__).resolve().parents[2]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except RedisConnectionError:  # a test client's connection dropped by a restart: it reconnects next time
            pass
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@contextlib.contextmanager
def shared_app_processes(redis_url: str, count: int = 2, timeout: float = 20.0) -> Iterator[list[str]]:
    """``count`` uvicorn processes serving tests/cache/shared_app.py with the Redis tier at ``redis_url``."""
    env = {**os.environ, "SLIPSTREAM_CACHE_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    ports = [free_port() for _ in range(count)]
    command = [sys.executable, "-m", "uvicorn", "tests.cache.shared_app:app", "--log-level", "warning", "--port"]
    processes = [subprocess.Popen([*command, str(port)], cwd=ROOT, env=env) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + timeout
        for url in urls:
            while True:
                try:
                    httpx.get(url + "/missing", timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the app processes did not start") from None
                    time.sleep(0.05)
        yield urls
    finally:
        for process in processes:
            stop_process(process)


async def simultaneous_reports(client: httpx.AsyncClient, instances: list[str], count: int = 40) -> list[str]:
    """``count`` concurrent GETs of the shared app's /report spread over ``instances``; their X-Cache values."""
    statuses: list[str] = []

    async def fetch(url: str) -> None:
        response = await client.get(url + "/report", headers={"accept-encoding": "br"})
        assert response.status_code == 200 and response.text == "the report " * 200
        statuses.append(response.headers["x-cache"])

    async with anyio.create_task_group() as tg:
        for index in range(count):
            tg.start_soon(fetch, instances[index % len(instances)])
    return statuses
