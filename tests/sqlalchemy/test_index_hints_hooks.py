"""The advisor's plans and catalog reads are not the app's statements: the instrumentation never times them.

Each test instruments an engine that has already run its setup (PostgreSQL's dialect asks the server a few
questions on first connect), runs app statements that are all slow (threshold 0) so each is planned, waits for
the plans, and counts what ``db_client_operation_duration_seconds`` observed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from slipstream.sqlalchemy.hooks import EngineHooks, instrument_sqlalchemy, uninstrument_sqlalchemy
from slipstream.sqlalchemy.index_hints import IndexAdvisor
from tests.postgres_server import PostgresDatabase
from tests.sqlalchemy.index_hint_support import by_email, make_sqlite_database, metadata, timed_operations, users
from tests.support import instrumented

pytestmark = pytest.mark.anyio

BY_NAME = sa.select(users.c.id, users.c.email).where(users.c.name == "name 3")


def instrument(engine: sa.Engine | AsyncEngine, registry: CollectorRegistry) -> IndexAdvisor:
    hooks: EngineHooks = instrument_sqlalchemy(
        engine, instrumentation=instrumented(registry), slow_query_threshold=0, index_hints=True, spans=False
    )
    assert isinstance(hooks.index_advisor, IndexAdvisor)
    return hooks.index_advisor


def assert_only_the_apps_statements_were_timed(registry: CollectorRegistry, advisor: IndexAdvisor) -> None:
    # The advisor did plan both statements (a hint each), yet no EXPLAIN, SET or catalog read was timed.
    assert sorted(hint.columns for hint in advisor.hints) == [("email",), ("name",)]
    assert timed_operations(registry) == {"SELECT": 2.0}


def postgres_setup(connection: Connection) -> None:
    metadata.create_all(connection)
    connection.exec_driver_sql(
        "INSERT INTO users (id, email, name) "
        "SELECT n, 'user' || n || '@example.com', 'name ' || mod(n, 50) FROM generate_series(1, 5000) AS n"
    )
    connection.exec_driver_sql("ANALYZE users")


def test_sqlite_plans_are_not_timed(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{make_sqlite_database(tmp_path / 'app.db')}")
    registry = CollectorRegistry()
    advisor = instrument(engine, registry)
    try:
        with engine.connect() as connection:
            connection.execute(by_email()).all()
            connection.execute(BY_NAME).all()
        assert advisor.drain(10)
    finally:
        uninstrument_sqlalchemy(engine)
        engine.dispose()
    assert_only_the_apps_statements_were_timed(registry, advisor)


async def test_aiosqlite_plans_are_not_timed(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{make_sqlite_database(tmp_path / 'app.db')}")
    registry = CollectorRegistry()
    advisor = instrument(engine, registry)
    try:
        async with engine.connect() as connection:
            await connection.execute(by_email())
            await connection.execute(BY_NAME)
        assert await advisor.wait_idle(10)
    finally:
        uninstrument_sqlalchemy(engine)
        await engine.dispose()
    assert_only_the_apps_statements_were_timed(registry, advisor)


def test_psycopg_plans_are_not_timed(postgres_database: PostgresDatabase) -> None:
    engine = sa.create_engine(postgres_database.url("psycopg"))
    registry = CollectorRegistry()
    try:
        with engine.begin() as connection:
            postgres_setup(connection)
        advisor = instrument(engine, registry)
        with engine.connect() as connection:
            connection.execute(by_email()).all()
            connection.execute(BY_NAME).all()
        assert advisor.drain(10)
    finally:
        uninstrument_sqlalchemy(engine)
        engine.dispose()
    assert_only_the_apps_statements_were_timed(registry, advisor)


async def test_asyncpg_plans_are_not_timed(postgres_database: PostgresDatabase) -> None:
    engine = create_async_engine(postgres_database.url("asyncpg"))
    registry = CollectorRegistry()
    try:
        async with engine.begin() as connection:
            await connection.run_sync(postgres_setup)
        advisor = instrument(engine, registry)
        async with engine.connect() as connection:
            await connection.execute(by_email())
            await connection.execute(BY_NAME)
        assert await advisor.wait_idle(10)
    finally:
        uninstrument_sqlalchemy(engine)
        await engine.dispose()
    assert_only_the_apps_statements_were_timed(registry, advisor)
