"""Plan readers: SQLite's EXPLAIN QUERY PLAN rows and PostgreSQL's text plans."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa

from slipstream.sqlalchemy.plans import full_scans, postgres_filtered_scans, sqlite_full_scans
from tests.postgres_server import PostgresDatabase


@pytest.mark.parametrize(
    ("detail", "scans"),
    [
        ("SCAN users", ["users"]),
        ("SCAN u", ["u"]),
        ("SCAN TABLE users", ["users"]),
        ("SCAN TABLE users AS u", ["u"]),
        ('SCAN "odd ""name"""', ['odd "name"']),
        ("SCAN users USING INDEX ix_users_email", []),
        ("SCAN users USING COVERING INDEX ix_users_email", []),
        ("SCAN users USING INTEGER PRIMARY KEY", []),
        ("SCAN t VIRTUAL TABLE INDEX 0:", []),
        ("SEARCH users USING INDEX ix_users_email (email=?)", []),
        ("SEARCH users USING INTEGER PRIMARY KEY (rowid=?)", []),
        ("SCAN CONSTANT ROW", []),
        ("SCAN (subquery-1)", []),
        ("USE TEMP B-TREE FOR ORDER BY", []),
        ("LIST SUBQUERY 1", []),
    ],
)
def test_sqlite_full_scans(detail: str, scans: list[str]) -> None:
    assert sqlite_full_scans([(2, 0, 0, detail)]) == scans


def test_sqlite_full_scans_reads_every_row() -> None:
    rows = [(3, 0, 0, "SCAN o"), (5, 0, 0, "SEARCH u USING INTEGER PRIMARY KEY (rowid=?)"), (9, 7, 0, "SCAN items")]
    assert sqlite_full_scans(rows) == ["o", "items"]


PLAN = """\
Hash Join  (cost=1.00..2.00 rows=1 width=8)
  Hash Cond: (o.user_id = u.id)
  ->  Seq Scan on orders o  (cost=0.00..1.00 rows=1 width=8)
        Filter: (total > '100'::numeric)
  ->  Hash  (cost=1.00..1.00 rows=1 width=8)
        ->  Seq Scan on users u  (cost=0.00..1.00 rows=1 width=8)
              Filter: (((u.email)::text ~~ 'a%'::text) AND (created_at > now()) AND (lower(name) = 'x'::text))
  ->  Seq Scan on items  (cost=0.00..1.00 rows=1 width=8)
  ->  Index Scan using ix_tags on tags  (cost=0.00..1.00 rows=1 width=8)
        Filter: (label = 'x'::text)
"""


@pytest.mark.parametrize(
    ("lines", "scans"),
    [
        (PLAN.splitlines(), [("orders", ("total",)), ("users", ("email", "created_at"))]),
        (["Seq Scan on users", "  Filter: ((email)::text = 'a'::text)"], [("users", ("email",))]),
        (["Parallel Seq Scan on users", "  Filter: (name IS NULL)"], [("users", ("name",))]),
        (['Seq Scan on "Users" "U"', "  Filter: (\"Email\" = 'a'::text)"], [("Users", ("Email",))]),
        (["Seq Scan on users", "  Filter: ((created)::timestamp with time zone > now())"], [("users", ("created",))]),
        (
            ["Seq Scan on users", "  Filter: ((id = ANY ('{1,2}'::integer[])) OR (email !~~ 'a%'::text))"],
            [("users", ("id", "email"))],
        ),
        (["Seq Scan on users", "  Filter: (NOT flag)"], [("users", ())]),
        (["Seq Scan on users", "  Filter: ((id > 1) AND (id < 9))"], [("users", ("id",))]),
        (["Seq Scan on users  (cost=0.00..35.50 rows=2550 width=4)"], []),
        (["Seq Scan on users", "  Output: id", "  Filter: (id > 3)"], [("users", ("id",))]),
        (["Limit", "  ->  Seq Scan on users", "Filter: (id > 3)"], []),
    ],
)
def test_postgres_filtered_scans(lines: list[str], scans: list[tuple[str, tuple[str, ...]]]) -> None:
    assert postgres_filtered_scans(lines) == scans


def test_a_failed_postgres_plan_is_rolled_back(postgres_database: PostgresDatabase) -> None:
    engine = sa.create_engine(postgres_database.url("psycopg"))
    try:
        with engine.connect() as connection:
            with pytest.raises(psycopg.errors.UndefinedTable):
                full_scans(connection, "SELECT * FROM missing WHERE id = 1", (), 5.0)
            # Not left in the aborted transaction, nor with the plan's statement_timeout.
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar_one() == "0"
    finally:
        engine.dispose()
