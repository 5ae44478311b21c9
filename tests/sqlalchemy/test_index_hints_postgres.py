"""The index advisor on a real PostgreSQL, through psycopg (a worker thread) and asyncpg (a task on the loop)."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from slipstream.sqlalchemy.index_hints import IndexAdvisor
from tests.postgres_server import PostgresDatabase
from tests.sqlalchemy.index_hint_support import (
    SECRET,
    Plans,
    advise_every_statement,
    by_email,
    metadata,
    record_plans,
    users,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> Plans:
    return record_plans(monkeypatch)


def _postgres_setup(connection: Connection) -> None:
    metadata.create_all(connection)
    connection.exec_driver_sql(
        "INSERT INTO users (id, email, name) "
        "SELECT n, 'user' || n || '@example.com', 'name ' || mod(n, 50) FROM generate_series(1, 20000) AS n"
    )
    connection.exec_driver_sql("CREATE INDEX ix_users_name ON users (name)")
    connection.exec_driver_sql("ANALYZE users")


def test_postgres_seq_scan_with_a_filter_gives_a_hint(plans: Plans, postgres_database: PostgresDatabase) -> None:
    engine = sa.create_engine(postgres_database.url("psycopg"), pool_size=1, max_overflow=0)
    advisor = IndexAdvisor()
    try:
        with engine.begin() as connection:
            _postgres_setup(connection)
        advise_every_statement(engine, advisor, plans)
        with engine.connect() as connection:
            assert connection.execute(by_email()).one().id == 7
            connection.execute(sa.select(users.c.id).where(users.c.name == "name 3")).all()
        assert advisor.drain(10)
        with engine.connect() as connection:
            # SET LOCAL ended with the plan's transaction: the pooled connection kept its own setting.
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar_one() == "0"
    finally:
        advisor.close()
        engine.dispose()
    assert len(plans.statements) == 2
    assert all(statement.startswith("EXPLAIN SELECT") for statement in plans.statements)
    assert plans.through_sqlalchemy == []
    [hint] = advisor.hints
    assert (hint.table, hint.columns, hint.dialect) == ("users", ("email",), "postgresql")
    assert hint.plan.startswith("Seq Scan on users")
    assert SECRET not in hint.plan


async def test_asyncpg_seq_scan_with_a_filter_gives_a_hint(plans: Plans, postgres_database: PostgresDatabase) -> None:
    engine = create_async_engine(postgres_database.url("asyncpg"))
    advisor = IndexAdvisor()
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_postgres_setup)
        advise_every_statement(engine.sync_engine, advisor, plans)
        async with engine.connect() as connection:
            assert (await connection.execute(by_email())).one().id == 7
            await connection.execute(sa.select(users.c.id).where(users.c.name == "name 3"))
        assert await advisor.wait_idle(10)
    finally:
        advisor.close()
        await engine.dispose()
    assert len(plans.statements) == 2
    assert plans.threads == [threading.current_thread()] * 2
    assert plans.through_sqlalchemy == []
    assert [(hint.table, hint.columns, hint.dialect) for hint in advisor.hints] == [("users", ("email",), "postgresql")]


# A small analysed table is read whole even by its primary key: a hint for the key would be wrong.
USER_BY_ID = sa.text('SELECT * FROM "user" WHERE id = :id').bindparams(id=1)
USER_BY_NAME = sa.text('SELECT * FROM "user" WHERE name = :name').bindparams(name="bob")
USER_BY_BOTH = sa.text('SELECT * FROM "user" WHERE id = :id AND name = :name').bindparams(id=1, name="bob")


def _user_setup(connection: Connection) -> None:
    connection.exec_driver_sql('CREATE TABLE "user"(id int primary key, name text)')
    connection.exec_driver_sql("""INSERT INTO "user" VALUES (1, 'ann'), (2, 'bob'), (3, 'cy')""")
    connection.exec_driver_sql('ANALYZE "user"')


def _assert_only_name_is_hinted(plans: Plans, advisor: IndexAdvisor) -> None:
    assert len(plans.statements) == 3
    for index, filter_ in enumerate(("(id = 1)", "(name = 'bob'::text)", "((id = 1) AND (name = 'bob'::text))")):
        plan = plans.plan_text(index)
        assert plan.startswith('Seq Scan on "user"') and f"Filter: {filter_}" in plan
    # The key's query (the first) gave no hint; the other two the same one, without the key.
    assert [(hint.table, hint.columns, hint.dialect) for hint in advisor.hints] == [("user", ("name",), "postgresql")]
    assert plans.through_sqlalchemy == []


def test_postgres_primary_key_read_by_a_seq_scan_is_not_hinted(
    plans: Plans, postgres_database: PostgresDatabase
) -> None:
    engine = sa.create_engine(postgres_database.url("psycopg"))
    advisor = IndexAdvisor(max_per_minute=100)
    try:
        with engine.begin() as connection:
            _user_setup(connection)
        advise_every_statement(engine, advisor, plans)
        with engine.connect() as connection:
            connection.execute(USER_BY_ID).all()
            assert advisor.drain(10)
            assert advisor.hints == []
            connection.execute(USER_BY_NAME).all()
            connection.execute(USER_BY_BOTH).all()
        assert advisor.drain(10)
    finally:
        advisor.close()
        engine.dispose()
    _assert_only_name_is_hinted(plans, advisor)


async def test_asyncpg_primary_key_read_by_a_seq_scan_is_not_hinted(
    plans: Plans, postgres_database: PostgresDatabase
) -> None:
    engine = create_async_engine(postgres_database.url("asyncpg"))
    advisor = IndexAdvisor(max_per_minute=100)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_user_setup)
        advise_every_statement(engine.sync_engine, advisor, plans)
        async with engine.connect() as connection:
            await connection.execute(USER_BY_ID)
            assert await advisor.wait_idle(10)
            assert advisor.hints == []
            await connection.execute(USER_BY_NAME)
            await connection.execute(USER_BY_BOTH)
        assert await advisor.wait_idle(10)
    finally:
        advisor.close()
        await engine.dispose()
    _assert_only_name_is_hinted(plans, advisor)
