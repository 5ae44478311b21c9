"""instrument_sqlalchemy on real SQLite databases: latency, errors, slow queries, spans, pool, N+1, isolation."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session, selectinload
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from slipstream import TimingMiddleware, instrument_sqlalchemy, uninstrument_sqlalchemy
from slipstream.record import DatabaseHooks
from slipstream.sqlalchemy import hooks as hooks_module
from slipstream.sqlalchemy.slow import SlowQueries, caller_location, slow_queries
from tests.sqlalchemy.models import AUTHORS, Author, Base, Post, filled_sqlite
from tests.support import asgi_client

pytestmark = pytest.mark.anyio
DURATION = "db_client_operation_duration_seconds"
HERE = Path(__file__).name


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = filled_sqlite(str(tmp_path / "blog.db"))
    yield engine
    uninstrument_sqlalchemy(engine)
    engine.dispose()


@pytest.fixture
async def async_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    filled_sqlite(str(tmp_path / "blog.db")).dispose()
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'blog.db'}")
    yield engine
    uninstrument_sqlalchemy(engine)
    await engine.dispose()


@pytest.fixture
def spans() -> Iterator[tuple[InMemorySpanExporter, trace.Tracer]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, provider.get_tracer("tests")
    provider.shutdown()


def count(registry: CollectorRegistry, operation: str, collection: str, system: str = "sqlite") -> float:
    labels = {"db_system_name": system, "db_operation_name": operation, "db_collection_name": collection}
    return registry.get_sample_value(DURATION + "_count", labels) or 0.0


def test_statements_are_timed_by_operation_and_table(engine: Engine, registry: CollectorRegistry) -> None:
    instrument_sqlalchemy(engine, registry=registry, spans=False)
    with Session(engine) as session:
        for author_id in (1, 2, 3):
            session.get(Author, author_id)
        session.execute(insert(Post), [{"title": f"bulk {n}", "author_id": 1} for n in range(10)])
        session.commit()
    assert count(registry, "SELECT", "authors") == 3
    # executemany (and SQLite's insertmanyvalues batch) is one statement, counted once
    assert count(registry, "INSERT", "posts") == 1


async def test_async_engines_are_timed_through_their_sync_engine(
    async_engine: AsyncEngine, registry: CollectorRegistry
) -> None:
    instrument_sqlalchemy(async_engine, registry=registry, spans=False)
    async with AsyncSession(async_engine) as session:
        authors = (await session.scalars(select(Author).where(Author.id < 4))).all()
    assert len(authors) == 3
    assert count(registry, "SELECT", "authors") == 1


def test_instrumenting_twice_does_not_double_count_and_uninstrument_stops(
    engine: Engine, registry: CollectorRegistry
) -> None:
    engines_before = DatabaseHooks.engines
    first = instrument_sqlalchemy(engine, registry=registry, spans=False)
    assert instrument_sqlalchemy(engine, registry=registry) is first
    assert DatabaseHooks.engines == engines_before + 1
    with engine.connect() as connection:
        connection.execute(text("select count(*) from authors"))
    uninstrument_sqlalchemy(engine)
    uninstrument_sqlalchemy(engine)  # a second time is harmless
    assert DatabaseHooks.engines == engines_before
    with engine.connect() as connection:
        connection.execute(text("select count(*) from authors"))
    assert count(registry, "SELECT", "authors") == 1
    assert "do_execute" not in engine.dialect.__dict__


def test_several_engines_at_once(tmp_path: Path, registry: CollectorRegistry) -> None:
    engines = [filled_sqlite(str(tmp_path / f"db{n}.db")) for n in range(2)]
    try:
        for each in engines:
            instrument_sqlalchemy(each, registry=registry, spans=False)
        for n, each in enumerate(engines):
            with each.connect() as connection:
                for _ in range(n + 1):
                    connection.execute(select(Author.id))
        assert count(registry, "SELECT", "authors") == 3
    finally:
        for each in engines:
            uninstrument_sqlalchemy(each)
            each.dispose()


def test_errors_are_counted_by_type_and_raised_unchanged(engine: Engine, registry: CollectorRegistry) -> None:
    instrument_sqlalchemy(engine, registry=registry, spans=False)
    with engine.connect() as connection, pytest.raises(sqlalchemy.exc.OperationalError, match="no such table"):
        connection.execute(text("select * from missing_table"))
    errors = registry.get_sample_value(
        "slipstream_db_client_errors_total", {"db_system_name": "sqlite", "error_type": "OperationalError"}
    )
    assert errors == 1
    assert count(registry, "SELECT", "missing_table") == 1


def test_slow_queries_are_logged_with_fingerprint_and_caller_never_values(
    engine: Engine, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    slow_queries.clear()
    instrument_sqlalchemy(engine, registry=registry, spans=False, slow_query_threshold=0.0)
    secret = "zq-secret-address@example.com"
    with caplog.at_level(logging.WARNING, logger="slipstream.sql"), Session(engine) as session:
        session.scalars(select(Author).where(Author.email == secret)).all()  # the caller line
        caller_line = _line_of("session.scalars(select(Author).where(Author.email == secret)).all()")
    (record,) = [r for r in caplog.records if r.name == "slipstream.sql"]
    assert secret not in caplog.text
    assert record.fingerprint.startswith("SELECT")  # type: ignore[attr-defined]
    assert "authors.email = ?" in record.fingerprint  # type: ignore[attr-defined]
    assert record.caller == f"{__file__}:{caller_line}"  # type: ignore[attr-defined]
    labels = {"db_system_name": "sqlite", "db_operation_name": "SELECT", "db_collection_name": "authors"}
    assert registry.get_sample_value("slipstream_db_slow_queries_total", labels) == 1
    (top,) = slow_queries.snapshot()
    assert top["count"] == 1 and top["fingerprint"] == record.fingerprint  # type: ignore[attr-defined]


def _line_of(source: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if source in line and "_line_of" not in line)


def test_the_slow_query_list_keeps_the_slowest_and_is_bounded() -> None:
    from slipstream.sqlalchemy.fingerprint import fingerprint

    store = SlowQueries(limit=3, samples=4)
    for n in range(6):
        store.add(fingerprint(f"select * from t{n} where a = 1"), "sqlite", 0.1 * (n + 1), None)
    store.add(fingerprint("select * from t0 where a = 1"), "sqlite", 0.01, None)  # too fast to get back in
    for _ in range(10):
        store.add(fingerprint("select * from t5 where a = 2"), "sqlite", 0.6, "/r")
    rows = store.snapshot()
    assert [row["collection"] for row in rows] == ["t5", "t4", "t3"]
    assert rows[0]["count"] == 11 and rows[0]["route"] == "/r"


def test_spans_per_statement_with_the_fingerprint_as_query_text(
    engine: Engine, registry: CollectorRegistry, spans: tuple[InMemorySpanExporter, trace.Tracer]
) -> None:
    exporter, tracer = spans
    instrument_sqlalchemy(engine, registry=registry, tracer=tracer)
    with tracer.start_as_current_span("request"), engine.connect() as connection:
        connection.execute(select(Author.name).where(Author.email == "zq-private@example.com"))
        with pytest.raises(sqlalchemy.exc.OperationalError):
            connection.execute(text("select * from nowhere"))
    statement, failed, request = exporter.get_finished_spans()
    assert statement.name == "SELECT authors"
    assert statement.kind is trace.SpanKind.CLIENT
    assert statement.parent is not None and request.context is not None
    assert statement.parent.span_id == request.context.span_id
    attributes = dict(statement.attributes or {})
    assert attributes["db.system.name"] == "sqlite"
    assert attributes["db.operation.name"] == "SELECT"
    assert attributes["db.collection.name"] == "authors"
    assert str(attributes["db.namespace"]).endswith("blog.db")
    assert "zq-private" not in str(attributes)
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "OperationalError"


def test_a_failing_hook_never_breaks_a_query(
    engine: Engine, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    instrument_sqlalchemy(engine, registry=registry, spans=False)

    def broken(statement: str) -> Any:
        raise RuntimeError("fingerprinter bug")

    monkeypatch.setattr(hooks_module, "fingerprint", broken)
    with caplog.at_level(logging.ERROR, logger="slipstream.sql"), engine.connect() as connection:
        assert connection.execute(text("select count(*) from authors")).scalar() == AUTHORS
        with pytest.raises(sqlalchemy.exc.OperationalError):
            connection.execute(text("select * from nowhere"))
    assert "recording a statement failed" in caplog.text
    assert "recording a failed statement failed" in caplog.text


def test_pool_counts_waits_and_timeouts(tmp_path: Path, registry: CollectorRegistry) -> None:
    filled_sqlite(str(tmp_path / "pool.db")).dispose()
    engine = create_engine(
        f"sqlite:///{tmp_path / 'pool.db'}",
        poolclass=sqlalchemy.QueuePool,
        pool_size=2,
        max_overflow=0,
        pool_timeout=0.2,
    )
    hooks = instrument_sqlalchemy(engine, registry=registry, spans=False)
    pool = {"pool_name": hooks.pool_name}
    try:
        first, second = engine.connect(), engine.connect()
        assert registry.get_sample_value("db_client_connection_count", {**pool, "state": "used"}) == 2
        assert registry.get_sample_value("db_client_connection_max", pool) == 2
        with pytest.raises(sqlalchemy.exc.TimeoutError):
            engine.connect()
        assert registry.get_sample_value("db_client_connection_timeouts_total", pool) == 1
        waiting = threading.Event()

        def wait_for_a_connection() -> None:
            waiting.set()
            with engine.connect():
                pass

        thread = threading.Thread(target=wait_for_a_connection)
        thread.start()
        waiting.wait(5)
        pending_seen = _poll(lambda: registry.get_sample_value("db_client_connection_pending_requests", pool) == 1)
        first.close()
        thread.join(5)
        second.close()
        assert pending_seen
        assert registry.get_sample_value("db_client_connection_count", {**pool, "state": "idle"}) == 2
        assert registry.get_sample_value("db_client_connection_wait_time_seconds_count", pool) == 4
        engine.dispose()  # a new pool: still measured
        with engine.connect():
            pass
        assert registry.get_sample_value("db_client_connection_wait_time_seconds_count", pool) == 5
    finally:
        uninstrument_sqlalchemy(engine)
        engine.dispose()


def _poll(condition: Any, attempts: int = 200) -> bool:
    for _ in range(attempts):
        if condition():
            return True
        threading.Event().wait(0.01)
    return False


def test_pools_without_counts_report_only_pending(tmp_path: Path, registry: CollectorRegistry) -> None:
    engine = create_engine("sqlite://", poolclass=sqlalchemy.StaticPool)
    hooks = instrument_sqlalchemy(engine, registry=registry, spans=False)
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        assert (
            registry.get_sample_value("db_client_connection_count", {"pool_name": hooks.pool_name, "state": "used"})
            is None
        )
        assert registry.get_sample_value("db_client_connection_pending_requests", {"pool_name": hooks.pool_name}) == 0
    finally:
        uninstrument_sqlalchemy(engine)
        engine.dispose()


# Per-request accounting and N+1 ---------------------------------------------------------------------------


def blog_app(engine: Engine, registry: CollectorRegistry, tracer: trace.Tracer | None = None) -> Starlette:
    def authors_lazy(request: Request) -> Response:  # sync: runs in the threadpool
        with Session(engine) as session:
            authors = session.scalars(select(Author)).all()
            titles = [post.title for author in authors for post in author.posts]  # one SELECT per author
        return PlainTextResponse(str(len(titles)))

    def authors_eager(request: Request) -> Response:
        with Session(engine) as session:
            authors = session.scalars(select(Author).options(selectinload(Author.posts))).all()
            titles = [post.title for author in authors for post in author.posts]
        return PlainTextResponse(str(len(titles)))

    routes = [Route("/lazy", authors_lazy), Route("/eager", authors_eager)]
    return Starlette(routes=routes, middleware=[Middleware(TimingMiddleware, registry=registry, tracer=tracer)])


def test_lazy_loads_in_the_threadpool_are_an_n_plus_one_finding(
    engine: Engine,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
    spans: tuple[InMemorySpanExporter, trace.Tracer],
) -> None:
    exporter, tracer = spans
    instrument_sqlalchemy(engine, registry=registry, spans=False)
    app = blog_app(engine, registry, tracer)

    async def fetch() -> tuple[str, str]:
        async with asgi_client(app) as client:
            lazy = await client.get("/lazy")
            eager = await client.get("/eager")
        return lazy.headers["server-timing"], eager.headers["server-timing"]

    with caplog.at_level(logging.WARNING, logger="slipstream.sql"):
        lazy_timing, eager_timing = anyio.run(fetch)
    assert re.search(rf'db;dur=[\d.]+;desc="{AUTHORS + 1} queries"', lazy_timing)
    assert re.search(r'db;dur=[\d.]+;desc="2 queries"', eager_timing)
    (finding,) = [r for r in caplog.records if r.getMessage().startswith("N+1")]
    assert finding.count == AUTHORS  # type: ignore[attr-defined]
    assert finding.http_route == "/lazy"  # type: ignore[attr-defined]
    assert "FROM posts WHERE ? = posts.author_id" in finding.fingerprint  # type: ignore[attr-defined]
    lazy_line = _line_of("titles = [post.title for author in authors for post in author.posts]  # one SELECT")
    assert finding.caller == f"{__file__}:{lazy_line}"  # type: ignore[attr-defined]
    assert registry.get_sample_value("slipstream_db_n_plus_one_total", {"http_route": "/lazy"}) == 1
    assert registry.get_sample_value("slipstream_db_n_plus_one_total", {"http_route": "/eager"}) is None
    per_request = {"http_route": "/lazy"}
    assert registry.get_sample_value("slipstream_db_queries_per_request_sum", per_request) == AUTHORS + 1
    (server,) = [s for s in exporter.get_finished_spans() if s.name == "GET /lazy"]
    (event,) = server.events
    assert event.name == "slipstream.n_plus_one" and (event.attributes or {})["slipstream.count"] == AUTHORS


async def test_lazy_loads_on_an_async_session_are_found_too(
    async_engine: AsyncEngine, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    instrument_sqlalchemy(async_engine, registry=registry, spans=False)

    async def authors(request: Request) -> Response:
        async with AsyncSession(async_engine) as session:
            found = (await session.scalars(select(Author))).all()
            titles = [post.title for author in found for post in await author.awaitable_attrs.posts]
        return PlainTextResponse(str(len(titles)))

    app = Starlette(
        routes=[Route("/async-lazy", authors)], middleware=[Middleware(TimingMiddleware, registry=registry)]
    )
    with caplog.at_level(logging.WARNING, logger="slipstream.sql"):
        async with asgi_client(app) as client:
            response = await client.get("/async-lazy")
    assert f'desc="{AUTHORS + 1} queries"' in response.headers["server-timing"]
    (finding,) = [r for r in caplog.records if r.getMessage().startswith("N+1")]
    line = _line_of("titles = [post.title for author in found for post in await author.awaitable_attrs.posts]")
    assert finding.caller == f"{__file__}:{line}"  # type: ignore[attr-defined]


async def test_concurrent_requests_never_mix_their_counts(
    async_engine: AsyncEngine, registry: CollectorRegistry
) -> None:
    instrument_sqlalchemy(async_engine, registry=registry, spans=False)
    step = anyio.Event()

    async def queries(request: Request) -> Response:
        n = int(request.path_params["n"])
        async with AsyncSession(async_engine) as session:
            for i in range(n):
                await session.execute(select(Author.id).where(Author.id == i))
                if i == 0 and n == 2:
                    await step.wait()  # hold the short request open while the long one runs all of its queries
            if n == 7:
                step.set()
        return PlainTextResponse(str(n))

    app = Starlette(routes=[Route("/q/{n}", queries)], middleware=[Middleware(TimingMiddleware, registry=registry)])
    timings: dict[int, str] = {}
    async with asgi_client(app) as client, anyio.create_task_group() as group:

        async def fetch(n: int) -> None:
            timings[n] = (await client.get(f"/q/{n}")).headers["server-timing"]

        group.start_soon(fetch, 2)
        group.start_soon(fetch, 7)
    assert 'desc="2 queries"' in timings[2]
    assert 'desc="7 queries"' in timings[7]


def test_outside_a_request_statements_are_only_timed(engine: Engine, registry: CollectorRegistry) -> None:
    instrument_sqlalchemy(engine, registry=registry, spans=False, n_plus_one_threshold=2)
    with Session(engine) as session:
        for author in session.scalars(select(Author)).all():
            _ = author.posts
    assert count(registry, "SELECT", "posts") == AUTHORS


def test_the_caller_skips_frames_without_a_file() -> None:
    assert caller_location() is not None
    code = compile("import slipstream.sqlalchemy.slow as h\nresult = h.caller_location()", "<string>", "exec")
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    # the exec'd frame is "<string>" and skipped; this test function is the caller
    assert namespace["result"].startswith(__file__)


def test_models_cover_the_schema() -> None:
    assert {table.name for table in Base.metadata.sorted_tables} == {"authors", "posts"}


def test_index_hints_from_the_slow_query_path_reach_the_report(
    engine: Engine, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    from slipstream.exporters.report import Report
    from slipstream.sqlalchemy.hooks import index_hints

    hooks = instrument_sqlalchemy(engine, registry=registry, spans=False, slow_query_threshold=0.0, index_hints=True)
    with caplog.at_level(logging.WARNING, logger="slipstream.sql"), engine.connect() as connection:
        connection.execute(select(Author.id).where(Author.email == "author3@example.com")).all()
        connection.execute(insert(Post).values(title="x", author_id=1))  # writes are never planned
        assert hooks.index_advisor is not None and hooks.index_advisor.drain(10)
    (hint,) = index_hints()
    assert (hint["table"], hint["columns"]) == ("authors", ["email"])
    assert Report(registry).snapshot()["index_hints"] == [hint]
    assert "index hint: authors(email)" in caplog.text
    # the advisor's EXPLAIN is timed but is not one of the app's slow queries
    slow_messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("slow query")]
    assert slow_messages and not any("EXPLAIN" in message for message in slow_messages)


def test_the_hooks_leave_sqlalchemys_event_fast_path_alone(engine: Engine, registry: CollectorRegistry) -> None:
    """Any engine-level listener makes every statement take SQLAlchemy's slower event path; the hooks add none."""
    instrument_sqlalchemy(engine, registry=registry, spans=False)
    assert not engine._has_events
    engine.dispose(close=False)
    with engine.connect() as connection:
        connection.execute(text("select 1"))
    assert not engine._has_events
