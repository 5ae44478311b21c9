from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.util._once import Once

from tests.otlp_receiver import OTLPReceiver, run_otlp_receiver
from tests.postgres_server import PostgresDatabase, PostgresServer, run_postgres_server
from tests.redis_cluster import RedisClusterNodes, run_redis_cluster
from tests.redis_server import RedisServer, run_redis_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def unfrozen_collector() -> Iterator[None]:
    """Each test leaves the garbage collector as it found it: an app's lifespan startup freezes the heap
    (``gc_freeze``), which in this process would keep every earlier test's leftovers for good."""
    yield
    if gc.get_freeze_count():
        gc.unfreeze()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, stopped after the test; see tests/redis_server.py."""
    with run_redis_server(tmp_path) as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    """An in-process OTLP/HTTP receiver on a loopback port; see tests/otlp_receiver.py."""
    with run_otlp_receiver() as receiver:
        yield receiver


@pytest.fixture
def fresh_globals(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenTelemetry's globals as in a process that has set no provider, put back after the test.

    The API lets a process set each global provider once. Like opentelemetry-test-utils' reset_trace_globals,
    this swaps in a fresh once-guard (and meter proxy), so this test may set them and no other test sees it.
    """
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    monkeypatch.delenv("OTEL_PYTHON_METER_PROVIDER", raising=False)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(metrics_internal, "_METER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(metrics_internal, "_METER_PROVIDER", None)
    monkeypatch.setattr(metrics_internal, "_PROXY_METER_PROVIDER", metrics_internal._ProxyMeterProvider())


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One real PostgreSQL for the whole session (startup takes about a second); see tests/postgres_server.py."""
    with run_postgres_server(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[PostgresDatabase]:
    """An empty database of this test's own on the session's PostgreSQL, dropped afterwards; `.url(driver)`."""
    with postgres_server.fresh_database() as database:
        yield database


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterNodes]:
    """A real three-node Redis Cluster on free loopback ports, stopped after the test; see tests/redis_cluster.py."""
    with run_redis_cluster(tmp_path) as cluster:
        yield cluster
