"""Index hints: slow SELECTs whose query plan scans a whole table, and the columns an index would need.

The plan is asked for on a separate connection from the statement's engine, in the background (a worker thread
for sync drivers, a task on the running loop for async ones), once per fingerprint and at most ``max_per_minute``
times a minute, so the statement that triggered it is never delayed and never fails because of it. SQLite's plan
names the scanned table but not the filter, so the columns come from the statement's WHERE clauses; PostgreSQL's
``Seq Scan`` node carries its ``Filter:``, which names them. Parameter values are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from slipstream.sqlalchemy.fingerprint import Fingerprint

__all__ = ["IndexAdvisor", "IndexHint", "postgres_filtered_scans", "sqlite_full_scans", "where_columns"]

log = logging.getLogger("slipstream.sql")

_PLAN_PREFIXES = {"sqlite": "EXPLAIN QUERY PLAN ", "postgresql": "EXPLAIN "}
_WORKER_IDLE = 30.0  # seconds an idle worker thread waits for more plans before it exits

_TOKEN = re.compile(
    r"""(?P<string>'(?:[^']|'')*')
    |(?P<quoted>"(?:[^"]|"")+")
    |(?P<cast>::)
    |(?P<param>\?|\$\d+|%\([^)]*\)s|%s|:\w+)
    |(?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    |(?P<number>\d+(?:\.\d*)?)
    |(?P<op><>|!=|<=|>=|!~~\*?|~~\*?|!~\*?|~\*?|=|<|>)
    |(?P<punct>[().,\[\]])""",
    re.VERBOSE,
)
_KEYWORDS = frozenset(
    "ALL AND ANY AS ASC BETWEEN BY CASE CROSS DESC DISTINCT ELSE END ESCAPE EXCEPT EXISTS FALSE FETCH FOR FROM FULL "
    "GLOB GROUP HAVING ILIKE IN INDEXED INNER INTERSECT IS JOIN LEFT LIKE LIMIT NATURAL NOT NULL OFFSET ON OR ORDER "
    "OUTER REGEXP RETURNING RIGHT SELECT SET SOME THEN TRUE UNION USING VALUES WHEN WHERE WINDOW".split()
)
_CLAUSE_ENDS = frozenset("EXCEPT FETCH FOR GROUP HAVING INTERSECT LIMIT OFFSET ORDER RETURNING UNION WINDOW".split())
_WORD_OPERATORS = frozenset("BETWEEN GLOB ILIKE IN IS LIKE REGEXP".split())
_NEGATED_OPERATORS = frozenset("BETWEEN GLOB ILIKE IN LIKE REGEXP".split())
_SQLITE_SCAN = re.compile(r'SCAN (?:TABLE )?("(?:[^"]|"")+"|[^\s(]\S*)(?: AS (\S+))?(.*)')
_SQLITE_INDEXED = ("USING INDEX", "USING COVERING INDEX", "USING INTEGER PRIMARY KEY", "VIRTUAL TABLE")
_PG_SEQ_SCAN = re.compile(r'(?:Parallel )?Seq Scan on ("(?:[^"]|"")+"|[^\s(]+)')

Token = tuple[str, str]


@dataclass(frozen=True, slots=True)
class IndexHint:
    """A full scan of ``table`` that an index on ``columns`` would turn into a search."""

    table: str
    columns: tuple[str, ...]
    fingerprint: str
    plan: str
    dialect: str


def _tokens(text: str) -> list[Token]:
    found: list[Token] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group()))
    return found


def _name(token: Token) -> str | None:
    """The identifier a token spells (quotes removed), or None for keywords and everything else."""
    kind, text = token
    if kind == "quoted":
        return text[1:-1].replace('""', '"')
    if kind == "word" and text.upper() not in _KEYWORDS:
        return text
    return None


def _is_comparison(tokens: list[Token], k: int) -> bool:
    kind, text = tokens[k]
    if kind == "op":
        return True
    if kind != "word":
        return False
    upper = text.upper()
    if upper in _WORD_OPERATORS:
        return True
    return upper == "NOT" and k + 1 < len(tokens) and tokens[k + 1][1].upper() in _NEGATED_OPERATORS


def _left_operand(tokens: list[Token], k: int) -> tuple[str | None, str] | None:
    """``(qualifier, column)`` compared by the operator at ``k``: ``col``, ``t.col``, ``(col)::type``, or None."""
    j = k - 1
    # Step back over casts: `(expr)::character varying` leaves j on the `)` that closes the cast expression.
    m = j
    while m >= 0 and m > j - 5 and _name(tokens[m]) is not None:
        m -= 1
    if m < j and m >= 0 and tokens[m][1] == "::":
        j = m - 1
    wrapped = j >= 0 and tokens[j][1] == ")"
    if wrapped:
        j -= 1
    if j < 0 or (column := _name(tokens[j])) is None:
        return None
    qualifier = None
    if j >= 2 and tokens[j - 1][1] == "." and (qualifier := _name(tokens[j - 2])) is not None:
        j -= 2
    before = tokens[j - 1] if j >= 1 else ("", "")
    if wrapped and (before[1] != "(" or (j >= 2 and _name(tokens[j - 2]) is not None)):
        return None  # f(col) is a function call, not a parenthesised column
    if before[1] in ("::", "."):
        return None
    return qualifier, column


def _statement_tables(tokens: list[Token]) -> dict[str, str]:
    """Lower-cased table names and aliases after FROM / JOIN, each mapped to its table; CTE names left out."""
    ctes = {
        name.lower()
        for i, token in enumerate(tokens[:-2])
        if (name := _name(token)) is not None and tokens[i + 1][1].upper() == "AS" and tokens[i + 2][1] == "("
    }
    tables: dict[str, str] = {}
    for i, (_, text) in enumerate(tokens):
        if text.upper() not in ("FROM", "JOIN"):
            continue
        j = i + 1
        while j < len(tokens) and (table := _name(tokens[j])) is not None:
            j += 1
            while j + 1 < len(tokens) and tokens[j][1] == "." and (part := _name(tokens[j + 1])) is not None:
                table, j = part, j + 2  # schema.table: the plan names the table alone
            if j < len(tokens) and tokens[j][1].upper() == "AS":
                j += 1
            alias = _name(tokens[j]) if j < len(tokens) else None
            if alias is not None:
                j += 1
            if table.lower() not in ctes:
                tables[table.lower()] = table
                if alias is not None:
                    tables[alias.lower()] = table
            if j >= len(tokens) or tokens[j][1] != "," or text.upper() != "FROM":
                break
            j += 1
    return tables


def _where_columns(tokens: list[Token], tables: dict[str, str], table: str) -> tuple[str, ...]:
    wanted = {name for name, target in tables.items() if target.lower() == table.lower()}
    unqualified_ok = len(set(tables.values())) == 1 and bool(wanted)
    columns: list[str] = []
    for start, (_, text) in enumerate(tokens):
        if text.upper() != "WHERE":
            continue
        depth = 0
        for k in range(start + 1, len(tokens)):
            kind, word = tokens[k]
            if word == "(":
                depth += 1
            elif word == ")":
                depth -= 1
                if depth < 0:
                    break
            elif depth == 0 and kind == "word" and word.upper() in _CLAUSE_ENDS:
                break
            elif _is_comparison(tokens, k) and (operand := _left_operand(tokens, k)) is not None:
                qualifier, column = operand
                if (qualifier.lower() in wanted if qualifier else unqualified_ok) and column not in columns:
                    columns.append(column)
    return tuple(columns)


def where_columns(statement: str, table: str) -> tuple[str, ...]:
    """Columns of ``table`` (a table name or its alias) that the statement's WHERE clauses compare, in order.

    A column counts when it stands left of =, <>, !=, <, >, <=, >=, LIKE, IN, IS, BETWEEN, GLOB (or NOT ...).
    An unqualified column counts only when the statement reads from one table.
    """
    tokens = _tokens(statement)
    tables = _statement_tables(tokens)
    return _where_columns(tokens, tables, tables.get(table.lower(), table))


def _sqlite_scans(rows: Iterable[Sequence[Any]]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for row in rows:
        detail = str(row[-1])
        match = _SQLITE_SCAN.fullmatch(detail)
        if match is None or match.group(1) == "CONSTANT" or any(used in match.group(3) for used in _SQLITE_INDEXED):
            continue
        name = match.group(2) or match.group(1)
        found.append((name[1:-1].replace('""', '"') if name.startswith('"') else name, detail))
    return found


def sqlite_full_scans(rows: Iterable[Sequence[Any]]) -> list[str]:
    """Tables (or the aliases SQLite prints for them) that EXPLAIN QUERY PLAN rows scan without an index.

    Each row's last column is the ``detail`` text: ``SCAN users`` is a full scan; ``SEARCH ...``, ``SCAN ... USING
    [COVERING] INDEX`` and ``SCAN ... USING INTEGER PRIMARY KEY`` are not.
    """
    return [name for name, _ in _sqlite_scans(rows)]


def _filter_columns(expression: str) -> tuple[str, ...]:
    tokens = _tokens(expression)
    columns: list[str] = []
    for k in range(len(tokens)):
        if _is_comparison(tokens, k) and (operand := _left_operand(tokens, k)) is not None:
            if operand[1] not in columns:
                columns.append(operand[1])
    return tuple(columns)


def _postgres_scans(lines: Iterable[str]) -> list[tuple[str, tuple[str, ...], str]]:
    found: list[tuple[str, tuple[str, ...], str]] = []
    plan = list(lines)
    for i, line in enumerate(plan):
        match = _PG_SEQ_SCAN.search(line)
        if match is None:
            continue
        table = match.group(1)
        node_column = match.start()
        for detail in plan[i + 1 :]:
            text = detail.lstrip()
            if len(detail) - len(text) <= node_column or text.startswith("->"):
                break
            if text.startswith("Filter: "):
                table = table[1:-1].replace('""', '"') if table.startswith('"') else table
                found.append((table, _filter_columns(text[len("Filter: ") :]), line[match.start() :].strip()))
                break
    return found


def postgres_filtered_scans(lines: Iterable[str]) -> list[tuple[str, tuple[str, ...]]]:
    """``(table, columns)`` for each ``Seq Scan on table`` node of a text EXPLAIN plan that has a ``Filter:``.

    The columns are the identifiers left of a comparison in the filter, with casts (``(email)::text``) and
    qualifiers stripped; a filter comparing no plain column gives an empty tuple.
    """
    return [(table, columns) for table, columns, _ in _postgres_scans(lines)]


class IndexAdvisor:
    """Asks the database for the plan of slow SELECTs and reports the full scans an index would avoid."""

    def __init__(
        self,
        *,
        max_per_minute: int = 6,
        max_hints: int = 100,
        on_hint: Callable[[IndexHint], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 5.0,
        max_fingerprints: int = 1000,
    ) -> None:
        if max_per_minute < 0 or max_hints < 1 or max_fingerprints < 1 or timeout <= 0:
            raise ValueError("max_per_minute >= 0, max_hints >= 1, max_fingerprints >= 1 and timeout > 0 expected")
        self.max_per_minute = max_per_minute
        self.max_fingerprints = max_fingerprints
        self.timeout = timeout
        self.on_hint = on_hint
        self._clock = clock
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._hint_keys: OrderedDict[tuple[str, tuple[str, ...]], None] = OrderedDict()
        self._hints: deque[IndexHint] = deque(maxlen=max_hints)
        self._started: deque[float] = deque()
        self._wake = threading.Condition(self._lock)
        self._jobs: deque[Callable[[], None] | None] = deque()
        self._worker: threading.Thread | None = None
        self._pending = 0  # plans queued for or running in the worker thread
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def hints(self) -> list[IndexHint]:
        """The distinct hints found so far, newest last."""
        with self._lock:
            return list(self._hints)

    def consider(self, connection: Connection, print_: Fingerprint, statement: str, parameters: Any) -> None:
        """Plan ``statement`` in the background if it is a SELECT not planned before and the rate limit allows."""
        try:
            self._consider(connection, print_, statement, parameters)
        except Exception:
            log.debug("index hint: could not schedule a plan for %s", print_.text, exc_info=True)

    def _consider(self, connection: Connection, print_: Fingerprint, statement: str, parameters: Any) -> None:
        if print_.operation.upper() != "SELECT" or statement[:7].upper() == "EXPLAIN":
            return
        engine = connection.engine
        if engine.dialect.name not in _PLAN_PREFIXES or isinstance(engine.pool, StaticPool):
            return  # a StaticPool would hand the plan the statement's own connection
        if engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"):
            return  # another connection sees a different, empty in-memory database
        loop = asyncio.get_running_loop() if engine.dialect.is_async else None
        if isinstance(parameters, list):  # executemany: the first set of parameters stands for all
            parameters = parameters[0] if parameters else None
        with self._lock:
            if self._closed:
                return
            now = self._clock()
            while self._started and now - self._started[0] >= 60.0:
                self._started.popleft()
            if print_.text in self._seen or len(self._started) >= self.max_per_minute:
                return
            self._started.append(now)
            self._seen[print_.text] = None
            if len(self._seen) > self.max_fingerprints:
                self._seen.popitem(last=False)
            if loop is None:
                self._pending += 1
                self._jobs.append(lambda: self._plan_in_thread(engine, print_.text, statement, parameters))
                self._wake.notify()
                if self._worker is None:
                    self._worker = threading.Thread(target=self._work, name="slipstream-index-hints", daemon=True)
                    self._worker.start()
                return
        task = loop.create_task(self._plan_in_task(engine, print_.text, statement, parameters))
        self._tasks.add(task)  # the loop keeps only a weak reference to its tasks
        task.add_done_callback(self._tasks.discard)

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._wake.wait_for(lambda: bool(self._jobs), _WORKER_IDLE):
                    self._worker = None
                    return
                job = self._jobs.popleft()
            if job is None:
                return
            job()

    def _explain(self, connection: Connection, statement: str, parameters: Any) -> list[Any]:
        dialect = connection.dialect.name
        if dialect == "postgresql":
            # SET LOCAL ends with the plan's transaction, so the pooled connection keeps its own setting.
            connection.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(self.timeout * 1000))}")
        rows = connection.exec_driver_sql(_PLAN_PREFIXES[dialect] + statement, parameters).all()
        return list(rows)

    def _plan_in_thread(self, engine: Engine, text: str, statement: str, parameters: Any) -> None:
        try:
            if not self._closed:
                with engine.connect() as connection:
                    rows = self._explain(connection, statement, parameters)
                self._report(engine.dialect.name, rows, statement, text)
        except Exception as error:
            # The class only: a driver's message can quote parameter values.
            log.debug("index hint: planning %s failed: %s", text, type(error).__name__)
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    async def _plan_in_task(self, engine: Engine, text: str, statement: str, parameters: Any) -> None:
        async def explain() -> list[Any]:
            # The app's AsyncEngine for this engine if it has one: a second proxy would unregister it when collected.
            async with AsyncEngine._retrieve_proxy_for_target(engine).connect() as connection:
                return await connection.run_sync(self._explain, statement, parameters)

        try:
            rows = await asyncio.wait_for(explain(), self.timeout)
            self._report(engine.dialect.name, rows, statement, text)
        except Exception as error:
            log.debug("index hint: planning %s failed: %s", text, type(error).__name__)

    def _report(self, dialect: str, rows: list[Any], statement: str, text: str) -> None:
        if dialect == "sqlite":
            tokens = _tokens(statement)
            tables = _statement_tables(tokens)
            scans = [
                (tables[name.lower()], _where_columns(tokens, tables, tables[name.lower()]), detail)
                for name, detail in _sqlite_scans(rows)
                if name.lower() in tables
            ]
        else:
            scans = _postgres_scans(str(row[0]) for row in rows)
        for table, columns, plan in scans:
            if columns:
                self._add(IndexHint(table, columns, text, plan, dialect))

    def _add(self, hint: IndexHint) -> None:
        key = (hint.table.lower(), hint.columns)
        with self._lock:
            if key in self._hint_keys:
                return
            self._hint_keys[key] = None
            if len(self._hint_keys) > self.max_fingerprints:
                self._hint_keys.popitem(last=False)
            self._hints.append(hint)
        log.warning(
            "index hint: %s(%s) would avoid a full scan for: %s",
            hint.table,
            ", ".join(hint.columns),
            hint.fingerprint,
            extra={"table": hint.table, "columns": list(hint.columns), "fingerprint": hint.fingerprint},
        )
        if self.on_hint is not None:
            try:
                self.on_hint(hint)
            except Exception:
                log.debug("index hint: on_hint failed", exc_info=True)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for plans running in the worker thread; True when none is left."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for this loop's plan tasks and the worker thread; True when all are done."""
        deadline = time.monotonic() + timeout
        tasks = {task for task in self._tasks if task.get_loop() is asyncio.get_running_loop()}
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        while self._pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return not self._pending and all(task.done() for task in tasks)

    def close(self, timeout: float = 5.0) -> None:
        """Stop planning: queued plans are dropped, running tasks cancelled, the worker thread joined."""
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
            if worker is not None:
                self._jobs.append(None)
                self._wake.notify()
        for task in list(self._tasks):
            try:
                task.get_loop().call_soon_threadsafe(task.cancel)
            except RuntimeError:  # pragma: no cover - a loop closed while its plan task was pending
                pass
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
