"""Query plans: the tables a plan reads whole, and the columns it filters them on.

``full_scans`` runs the plan command on the DBAPI cursor of the connection it is given, never
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

from slipstream.sqlalchemy.where_clause import compared_columns, filter_columns, sql_tokens, statement_tables

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.engine.interfaces import DBAPICursor

__all__ = [
    "PLAN_PREFIXES",
    "FullScan",
    "fetch_rows",
    "full_scans",
    "postgres_filtered_scans",
    "sqlite_full_scans",
]

PLAN_PREFIXES = {"sqlite": "EXPLAIN QUERY PLAN ", "postgresql": "EXPLAIN "}

_SQLITE_SCAN = re.compile(r'SCAN (?:TABLE )?("(?:[^"]|"")+"|[^\s(]\S*)(?: AS (\S+))?(.*)')
_SQLITE_INDEXED = ("USING INDEX", "USING COVERING INDEX", "USING INTEGER PRIMARY KEY", "VIRTUAL TABLE")
_PG_SEQ_SCAN = re.compile(r'(?:Parallel )?Seq Scan on ("(?:[^"]|"")+"|[^\s(]+)')


@dataclass(frozen=True, slots=True)
class FullScan:
    """A plan's full scan of ``table`` filtered on ``columns``; ``plan`` is its node."""

    table: str
    columns: tuple[str, ...]
    plan: str


def _unquoted(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


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


def _sqlite_plan(cursor: DBAPICursor, statement: str, parameters: Any) -> list[FullScan]:
    tokens = sql_tokens(statement)
    tables = statement_tables(tokens)
    found: list[FullScan] = []
    for name, detail in _sqlite_scans(fetch_rows(cursor, PLAN_PREFIXES["sqlite"] + statement, parameters)):
        table = tables.get(name.lower())
        if table is not None and (columns := compared_columns(tokens, tables, table.name)):
            found.append(FullScan(table.name, columns, detail))
    return found


def _postgres_plan(cursor: DBAPICursor, statement: str, parameters: Any, timeout: float) -> list[FullScan]:
    # SET LOCAL ends with the plan's transaction, so the pooled connection keeps its own setting.
    fetch_rows(cursor, f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
    lines = [str(row[0]) for row in fetch_rows(cursor, PLAN_PREFIXES["postgresql"] + statement, parameters)]
    return [FullScan(name, columns, node) for name, columns, node in _postgres_scans(lines) if columns]


def full_scans(connection: Connection, statement: str, parameters: Any, timeout: float) -> list[FullScan]:
    """The full scans in the plan of ``statement`` that filter on columns, read on ``connection``.

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
