"""The index advisor on aiosqlite: plans run as tasks on the running loop, through the adapted DBAPI cursor."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from slipstream.sqlalchemy.fingerprint import fingerprint
from slipstream.sqlalchemy.index_hints import IndexAdvisor
from tests.sqlalchemy.index_hint_support import (
    SECRET,
    Plans,
    advise_every_statement,
    by_email,
    make_sqlite_database,
    record_plans,
    users,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return make_sqlite_database(tmp_path / "app.db")


@pytest.fixture
def advisor() -> Iterator[IndexAdvisor]:
    advisor = IndexAdvisor(max_per_minute=100)
    yield advisor
    advisor.close()


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> Plans:
    return record_plans(monkeypatch)


@pytest.fixture
async def async_engine(sqlite_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{sqlite_path}")
    yield engine
    await engine.dispose()


async def test_async_sqlite_plans_on_the_loop(plans: Plans, async_engine: AsyncEngine, advisor: IndexAdvisor) -> None:
    advise_every_statement(async_engine.sync_engine, advisor, plans)
    async with async_engine.connect() as connection:
        assert (await connection.execute(by_email())).one().id == 7
        await connection.execute(sa.update(users).where(users.c.name == "x").values(name="y"))
    assert await advisor.wait_idle(10)
    assert len(plans.statements) == 1
    assert plans.threads == [threading.current_thread()]
    assert plans.through_sqlalchemy == []
    [hint] = advisor.hints
    assert (hint.table, hint.columns, hint.plan, hint.dialect) == ("users", ("email",), "SCAN users", "sqlite")
    # The app's AsyncEngine is still the proxy SQLAlchemy finds for its sync engine.
    assert AsyncEngine._retrieve_proxy_for_target(async_engine.sync_engine) is async_engine


async def test_async_sqlite_reads_the_catalog(plans: Plans, async_engine: AsyncEngine, advisor: IndexAdvisor) -> None:
    async with async_engine.begin() as connection:
        await connection.exec_driver_sql("CREATE INDEX ix_users_email ON users (email)")
    advise_every_statement(async_engine.sync_engine, advisor, plans)
    async with async_engine.connect() as connection:
        await connection.execute(sa.select(users.c.id, users.c.name).where(users.c.email.like("user7%")))
        await connection.execute(sa.select(users.c.id, users.c.name).where(users.c.id != 7))
        await connection.execute(sa.select(users.c.id, users.c.name).where(users.c.id != 7, users.c.name == "name 3"))
    assert await advisor.wait_idle(10)
    # Three full scans; only name leads no index.
    assert [[row[-1] for row in rows] for rows in plans.rows] == [["SCAN users"]] * 3
    assert [(hint.table, hint.columns) for hint in advisor.hints] == [("users", ("name",))]
    assert plans.through_sqlalchemy == []


async def test_async_plan_failures_and_timeouts_are_swallowed(
    async_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="slipstream.sql")
    advisor = IndexAdvisor(timeout=0.000001)
    missing = "SELECT id FROM gone WHERE email = ?"
    async with async_engine.connect() as connection:
        await connection.run_sync(lambda sync: advisor.consider(sync, fingerprint(missing), missing, (SECRET,)))
    assert await advisor.wait_idle(10)
    advisor.close()
    assert advisor.hints == []
    assert "failed: TimeoutError" in caplog.text
    assert SECRET not in caplog.text


async def test_close_cancels_pending_plan_tasks(plans: Plans, sqlite_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{sqlite_path}", pool_size=1, max_overflow=0)
    advisor = IndexAdvisor()
    advise_every_statement(engine.sync_engine, advisor, plans)
    try:
        async with engine.connect() as connection:
            await connection.execute(by_email())  # its plan waits for this connection
            advisor.close()
        assert await advisor.wait_idle(10)
    finally:
        await engine.dispose()
    assert plans.statements == []
    assert advisor.hints == []


async def test_wait_idle_waits_for_the_worker_thread(plans: Plans, sqlite_path: Path, advisor: IndexAdvisor) -> None:
    engine = sa.create_engine(f"sqlite:///{sqlite_path}", pool_size=1, max_overflow=0, pool_timeout=10)
    advise_every_statement(engine, advisor, plans)
    try:
        connection = engine.connect()
        connection.execute(by_email()).all()  # its plan waits in the worker until the connection is back
        asyncio.get_running_loop().call_later(0.1, connection.close)
        assert await advisor.wait_idle(10)
    finally:
        engine.dispose()
    assert len(plans.statements) == 1
    assert [hint.columns for hint in advisor.hints] == [("email",)]


async def test_wait_idle_gives_up_at_the_timeout(plans: Plans, sqlite_path: Path, advisor: IndexAdvisor) -> None:
    engine = sa.create_engine(f"sqlite:///{sqlite_path}", pool_size=1, max_overflow=0, pool_timeout=10)
    advise_every_statement(engine, advisor, plans)
    try:
        with engine.connect() as connection:
            connection.execute(by_email()).all()
            assert not await advisor.wait_idle(0.05)
        assert await advisor.wait_idle(10)
    finally:
        engine.dispose()
