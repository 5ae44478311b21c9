"""The hooks on a real PostgreSQL, with psycopg (sync engine) and asyncpg (AsyncEngine)."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from slipstream import TimingMiddleware, instrument_sqlalchemy, uninstrument_sqlalchemy
from tests.postgres_server import Driver, PostgresDatabase
from tests.sqlalchemy.models import AUTHORS, Author, Base, rows
from tests.support import asgi_client, instrumented

pytestmark = pytest.mark.anyio
DURATION = "db_client_operation_duration_seconds_count"


def fill(database: PostgresDatabase) -> None:
    engine = create_engine(database.url("psycopg"))
    try:
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all(rows())
            session.commit()
    finally:
        engine.dispose()


def test_psycopg_statements_errors_and_pool(postgres_database: PostgresDatabase) -> None:
    fill(postgres_database)
    registry = CollectorRegistry()
    engine = create_engine(postgres_database.url("psycopg"), pool_size=3, max_overflow=2)
    hooks = instrument_sqlalchemy(engine, instrumentation=instrumented(registry), spans=False)
    pool_name = hooks.pool.pool_name
    try:
        with engine.connect() as connection:
            names = connection.execute(select(Author.name).where(Author.id.in_([1, 2, 3]))).scalars().all()
            assert len(names) == 3
            with pytest.raises(Exception, match="does not exist"):
                connection.execute(text("select * from missing_table"))
            labels = {"pool_name": pool_name}
            assert registry.get_sample_value("db_client_connection_count", {**labels, "state": "used"}) == 1
            assert registry.get_sample_value("db_client_connection_max", labels) == 5
        select_authors = {
            "db_system_name": "postgresql",
            "db_operation_name": "SELECT",
            "db_collection_name": "authors",
        }
        assert registry.get_sample_value(DURATION, select_authors) == 1
        errors = registry.get_sample_value(
            "slipstream_db_client_errors_total", {"db_system_name": "postgresql", "error_type": "UndefinedTable"}
        )
        assert errors == 1
        assert "password" not in pool_name and pool_name.startswith("postgresql+psycopg://postgres@")
    finally:
        uninstrument_sqlalchemy(engine)
        engine.dispose()


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_n_plus_one_on_an_async_session(
    postgres_database: PostgresDatabase, caplog: pytest.LogCaptureFixture, driver: Driver
) -> None:
    fill(postgres_database)
    registry = CollectorRegistry()
    # create_async_engine with postgresql+psycopg uses psycopg 3's async connection
    engine = create_async_engine(postgres_database.url(driver))
    # The engine and the app's timing share one instrumentation, so that the app's requests see its statements.
    instrumentation = instrumented(registry)
    hooks = instrument_sqlalchemy(engine, instrumentation=instrumentation, spans=False)

    async def authors(request: Request) -> Response:
        async with AsyncSession(engine) as session:
            found = (await session.scalars(select(Author).order_by(Author.id))).all()
            titles = [post.title for author in found for post in await author.awaitable_attrs.posts]
        return PlainTextResponse(str(len(titles)))

    app = Starlette(
        routes=[Route("/authors", authors)], middleware=[Middleware(TimingMiddleware, instrumentation=instrumentation)]
    )
    try:
        # The dialect's first connection asks the server a few questions; let that happen before the request.
        async with engine.connect() as connection:
            await connection.execute(text("select 1"))
        with caplog.at_level(logging.WARNING, logger="slipstream.sql"):
            async with asgi_client(app) as client:
                response = await client.get("/authors")
        assert f'desc="{AUTHORS + 1} queries"' in response.headers["server-timing"]
        (finding,) = [r for r in caplog.records if r.getMessage().startswith("N+1")]
        assert finding.fingerprint.startswith("SELECT posts.id") and "= posts.author_id" in finding.fingerprint  # type: ignore[attr-defined]
        assert finding.caller.startswith(__file__)  # type: ignore[attr-defined]
        select_posts = {"db_system_name": "postgresql", "db_operation_name": "SELECT", "db_collection_name": "posts"}
        assert registry.get_sample_value(DURATION, select_posts) == AUTHORS
        # the async pool (AsyncAdaptedQueuePool) is counted and timed like QueuePool
        pool = {"pool_name": hooks.pool.pool_name}
        assert registry.get_sample_value("db_client_connection_count", {**pool, "state": "idle"}) == 1
        assert registry.get_sample_value("db_client_connection_count", {**pool, "state": "used"}) == 0
        assert registry.get_sample_value("db_client_connection_max", pool) == 15
        assert (registry.get_sample_value("db_client_connection_wait_time_seconds_count", pool) or 0) >= 2
    finally:
        uninstrument_sqlalchemy(engine)
        await engine.dispose()
