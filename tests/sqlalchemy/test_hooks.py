"""instrument_sqlalchemy on real SQLite databases: latency, errors, slow queries, spans, pool, N+1, isolation.

Every test instruments its engines for an Instrumentation of its own on a fresh registry (``tests.support``); an
app's TimingMiddleware shares that instrumentation, so that its requests see the engine's statements.
"""

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
from starlette.routing import Mount, Route

from slipstream import TimingMiddleware, instrument_sqlalchemy, uninstrument_sqlalchemy
from slipstream.instrumentation import Instrumentation
from slipstream.sqlalchemy import hooks as hooks_module
from slipstream.sqlalchemy.n_plus_one import DatabaseRequests
from slipstream.sqlalchemy.slow import SlowQueries, caller_location
from tests.sqlalchemy.models import AUTHORS, Author, Base, Post, filled_sqlite
from tests.support import asgi_client, instrumented

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
def spans() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, provider
    provider.shutdown()


def count(registry: CollectorRegistry, operation: str, collection: str, system: str = "sqlite") -> float:
    labels = {"db_system_name": system, "db_operation_name": operation, "db_collection_name": collection}
    return registry.get_sample_value(DURATION + "_count", labels) or 0.0


def samples(registry: CollectorRegistry, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample named ``name`` in ``registry``, as (labels, value)."""
    return [
        (sample.labels, sample.value)
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name
    ]


def test_statements_are_timed_by_operation_and_table(engine: Engine, registry: CollectorRegistry) -> None:
    instrument_sqlalchemy(engine, instrumentation=instrumented(registry), spans=False)
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
    instrument_sqlalchemy(async_engine, instrumentation=instrumented(registry), spans=False)
    async with AsyncSession(async_engine) as session:
        authors = (await session.scalars(select(Author).where(Author.id < 4))).all()
    assert len(authors) == 3
    assert count(registry, "SELECT", "authors") == 1


def test_instrumenting_twice_does_not_double_count_and_uninstrument_stops(
    engine: Engine, registry: CollectorRegistry
) -> None:
    instrumentation = instrumented(registry)
    first = instrument_sqlalchemy(engine, instrumentation=instrumentation, spans=False)
    assert instrument_sqlalchemy(engine, instrumentation=instrumentation) is first
    assert list(instrumentation.engines) == [first]
    # the app's requests report their query count through one receiver, however often engines are instrumented
    assert sum(isinstance(r, DatabaseRequests) for r in instrumentation.receivers) == 1
    with engine.connect() as connection:
        connection.execute(text("select count(*) from authors"))
    uninstrument_sqlalchemy(engine)
    uninstrument_sqlalchemy(engine)  # a second time is harmless
    assert list(instrumentation.engines) == []
    with engine.connect() as connection:
        connection.execute(text("select count(*) from authors"))
    assert count(registry, "SELECT", "authors") == 1
    assert "do_execute" not in engine.dialect.__dict__
    # uninstrumented, the engine may be instrumented for another app, which alone counts it from then on
    other = CollectorRegistry()
    instrument_sqlalchemy(engine, instrumentation=instrumented(other), spans=False)
    with engine.connect() as connection:
        connection.execute(text("select count(*) from authors"))
    assert (count(registry, "SELECT", "authors"), count(other, "SELECT", "authors")) == (1, 1)


def test_an_engine_instrumented_for_one_app_is_refused_to_another(engine: Engine, registry: CollectorRegistry) -> None:
    mine = instrumented(registry)
    hooks = instrument_sqlalchemy(engine, instrumentation=mine, spans=False)
    other = instrumented()
    with pytest.raises(ValueError, match="instrumented for another app"):
        instrument_sqlalchemy(engine, instrumentation=other)
    assert list(other.engines) == [] and other.slow_queries is None
    assert instrument_sqlalchemy(engine, instrumentation=mine) is hooks
    assert instrument_sqlalchemy(engine) is hooks  # naming no app: the engine's own hooks, as they are
    with engine.connect() as connection:
        connection.execute(text("select count(*) from authors"))
    assert count(registry, "SELECT", "authors") == 1
    assert count(other.registry, "SELECT", "authors") == 0


def test_several_engines_at_once(tmp_path: Path, registry: CollectorRegistry) -> None:
    engines = [filled_sqlite(str(tmp_path / f"db{n}.db")) for n in range(2)]
    instrumentation = instrumented(registry)
    try:
        for each in engines:
            instrument_sqlalchemy(each, instrumentation=instrumentation, spans=False)
        for n, each in enumerate(engines):
            with each.connect() as connection:
                for _ in range(n + 1):
                    connection.execute(select(Author.id))
        assert count(registry, "SELECT", "authors") == 3
        assert len(instrumentation.engines) == 2
    finally:
        for each in engines:
            uninstrument_sqlalchemy(each)
            each.dispose()


def test_errors_are_counted_by_type_and_raised_unchanged(engine: Engine, registry: CollectorRegistry) -> None:
    instrument_sqlalchemy(engine, instrumentation=instrumented(registry), spans=False)
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
    instrumentation = instrumented(registry)
    before = instrumentation.slow_queries
    hooks = instrument_sqlalchemy(engine, instrumentation=instrumentation, spans=False, slow_query_threshold=0.0)
    slow_queries = instrumentation.slow_queries
    # the app's first instrumented engine makes its slow-query list
    assert before is None and slow_queries is not None and hooks.slow.store is slow_queries
    secret = "zq-secret-address@example.com"
    with caplog.at_level(logging.WARNING, logger="slipstream.sql"), Session(engine) as session:
        session.scalars(select(Author).where(Author.email == secret)).all()  # the caller line
        caller_line = _line_of("session.scalars(select(Author).where(Author.email == secret)).all()")
    (record,) = [r for r in caplog.records if r.name == "slipstream.sql"]
    assert secret not in caplog.text
    assert record.fingerprint.startswith("SELECT")  # type: ignore[attr-defined]
    assert "authors.email = ?" in record.fingerprint  # type: ignore[attr-defined]
    assert record.caller == f"{__file__}:{caller_line}"  # type: ignore[attr-defined]
    assert record.http_route is None  # type: ignore[attr-defined]  # outside a request
    labels = {"db_system_name": "sqlite", "db_operation_name": "SELECT", "db_collection_name": "authors"}
    assert registry.get_sample_value("slipstream_db_slow_queries_total", labels) == 1
    (top,) = slow_queries.snapshot()
    assert top["count"] == 1 and top["fingerprint"] == record.fingerprint  # type: ignore[attr-defined]


def test_the_slow_query_threshold_comes_from_the_settings_unless_given(tmp_path: Path) -> None:
    engines = [filled_sqlite(str(tmp_path / f"db{n}.db")) for n in range(2)]
    by_settings = instrumented(db_slow_query_threshold=0.0)
    by_option = instrumented(db_slow_query_threshold=0.0)
    try:
        instrument_sqlalchemy(engines[0], instrumentation=by_settings, spans=False)
        instrument_sqlalchemy(engines[1], instrumentation=by_option, spans=False, slow_query_threshold=60.0)
        for each in engines:
            with each.connect() as connection:
                connection.execute(select(Author.id))
        assert by_settings.slow_queries is not None and len(by_settings.slow_queries.snapshot()) == 1
        assert by_option.slow_queries is not None and by_option.slow_queries.snapshot() == []
    finally:
        for each in engines:
            uninstrument_sqlalchemy(each)
            each.dispose()


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
    engine: Engine, registry: CollectorRegistry, spans: tuple[InMemorySpanExporter, TracerProvider]
) -> None:
    exporter, provider = spans
    instrument_sqlalchemy(engine, instrumentation=instrumented(registry, provider))  # db_spans is on by default
    tracer = provider.get_tracer("tests")
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


def test_statement_spans_follow_the_settings_unless_given(
    tmp_path: Path, spans: tuple[InMemorySpanExporter, TracerProvider]
) -> None:
    exporter, provider = spans
    engines = [filled_sqlite(str(tmp_path / f"db{n}.db")) for n in range(4)]
    try:
        # db_spans=False in the settings; spans=True for this engine; no tracer provider at all; tracing off
        instrument_sqlalchemy(engines[0], instrumentation=instrumented(None, provider, db_spans=False))
        instrument_sqlalchemy(engines[1], instrumentation=instrumented(None, provider, db_spans=False), spans=True)
        instrument_sqlalchemy(engines[2], instrumentation=instrumented(), spans=True)
        instrument_sqlalchemy(engines[3], instrumentation=instrumented(None, provider, tracing_enabled=False))
        for each in engines:
            with each.connect() as connection:
                connection.execute(select(Author.id))
        (span,) = exporter.get_finished_spans()
        assert str((span.attributes or {})["db.namespace"]).endswith("db1.db")
    finally:
        for each in engines:
            uninstrument_sqlalchemy(each)
            each.dispose()


def test_a_failing_hook_never_breaks_a_query(
    engine: Engine, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    instrument_sqlalchemy(engine, instrumentation=instrumented(registry), spans=False)

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
    hooks = instrument_sqlalchemy(engine, instrumentation=instrumented(registry), spans=False)
    watch = hooks.pool
    pool = {"pool_name": watch.pool_name}
    try:
        first, second = engine.connect(), engine.connect()
        assert watch.state() == (0, 2, 2)
        assert registry.get_sample_value("db_client_connection_count", {**pool, "state": "used"}) == 2
        assert registry.get_sample_value("db_client_connection_max", pool) == 2
        with pytest.raises(sqlalchemy.exc.TimeoutError):
            engine.connect()
        assert registry.get_sample_value("db_client_connection_timeouts_total", pool) == 1
        assert watch.pending == 0
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
        assert watch.pending == 0
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
    hooks = instrument_sqlalchemy(engine, instrumentation=instrumented(registry), spans=False)
    pool_name = hooks.pool.pool_name
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        assert hooks.pool.state() is None
        assert (
            registry.get_sample_value("db_client_connection_count", {"pool_name": pool_name, "state": "used"}) is None
        )
        assert registry.get_sample_value("db_client_connection_pending_requests", {"pool_name": pool_name}) == 0
    finally:
        uninstrument_sqlalchemy(engine)
        engine.dispose()


# Per-request accounting and N+1 ---------------------------------------------------------------------------


def blog_app(engine: Engine, instrumentation: Instrumentation) -> Starlette:
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
    return Starlette(routes=routes, middleware=[Middleware(TimingMiddleware, instrumentation=instrumentation)])


def test_lazy_loads_in_the_threadpool_are_an_n_plus_one_finding(
    engine: Engine,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
    spans: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    exporter, provider = spans
    # The engine and the app's timing share one instrumentation: server spans on, statement spans off.
    instrumentation = instrumented(registry, provider)
    instrument_sqlalchemy(engine, instrumentation=instrumentation, spans=False)
    app = blog_app(engine, instrumentation)

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
    finished = exporter.get_finished_spans()
    assert sorted(s.name for s in finished) == ["GET /eager", "GET /lazy"]  # spans=False: no statement spans
    (server,) = [s for s in finished if s.name == "GET /lazy"]
    (event,) = server.events
    assert event.name == "slipstream.n_plus_one" and (event.attributes or {})["slipstream.count"] == AUTHORS


async def test_lazy_loads_on_an_async_session_are_found_too(
    async_engine: AsyncEngine, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    instrumentation = instrumented(registry)
    instrument_sqlalchemy(async_engine, instrumentation=instrumentation, spans=False)

    async def authors(request: Request) -> Response:
        async with AsyncSession(async_engine) as session:
            found = (await session.scalars(select(Author))).all()
            titles = [post.title for author in found for post in await author.awaitable_attrs.posts]
        return PlainTextResponse(str(len(titles)))

    app = Starlette(
        routes=[Route("/async-lazy", authors)],
        middleware=[Middleware(TimingMiddleware, instrumentation=instrumentation)],
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
    instrumentation = instrumented(registry)
    instrument_sqlalchemy(async_engine, instrumentation=instrumentation, spans=False)
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

    app = Starlette(
        routes=[Route("/q/{n}", queries)], middleware=[Middleware(TimingMiddleware, instrumentation=instrumentation)]
    )
    timings: dict[int, str] = {}
    async with asgi_client(app) as client, anyio.create_task_group() as group:

        async def fetch(n: int) -> None:
            timings[n] = (await client.get(f"/q/{n}")).headers["server-timing"]

        group.start_soon(fetch, 2)
        group.start_soon(fetch, 7)
    assert 'desc="2 queries"' in timings[2]
    assert 'desc="7 queries"' in timings[7]


def test_outside_a_request_statements_are_only_timed(engine: Engine, registry: CollectorRegistry) -> None:
    instrument_sqlalchemy(engine, instrumentation=instrumented(registry), spans=False, n_plus_one_threshold=2)
    with Session(engine) as session:
        for author in session.scalars(select(Author)).all():
            _ = author.posts
    assert count(registry, "SELECT", "posts") == AUTHORS


async def test_two_apps_in_one_process_keep_their_engines_apart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two instrumentations on two registries, an engine each: nothing one app's engine does reaches the other."""
    engine_a, engine_b = (filled_sqlite(str(tmp_path / name)) for name in ("a.db", "b.db"))
    # Every statement is slow (db_slow_query_threshold=0), so both slow-query lists fill up.
    app_a, app_b = (instrumented(db_slow_query_threshold=0.0, db_spans=False) for _ in range(2))
    hooks_a = instrument_sqlalchemy(engine_a, instrumentation=app_a)
    hooks_b = instrument_sqlalchemy(engine_b, instrumentation=app_b)
    try:
        with pytest.raises(ValueError, match="instrumented for another app"):
            instrument_sqlalchemy(engine_a, instrumentation=app_b)
        assert list(app_a.engines) == [hooks_a] and list(app_b.engines) == [hooks_b]
        assert hooks_a.pool.pool_name != hooks_b.pool.pool_name

        def lazy(request: Request) -> Response:  # app A: the N+1 loop, under a mount
            with Session(engine_a) as session:
                authors = session.scalars(select(Author)).all()
                titles = [post.title for author in authors for post in author.posts]
            return PlainTextResponse(str(len(titles)))

        def counts(request: Request) -> Response:  # app B: two statements of its own
            with engine_b.connect() as connection:
                authors = connection.execute(text("select count(*) from authors")).scalar()
                posts = connection.execute(text("select count(*) from posts")).scalar()
            return PlainTextResponse(f"{authors} {posts}")

        first = Starlette(
            routes=[Mount("/blog", routes=[Route("/lazy", lazy)])],
            middleware=[Middleware(TimingMiddleware, instrumentation=app_a)],
        )
        second = Starlette(
            routes=[Route("/counts", counts)], middleware=[Middleware(TimingMiddleware, instrumentation=app_b)]
        )
        responses: dict[str, str] = {}
        with caplog.at_level(logging.WARNING, logger="slipstream.sql"):
            async with asgi_client(first) as a, asgi_client(second) as b, anyio.create_task_group() as group:

                async def fetch(client: Any, path: str) -> None:
                    responses[path] = (await client.get(path)).headers["server-timing"]

                group.start_soon(fetch, a, "/blog/lazy")
                group.start_soon(fetch, b, "/counts")
        assert f'desc="{AUTHORS + 1} queries"' in responses["/blog/lazy"]
        assert 'desc="2 queries"' in responses["/counts"]

        # Statement durations: each registry has its own engine's statements, and only those.
        def durations(registry: CollectorRegistry) -> dict[str, float]:
            return {
                labels["db_collection_name"]: value
                for labels, value in samples(registry, DURATION + "_count")
                if labels["db_operation_name"] == "SELECT"
            }

        assert durations(app_a.registry) == {"authors": 1, "posts": AUTHORS}
        assert durations(app_b.registry) == {"authors": 1, "posts": 1}
        assert sum(value for _, value in samples(app_a.registry, DURATION + "_count")) == AUTHORS + 1
        assert sum(value for _, value in samples(app_b.registry, DURATION + "_count")) == 2

        # Pools: each registry's gauges and waits name its own engine's pool.
        for instrumentation, hooks in ((app_a, hooks_a), (app_b, hooks_b)):
            for name in (
                "db_client_connection_count",
                "db_client_connection_pending_requests",
                "db_client_connection_wait_time_seconds_count",
            ):
                found = samples(instrumentation.registry, name)
                assert found and {labels["pool_name"] for labels, _ in found} == {hooks.pool.pool_name}, name

        # Slow queries: each list has its own app's statements, with its own routes (the mount's prefix included).
        assert app_a.slow_queries is not None and app_b.slow_queries is not None
        assert app_a.slow_queries is not app_b.slow_queries
        rows_a, rows_b = app_a.slow_queries.snapshot(), app_b.slow_queries.snapshot()
        assert sum(row["count"] for row in rows_a) == AUTHORS + 1
        assert {row["route"] for row in rows_a} == {"/blog/lazy"}
        assert sorted(row["fingerprint"] for row in rows_b) == [
            "select count(*) from authors",
            "select count(*) from posts",
        ]
        assert all(row["count"] == 1 and row["route"] == "/counts" for row in rows_b)
        assert not any("count(*)" in row["fingerprint"] for row in rows_a)
        posts = {"db_system_name": "sqlite", "db_operation_name": "SELECT", "db_collection_name": "posts"}
        assert app_a.registry.get_sample_value("slipstream_db_slow_queries_total", posts) == AUTHORS
        assert app_b.registry.get_sample_value("slipstream_db_slow_queries_total", posts) == 1

        # N+1: found in app A's request, counted and logged there only.
        assert samples(app_a.registry, "slipstream_db_n_plus_one_total") == [({"http_route": "/blog/lazy"}, 1.0)]
        assert samples(app_b.registry, "slipstream_db_n_plus_one_total") == []
        (finding,) = [r for r in caplog.records if r.getMessage().startswith("N+1")]
        assert finding.http_route == "/blog/lazy"  # type: ignore[attr-defined]
        queries = "slipstream_db_queries_per_request_sum"
        assert samples(app_a.registry, queries) == [({"http_route": "/blog/lazy"}, AUTHORS + 1)]
        assert samples(app_b.registry, queries) == [({"http_route": "/counts"}, 2.0)]
    finally:
        for each in (engine_a, engine_b):
            uninstrument_sqlalchemy(each)
            each.dispose()


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
    instrumentation = instrumented(registry, report_enabled=True)
    hooks = instrument_sqlalchemy(
        engine, instrumentation=instrumentation, spans=False, slow_query_threshold=0.0, index_hints=True
    )
    with caplog.at_level(logging.WARNING, logger="slipstream.sql"), engine.connect() as connection:
        connection.execute(select(Author.id).where(Author.email == "author3@example.com")).all()
        connection.execute(insert(Post).values(title="x", author_id=1))  # writes are never planned
        assert hooks.index_advisor is not None and hooks.index_advisor.drain(10)
    (hint,) = instrumentation._index_hints()
    assert (hint["table"], hint["columns"]) == ("authors", ["email"])
    assert instrumentation.report is not None
    snapshot = instrumentation.report.snapshot()
    assert snapshot["index_hints"] == [hint]
    assert "index hint: authors(email)" in caplog.text
    # the advisor's EXPLAIN is not one of the app's statements: neither slow query nor report row
    slow_messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("slow query")]
    assert slow_messages and not any("EXPLAIN" in message for message in slow_messages)
    assert snapshot["slow_queries"] and not any("EXPLAIN" in row["fingerprint"] for row in snapshot["slow_queries"])


def test_the_hooks_leave_sqlalchemys_event_fast_path_alone(engine: Engine, registry: CollectorRegistry) -> None:
    """Any engine-level listener makes every statement take SQLAlchemy's slower event path; the hooks add none."""
    instrument_sqlalchemy(engine, instrumentation=instrumented(registry), spans=False)
    assert not engine._has_events
    engine.dispose(close=False)
    with engine.connect() as connection:
        connection.execute(text("select 1"))
    assert not engine._has_events
