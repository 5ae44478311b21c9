"""The index advisor on SQLite (sync): when it plans, what it hints, and how it stays off the statement's path."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from slipstream.sqlalchemy import index_hints
from slipstream.sqlalchemy.fingerprint import fingerprint
from slipstream.sqlalchemy.index_hints import IndexAdvisor, IndexHint
from tests.sqlalchemy.index_hint_support import (
    SECRET,
    Plans,
    advise_every_statement,
    by_email,
    make_sqlite_database,
    metadata,
    record_plans,
    users,
)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return make_sqlite_database(tmp_path / "app.db")


@pytest.fixture
def engine(sqlite_path: Path) -> Iterator[Engine]:
    engine = sa.create_engine(f"sqlite:///{sqlite_path}")
    yield engine
    engine.dispose()


@pytest.fixture
def found() -> list[IndexHint]:
    return []


@pytest.fixture
def advisor(found: list[IndexHint]) -> Iterator[IndexAdvisor]:
    advisor = IndexAdvisor(max_per_minute=100, on_hint=found.append)
    yield advisor
    advisor.close()


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> Plans:
    return record_plans(monkeypatch)


@pytest.mark.parametrize(
    "arguments", [{"max_per_minute": -1}, {"max_hints": 0}, {"max_fingerprints": 0}, {"timeout": 0}]
)
def test_arguments_are_checked(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="expected"):
        IndexAdvisor(**arguments)


# SQLite, sync ---------------------------------------------------------------------------------------------------


def test_a_full_scan_on_a_filtered_column_gives_a_hint(
    plans: Plans, engine: Engine, advisor: IndexAdvisor, found: list[IndexHint], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="slipstream.sql")
    advise_every_statement(engine, advisor, plans)
    with engine.connect() as connection:
        assert connection.execute(by_email()).one().id == 7
        statement = str(by_email().compile(engine))
    assert advisor.drain(10)
    hint = IndexHint("users", ("email",), fingerprint(statement).text, "SCAN users", "sqlite")
    assert advisor.hints == found == [hint]
    assert plans.statements == [f"EXPLAIN QUERY PLAN {statement}"]
    assert [thread.name for thread in plans.threads] == ["slipstream-index-hints"]
    # The catalog was read (users has no index but its INTEGER PRIMARY KEY), and SQLAlchemy ran none of it.
    assert plans.other_statements == ['PRAGMA index_list("users")', 'PRAGMA table_info("users")']
    assert plans.through_sqlalchemy == []
    [record] = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert record.name == "slipstream.sql"
    assert record.getMessage() == f"index hint: users(email) would avoid a full scan for: {hint.fingerprint}"
    extra = vars(record)
    assert (extra["table"], extra["columns"], extra["fingerprint"]) == ("users", ["email"], hint.fingerprint)
    assert SECRET not in caplog.text


def test_an_indexed_column_gives_no_hint(plans: Plans, engine: Engine, advisor: IndexAdvisor) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE INDEX ix_users_email ON users(email)")
    advise_every_statement(engine, advisor, plans)
    with engine.connect() as connection:
        connection.execute(by_email()).one()
        connection.execute(sa.select(users.c.id).where(users.c.id == 7)).one()
    assert advisor.drain(10)
    assert len(plans.statements) == 2
    assert advisor.hints == []


@pytest.mark.parametrize(
    ("where", "hinted"),
    [
        (users.c.id != 7, []),  # the INTEGER PRIMARY KEY, which is the rowid
        (users.c.email.like("user7%"), []),  # LIKE does not use the index on email, but another index would not either
        (sa.or_(users.c.id == 7, users.c.name == "name 3"), [("name",)]),
        (sa.or_(users.c.email.like("user7%"), users.c.name == "name 3"), [("name",)]),
    ],
)
def test_columns_that_lead_an_index_are_not_hinted(
    plans: Plans, engine: Engine, advisor: IndexAdvisor, where: sa.ColumnElement[bool], hinted: list[tuple[str, ...]]
) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE INDEX ix_users_email ON users (email)")
    advise_every_statement(engine, advisor, plans)
    with engine.connect() as connection:
        connection.execute(sa.select(users.c.id, users.c.name).where(where)).all()
    assert advisor.drain(10)
    [rows] = plans.rows
    assert [row[-1] for row in rows] == ["SCAN users"]  # a full scan all the same
    assert [hint.columns for hint in advisor.hints] == hinted
    assert plans.through_sqlalchemy == []


def test_a_primary_key_that_is_not_the_rowid_is_not_hinted(plans: Plans, engine: Engine, advisor: IndexAdvisor) -> None:
    with engine.begin() as connection:
        # INT, not INTEGER: SQLite backs this primary key with an index of its own (sqlite_autoindex_user_1).
        connection.exec_driver_sql('CREATE TABLE "user" (id int PRIMARY KEY, name text)')
        connection.exec_driver_sql("""INSERT INTO "user" VALUES (1, 'ann'), (2, 'bob'), (3, 'cy')""")
    advise_every_statement(engine, advisor, plans)
    with engine.connect() as connection:
        connection.exec_driver_sql('SELECT * FROM "user" WHERE id != ?', (1,)).all()
        connection.exec_driver_sql('SELECT * FROM "user" WHERE name = ?', ("bob",)).all()
    assert advisor.drain(10)
    assert [[row[-1] for row in rows] for rows in plans.rows] == [["SCAN user"], ["SCAN user"]]
    assert [(hint.table, hint.columns) for hint in advisor.hints] == [("user", ("name",))]


def test_an_aliased_table_is_hinted_by_its_name(plans: Plans, engine: Engine, advisor: IndexAdvisor) -> None:
    advise_every_statement(engine, advisor, plans)
    u = users.alias("u")
    with engine.connect() as connection:
        connection.execute(sa.select(u.c.id).where(u.c.name == "name 3", u.c.email.like("user%"))).all()
    assert advisor.drain(10)
    assert len(plans.statements) == 1
    assert [(hint.table, hint.columns, hint.plan) for hint in advisor.hints] == [("users", ("name", "email"), "SCAN u")]


def test_a_full_scan_without_a_filter_is_no_hint(plans: Plans, engine: Engine, advisor: IndexAdvisor) -> None:
    advise_every_statement(engine, advisor, plans)
    with engine.connect() as connection:
        connection.execute(sa.select(users.c.id).order_by(users.c.name).limit(3)).all()
    assert advisor.drain(10)
    assert len(plans.statements) == 1
    assert advisor.hints == []


def test_writes_are_never_planned(plans: Plans, engine: Engine, advisor: IndexAdvisor) -> None:
    advise_every_statement(engine, advisor, plans)
    with engine.begin() as connection:
        connection.execute(users.update().where(users.c.email == SECRET).values(name="x"))
        connection.execute(users.insert().values(id=5000, email="new@example.com", name="new"))
        connection.execute(users.delete().where(users.c.email == "new@example.com"))
    assert advisor.drain(10)
    assert plans.statements == []
    assert advisor.hints == []


def test_a_fingerprint_is_planned_once(plans: Plans, engine: Engine, advisor: IndexAdvisor) -> None:
    advise_every_statement(engine, advisor, plans)
    with engine.connect() as connection:
        for n in range(1, 6):
            connection.execute(by_email(f"user{n}@example.com")).all()
        connection.execute(sa.select(users.c.id).where(users.c.email.like("user1%"))).all()
    assert advisor.drain(10)
    assert len(plans.statements) == 2
    # Two fingerprints, one table and column: one hint.
    assert [(hint.table, hint.columns) for hint in advisor.hints] == [("users", ("email",))]


def test_plans_are_rate_limited_per_minute(plans: Plans, engine: Engine, found: list[IndexHint]) -> None:
    now = [1000.0]
    advisor = IndexAdvisor(max_per_minute=2, clock=lambda: now[0])
    advise_every_statement(engine, advisor, plans)
    queries = [sa.select(users.c.id).where(column == "x") for column in (users.c.email, users.c.name, users.c.id)]
    try:
        with engine.connect() as connection:
            for query in queries:
                connection.execute(query).all()
            assert advisor.drain(10)
            assert len(plans.statements) == 2
            now[0] += 59
            connection.execute(queries[2]).all()
            assert advisor.drain(10)
            assert len(plans.statements) == 2
            # A minute after the first two, the one left out is planned: being limited did not mark it as seen.
            now[0] += 1
            for query in queries:
                connection.execute(query).all()
            assert advisor.drain(10)
            assert len(plans.statements) == 3
    finally:
        advisor.close()
    assert [hint.columns for hint in advisor.hints] == [("email",), ("name",)]


def test_no_plans_with_a_zero_rate(plans: Plans, engine: Engine) -> None:
    advisor = IndexAdvisor(max_per_minute=0)
    advise_every_statement(engine, advisor, plans)
    with engine.connect() as connection:
        connection.execute(by_email()).all()
    assert advisor.drain(10)
    advisor.close()
    assert plans.statements == []


def test_remembered_fingerprints_and_hints_are_bounded(plans: Plans, engine: Engine) -> None:
    advisor = IndexAdvisor(max_per_minute=100, max_hints=1, max_fingerprints=1)
    advise_every_statement(engine, advisor, plans)
    try:
        with engine.connect() as connection:
            for column in (users.c.email, users.c.name, users.c.email):
                connection.execute(sa.select(users.c.id).where(column == "x")).all()
                assert advisor.drain(10)
    finally:
        advisor.close()
    # The first fingerprint was forgotten when the second came, so it was planned (and hinted) again.
    assert len(plans.statements) == 3
    assert [hint.columns for hint in advisor.hints] == [("email",)]


def test_the_statement_does_not_wait_for_its_plan(plans: Plans, sqlite_path: Path, advisor: IndexAdvisor) -> None:
    # One pooled connection: the plan needs it, and the statement's connection holds it until the block ends.
    engine = sa.create_engine(f"sqlite:///{sqlite_path}", pool_size=1, max_overflow=0, pool_timeout=10)
    advise_every_statement(engine, advisor, plans)
    try:
        with engine.connect() as connection:
            started = time.monotonic()
            connection.execute(by_email()).all()
            assert time.monotonic() - started < 1.0
            assert not advisor.drain(0.2)
            assert plans.statements == []
        assert advisor.drain(10)
    finally:
        engine.dispose()
    assert len(plans.statements) == 1
    assert [hint.columns for hint in advisor.hints] == [("email",)]


def test_failing_plans_are_logged_without_parameters(
    plans: Plans, engine: Engine, advisor: IndexAdvisor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="slipstream.sql")
    missing = "SELECT id FROM gone WHERE email = ?"
    with engine.connect() as connection:
        advisor.consider(connection, fingerprint(missing), missing, (SECRET,))
        # Too few parameters for the statement.
        wrong = str(by_email().compile(engine))
        advisor.consider(connection, fingerprint(wrong), wrong, [])
    assert advisor.drain(10)
    assert advisor.hints == []
    failures = [record.getMessage() for record in caplog.records if "failed" in record.getMessage()]
    assert failures == [
        f"index hint: planning {fingerprint(missing).text} failed: OperationalError",
        f"index hint: planning {fingerprint(wrong).text} failed: ProgrammingError",
    ]
    assert SECRET not in caplog.text
    # The worker survived: the next plan still runs.
    advise_every_statement(engine, advisor, plans)
    with engine.connect() as connection:
        connection.execute(sa.select(users.c.id).where(users.c.name == "x")).all()
    assert advisor.drain(10)
    assert [hint.columns for hint in advisor.hints] == [("name",)]


def test_a_dropped_table_fails_quietly(engine: Engine, advisor: IndexAdvisor) -> None:
    statement = str(by_email().compile(engine))
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE users")
    with engine.connect() as connection:
        advisor.consider(connection, fingerprint(statement), statement, (SECRET,))
    assert advisor.drain(10)
    assert advisor.hints == []


def test_executemany_parameters_plan_with_the_first_set(engine: Engine, advisor: IndexAdvisor) -> None:
    statement = str(by_email().compile(engine))
    with engine.connect() as connection:
        advisor.consider(connection, fingerprint(statement), statement, [(SECRET,), ("other",)])
    assert advisor.drain(10)
    assert [hint.columns for hint in advisor.hints] == [("email",)]


def test_a_failing_on_hint_does_not_stop_the_advisor(plans: Plans, engine: Engine) -> None:
    def on_hint(hint: IndexHint) -> None:
        raise RuntimeError("callback failed")

    advisor = IndexAdvisor(on_hint=on_hint)
    advise_every_statement(engine, advisor, plans)
    with engine.connect() as connection:
        connection.execute(by_email()).all()
        connection.execute(sa.select(users.c.id).where(users.c.name == "x")).all()
    assert advisor.drain(10)
    advisor.close()
    assert [hint.columns for hint in advisor.hints] == [("email",), ("name",)]


def test_in_memory_and_static_pool_databases_are_not_planned(plans: Plans, advisor: IndexAdvisor) -> None:
    for engine in (sa.create_engine("sqlite://"), sa.create_engine("sqlite://", poolclass=StaticPool)):
        advise_every_statement(engine, advisor, plans)
        try:
            with engine.begin() as connection:
                metadata.create_all(connection)
                connection.execute(by_email()).all()
            assert advisor.drain(10)
            assert plans.statements == []
        finally:
            engine.dispose()


def test_close_stops_planning(plans: Plans, engine: Engine) -> None:
    advisor = IndexAdvisor()
    advise_every_statement(engine, advisor, plans)
    with engine.connect() as connection:
        connection.execute(by_email()).all()
        assert advisor.drain(10)
        advisor.close()
        advisor.close()
        connection.execute(sa.select(users.c.id).where(users.c.name == "x")).all()
    assert advisor.drain(10)
    assert len(plans.statements) == 1
    assert not plans.threads[0].is_alive()


def test_plans_queued_before_close_are_dropped(plans: Plans, sqlite_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{sqlite_path}", pool_size=1, max_overflow=0, pool_timeout=10)
    advisor = IndexAdvisor()
    advise_every_statement(engine, advisor, plans)
    try:
        with engine.connect() as connection:
            connection.execute(by_email()).all()  # its plan waits for this connection
            connection.execute(sa.select(users.c.id).where(users.c.name == "x")).all()  # queued behind it
            closer = threading.Thread(target=advisor.close)
            closer.start()
        closer.join(10)
        assert not closer.is_alive()
        assert advisor.drain(10)
    finally:
        engine.dispose()
    # The name query's plan was still queued when the advisor closed; the email one may have started already.
    assert len(plans.statements) <= 1
    assert not any("WHERE users.name" in statement for statement in plans.statements)


def test_an_idle_worker_thread_exits_and_a_new_one_starts(
    plans: Plans, engine: Engine, advisor: IndexAdvisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_hints, "_WORKER_IDLE", 0.05)
    advise_every_statement(engine, advisor, plans)

    with engine.connect() as connection:
        connection.execute(by_email()).all()
        assert advisor.drain(10)
        plans.threads[0].join(10)
        assert not plans.threads[0].is_alive()
        connection.execute(sa.select(users.c.id).where(users.c.name == "x")).all()
        assert advisor.drain(10)
    assert len(plans.statements) == 2
    assert plans.threads[1] is not plans.threads[0]
    assert [hint.columns for hint in advisor.hints] == [("email",), ("name",)]


def test_scheduling_failures_are_swallowed(engine: Engine, advisor: IndexAdvisor) -> None:
    class Broken:
        @property
        def engine(self) -> Engine:
            raise RuntimeError("no engine")

    statement = "SELECT id FROM users WHERE email = ?"
    advisor.consider(Broken(), fingerprint(statement), statement, ())  # type: ignore[arg-type]
    assert advisor.drain(1)
    assert advisor.hints == []
