"""What the index advisor's tests share: the users table, a recorder of the advisor's plans, and its wiring."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from slipstream.sqlalchemy import plans as plans_module
from slipstream.sqlalchemy.fingerprint import fingerprint

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPICursor

    from slipstream.sqlalchemy.index_hints import IndexAdvisor

metadata = sa.MetaData()
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.Text),
    sa.Column("name", sa.Text),
)
ROWS = [{"id": n, "email": f"user{n}@example.com", "name": f"name {n % 50}"} for n in range(1, 2001)]
SECRET = "user7@example.com"  # a parameter value: never in a log line
# What the advisor's own statements start with; none of them may reach SQLAlchemy's execute (and the hooks).
ADVISOR_STATEMENTS = ("EXPLAIN", "SET", "PRAGMA", "SELECT a.attname FROM pg_catalog")


@dataclass
class Plans:
    """What the advisor ran on DBAPI cursors: plan commands (with their thread and rows), and its other statements.

    ``through_sqlalchemy`` collects advisor statements that went through SQLAlchemy's execute instead: the hooks
    would have counted those as the app's.
    """

    statements: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    other_statements: list[str] = field(default_factory=list)  # SET LOCAL, catalog reads
    through_sqlalchemy: list[str] = field(default_factory=list)

    def plan_text(self, index: int) -> str:
        """One PostgreSQL plan's lines as EXPLAIN prints them."""
        return "\n".join(str(row[0]) for row in self.rows[index])


def record_plans(monkeypatch: pytest.MonkeyPatch) -> Plans:
    """Records every statement the advisor runs on a DBAPI cursor, before it runs, and the rows it gave."""
    plans = Plans()
    fetch_rows = plans_module.fetch_rows

    def recording(cursor: DBAPICursor, sql: str, parameters: Any = None) -> list[Any]:
        if sql.startswith("EXPLAIN"):
            plans.statements.append(sql)
            plans.threads.append(threading.current_thread())
            rows = fetch_rows(cursor, sql, parameters)
            plans.rows.append(rows)
            return rows
        plans.other_statements.append(sql)
        return fetch_rows(cursor, sql, parameters)

    monkeypatch.setattr(plans_module, "fetch_rows", recording)
    return plans


def advise_every_statement(engine: Engine, advisor: IndexAdvisor, plans: Plans) -> None:
    """Hands every statement to the advisor after it ran, as the slow-query path does."""

    def before(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.startswith(ADVISOR_STATEMENTS):
            plans.through_sqlalchemy.append(statement)

    def after(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        advisor.consider(conn, fingerprint(statement), statement, parameters)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)


def by_email(value: str = SECRET) -> sa.Select[Any]:
    return sa.select(users.c.id, users.c.name).where(users.c.email == value)


def make_sqlite_database(path: Path) -> Path:
    """A SQLite file with the users table filled, and no index but its INTEGER PRIMARY KEY."""
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            metadata.create_all(connection)
            connection.execute(users.insert(), ROWS)
    finally:
        engine.dispose()
    return path


def timed_operations(registry: CollectorRegistry) -> dict[str, float]:
    """Observations of ``db_client_operation_duration_seconds`` in ``registry``, by operation name."""
    counts: dict[str, float] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == "db_client_operation_duration_seconds_count":
                operation = sample.labels["db_operation_name"]
                counts[operation] = counts.get(operation, 0.0) + sample.value
    return counts
