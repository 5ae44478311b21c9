"""Plan readers (SQLite's EXPLAIN QUERY PLAN rows, PostgreSQL's text plans) and the catalog's leading index columns."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine.interfaces import DBAPICursor

from slipstream.sqlalchemy.plans import (
    full_scans,
    postgres_filtered_scans,
    postgres_leading_columns,
    sqlite_full_scans,
    sqlite_leading_columns,
)
from slipstream.sqlalchemy.where_clause import StatementTable
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


# The catalog -----------------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_cursor() -> Iterator[DBAPICursor]:
    engine = sa.create_engine("sqlite://")
    connection = engine.raw_connection()
    try:
        yield connection.cursor()
    finally:
        connection.close()
        engine.dispose()


def run(cursor: DBAPICursor, script: str) -> None:
    for statement in script.split(";"):
        cursor.execute(statement)


@pytest.mark.parametrize(
    ("schema", "table", "leading"),
    [
        # The rowid alias, a composite index's first column only, and no expression index.
        (
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a, b, c); CREATE INDEX ix_ab ON t (a, b);"
            "CREATE INDEX ix_c ON t (lower(c))",
            "t",
            {"id", "a"},
        ),
        ("CREATE TABLE t (id INT PRIMARY KEY, name TEXT)", "t", {"id"}),  # INT is no rowid alias: an autoindex
        ("CREATE TABLE t (x INTEGER, y INTEGER, PRIMARY KEY (x, y))", "t", {"x"}),
        ("CREATE TABLE t (k INTEGER PRIMARY KEY, v) WITHOUT ROWID", "t", {"k"}),
        ('CREATE TABLE "odd ""t""" ("Mixed" TEXT UNIQUE, plain TEXT)', 'odd "t"', {"mixed"}),
        ("CREATE TABLE t (a, b)", "t", set()),
        ("CREATE TABLE t (a, b)", "missing", set()),
    ],
)
def test_sqlite_leading_columns(sqlite_cursor: DBAPICursor, schema: str, table: str, leading: set[str]) -> None:
    run(sqlite_cursor, schema)
    assert sqlite_leading_columns(sqlite_cursor, StatementTable(table)) == leading


def test_sqlite_leading_columns_of_an_attached_schema(sqlite_cursor: DBAPICursor) -> None:
    run(sqlite_cursor, "ATTACH ':memory:' AS other; CREATE TABLE t (a, b); CREATE TABLE other.t (a, b)")
    run(sqlite_cursor, "CREATE INDEX other.ix ON t (b)")
    assert sqlite_leading_columns(sqlite_cursor, StatementTable("t", "other")) == {"b"}
    assert sqlite_leading_columns(sqlite_cursor, StatementTable("t", "main")) == set()


@pytest.fixture
def postgres_cursor(postgres_database: PostgresDatabase) -> Iterator[DBAPICursor]:
    engine = sa.create_engine(postgres_database.url("psycopg"))
    connection = engine.raw_connection()
    try:
        yield connection.cursor()
    finally:
        connection.close()
        engine.dispose()


def test_postgres_leading_columns(postgres_cursor: DBAPICursor) -> None:
    for statement in (
        "CREATE TABLE t (id int PRIMARY KEY, a int, b int, c text, d int)",
        "CREATE INDEX ON t (a, b)",
        "CREATE INDEX ON t (lower(c))",
        "CREATE INDEX ON t (d) WHERE d > 0",
        'CREATE TABLE "user" (id int PRIMARY KEY, name text)',
        "CREATE SCHEMA other",
        "CREATE TABLE other.t (x int, y int UNIQUE)",
        'CREATE TABLE "it\'s \\ ""odd""" ("Key" int PRIMARY KEY)',
    ):
        postgres_cursor.execute(statement)
    assert postgres_leading_columns(postgres_cursor, StatementTable("t")) == {"id", "a", "d"}
    assert postgres_leading_columns(postgres_cursor, StatementTable("user")) == {"id"}
    assert postgres_leading_columns(postgres_cursor, StatementTable("t", "other")) == {"y"}
    assert postgres_leading_columns(postgres_cursor, StatementTable('it\'s \\ "odd"')) == {"Key"}
    assert postgres_leading_columns(postgres_cursor, StatementTable("missing")) == set()
    assert postgres_leading_columns(postgres_cursor, StatementTable("t", "missing")) == set()


def test_postgres_full_scans_read_the_schema_the_statement_names(postgres_database: PostgresDatabase) -> None:
    engine = sa.create_engine(postgres_database.url("psycopg"))
    try:
        with engine.begin() as connection:
            # The same table name twice: the plan prints it without its schema.
            connection.exec_driver_sql("CREATE SCHEMA other")
            connection.exec_driver_sql("CREATE TABLE other.accounts (id int PRIMARY KEY, name text)")
            connection.exec_driver_sql("INSERT INTO other.accounts VALUES (1, 'a'), (2, 'b'), (3, 'c')")
            connection.exec_driver_sql("ANALYZE other.accounts")
            connection.exec_driver_sql("CREATE TABLE accounts (id int, name text)")
        with engine.connect() as connection:
            by_id = "SELECT * FROM {} WHERE id = %(id)s"
            assert full_scans(connection, by_id.format("other.accounts"), {"id": 1}, 5.0) == []
            [scan] = full_scans(connection, by_id.format("accounts"), {"id": 1}, 5.0)
            assert (scan.table, scan.columns) == ("accounts", ("id",))
            assert scan.plan.startswith("Seq Scan on accounts")
            # No parameters: the driver is not given any, so the `%` is not taken for a placeholder.
            [scan] = full_scans(connection, "SELECT * FROM other.accounts WHERE name LIKE 'a%'", (), 5.0)
            assert (scan.table, scan.columns) == ("accounts", ("name",))
            # A full scan whose filter compares no plain column: no index on a column would help it.
            assert full_scans(connection, "SELECT * FROM accounts WHERE lower(name) = 'a'", (), 5.0) == []
    finally:
        engine.dispose()


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
