"""Query plans: the tables a plan reads whole, and the columns that already lead an index of them.

``full_scans`` runs the plan command and the catalog reads on the DBAPI cursor of the connection it is given, never
through SQLAlchemy's ``execute``: the instrumentation times the app's statements in the dialect's ``do_execute``,
and a plan the advisor asks for is not a statement of the app (not in its latency, slow queries or N+1 counts).
SQLite's plan names the scanned table but not the filter, so the columns come from the statement's WHERE clauses;
PostgreSQL's ``Seq Scan`` node carries its ``Filter:``, which names them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slipstream.sqlalchemy.where_clause import (
    StatementTable,
    compared_columns,
    filter_columns,
    sql_tokens,
    statement_tables,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.engine.interfaces import DBAPICursor

__all__ = [
    "PLAN_PREFIXES",
    "FullScan",
    "fetch_rows",
    "full_scans",
    "postgres_filtered_scans",
    "postgres_leading_columns",
    "sqlite_full_scans",
    "sqlite_leading_columns",
]

PLAN_PREFIXES = {"sqlite": "EXPLAIN QUERY PLAN ", "postgresql": "EXPLAIN "}

_SQLITE_SCAN = re.compile(r'SCAN (?:TABLE )?("(?:[^"]|"")+"|[^\s(]\S*)(?: AS (\S+))?(.*)')
_SQLITE_INDEXED = ("USING INDEX", "USING COVERING INDEX", "USING INTEGER PRIMARY KEY", "VIRTUAL TABLE")
_PG_SEQ_SCAN = re.compile(r'(?:Parallel )?Seq Scan on ("(?:[^"]|"")+"|[^\s(]+)')
# indkey is an int2vector subscripted from 0; a 0 in it stands for an expression, which no attribute matches.
_PG_LEADING_COLUMNS = (
    "SELECT a.attname FROM pg_catalog.pg_index AS i JOIN pg_catalog.pg_attribute AS a"
    " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
    " WHERE i.indrelid = pg_catalog.to_regclass({}) AND i.indisvalid"
)


@dataclass(frozen=True, slots=True)
class FullScan:
    """A plan's full scan of ``table`` filtered on ``columns``, none of which leads an index; ``plan`` is its node."""

    table: str
    columns: tuple[str, ...]
    plan: str


def _unquoted(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_scans(rows: Iterable[Sequence[Any]]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for row in rows:
        detail = str(row[-1])
        match = _SQLITE_SCAN.fullmatch(detail)
        if match is None or match.group(1) == "CONSTANT" or any(used in match.group(3) for used in _SQLITE_INDEXED):
            continue
        found.append((_unquoted(match.group(2) or match.group(1)), detail))
    return found


def sqlite_full_scans(rows: Iterable[Sequence[Any]]) -> list[str]:
    """Tables (or the aliases SQLite prints for them) that EXPLAIN QUERY PLAN rows scan without an index.

    Each row's last column is the ``detail`` text: ``SCAN users`` is a full scan; ``SEARCH ...``, ``SCAN ... USING
    [COVERING] INDEX`` and ``SCAN ... USING INTEGER PRIMARY KEY`` are not.
    """
    return [name for name, _ in _sqlite_scans(rows)]


def _postgres_scans(lines: Iterable[str]) -> list[tuple[str, tuple[str, ...], str]]:
    found: list[tuple[str, tuple[str, ...], str]] = []
    plan = list(lines)
    for i, line in enumerate(plan):
        match = _PG_SEQ_SCAN.search(line)
        if match is None:
            continue
        node_column = match.start()
        for detail in plan[i + 1 :]:
            text = detail.lstrip()
            if len(detail) - len(text) <= node_column or text.startswith("->"):
                break
            if text.startswith("Filter: "):
                columns = filter_columns(text[len("Filter: ") :])
                found.append((_unquoted(match.group(1)), columns, line[match.start() :].strip()))
                break
    return found


def postgres_filtered_scans(lines: Iterable[str]) -> list[tuple[str, tuple[str, ...]]]:
    """``(table, columns)`` for each ``Seq Scan on table`` node of a text EXPLAIN plan that has a ``Filter:``.

    The columns are the identifiers left of a comparison in the filter, with casts (``(email)::text``) and
    qualifiers stripped; a filter comparing no plain column gives an empty tuple.
    """
    return [(table, columns) for table, columns, _ in _postgres_scans(lines)]


def fetch_rows(cursor: DBAPICursor, sql: str, parameters: Any = None) -> list[Any]:
    """Run ``sql`` on a DBAPI cursor; its rows, or none for a statement that returns no result."""
    if parameters is None or parameters == ():
        # Without any parameters: a pyformat driver given even an empty tuple reads every `%` as a placeholder.
        cursor.execute(sql)
    else:
        cursor.execute(sql, parameters)
    return list(cursor.fetchall()) if cursor.description is not None else []


def sqlite_leading_columns(cursor: DBAPICursor, table: StatementTable) -> set[str]:
    """Lower-cased names of the columns that lead an index of ``table``, its INTEGER PRIMARY KEY included."""
    schema = f"{_quoted(table.schema)}." if table.schema else ""
    leading: set[str] = set()
    for index in fetch_rows(cursor, f"PRAGMA {schema}index_list({_quoted(table.name)})"):
        for seqno, _, name in fetch_rows(cursor, f"PRAGMA {schema}index_info({_quoted(str(index[1]))})"):
            if seqno == 0 and name is not None:  # None: an expression, or the rowid
                leading.add(str(name).lower())
    # An INTEGER PRIMARY KEY column is the rowid itself: a search by it needs no index, so none is listed.
    columns = fetch_rows(cursor, f"PRAGMA {schema}table_info({_quoted(table.name)})")
    primary_key = [column for column in columns if column[5]]
    if len(primary_key) == 1 and str(primary_key[0][2]).upper() == "INTEGER":
        leading.add(str(primary_key[0][1]).lower())
    return leading


def postgres_leading_columns(cursor: DBAPICursor, table: StatementTable) -> set[str]:
    """Names of the columns that lead a valid index of ``table``, exactly as the catalog spells them.

    A table without a schema is found through the connection's search_path, as the statement's own name was.
    """
    name = ".".join(_quoted(part) for part in (table.schema, table.name) if part is not None)
    # Inlined, not bound: the parameter style differs between drivers. E'' reads backslashes the same way
    # whatever standard_conforming_strings says, so doubling backslashes and quotes keeps the literal whole.
    literal = "E'" + name.replace("\\", "\\\\").replace("'", "''") + "'"
    return {str(row[0]) for row in fetch_rows(cursor, _PG_LEADING_COLUMNS.format(literal))}


def _sqlite_plan(cursor: DBAPICursor, statement: str, parameters: Any) -> list[FullScan]:
    tokens = sql_tokens(statement)
    tables = statement_tables(tokens)
    found: list[FullScan] = []
    for name, detail in _sqlite_scans(fetch_rows(cursor, PLAN_PREFIXES["sqlite"] + statement, parameters)):
        table = tables.get(name.lower())
        if table is None or not (columns := compared_columns(tokens, tables, table.name)):
            continue
        indexed = sqlite_leading_columns(cursor, table)
        unindexed = tuple(column for column in columns if column.lower() not in indexed)
        if unindexed:
            found.append(FullScan(table.name, unindexed, detail))
    return found


def _postgres_plan(cursor: DBAPICursor, statement: str, parameters: Any, timeout: float) -> list[FullScan]:
    tables = statement_tables(sql_tokens(statement))
    # SET LOCAL ends with the plan's transaction, so the pooled connection keeps its own setting.
    fetch_rows(cursor, f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
    lines = [str(row[0]) for row in fetch_rows(cursor, PLAN_PREFIXES["postgresql"] + statement, parameters)]
    found: list[FullScan] = []
    for name, columns, node in _postgres_scans(lines):
        if not columns:
            continue
        # The plan names the table without its schema; the statement may have named one.
        named = tables.get(name.lower())
        table = named if named is not None and named.name == name else StatementTable(name)
        indexed = postgres_leading_columns(cursor, table)
        unindexed = tuple(column for column in columns if column not in indexed)
        if unindexed:
            found.append(FullScan(name, unindexed, node))
    return found


def full_scans(connection: Connection, statement: str, parameters: Any, timeout: float) -> list[FullScan]:
    """The full scans in the plan of ``statement`` whose filtered columns lead no index, read on ``connection``.

    ``parameters`` are the driver's own, as the driver got them with ``statement``. What the plan began is rolled
    back before the connection goes back to its pool, so a failed plan never leaves it in an aborted transaction.
    """
    pooled = connection.connection
    cursor = pooled.cursor()
    try:
        if connection.dialect.name == "postgresql":
            return _postgres_plan(cursor, statement, parameters, timeout)
        return _sqlite_plan(cursor, statement, parameters)
    finally:
        cursor.close()
        pooled.rollback()
