"""The engines bench_sqlalchemy.py times: SQLite in memory, a table of 100 items, one statement per query, each
contender on an engine of its own; and the check that each one's instrumentation saw every statement.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, Histogram
from sqlalchemy import Connection, Engine, Float, String, bindparam, create_engine, event, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import StaticPool

from harness import request_scope
from slipstream.config import Settings
from slipstream.exporters.otel import Telemetry
from slipstream.instrumentation import Instrumentation
from slipstream.record import RequestRecord, close_record, open_record
from slipstream.sqlalchemy.hooks import instrument_sqlalchemy
from telemetry_spans import SpanPipeline

ROWS = 100
BARE, PAIR, NAIVE = "bare SQLAlchemy", "empty listener pair (floor)", "naive listener pair + prometheus_client"
OTEL = "OpenTelemetry SQLAlchemyInstrumentor"
SLIPSTREAM, SLIPSTREAM_SPANS = "slipstream, spans=False", "slipstream, spans=True"
SLIPSTREAM_REQUEST = "slipstream, spans=False, inside a request record"
ENGINE_EVENTS = "reference: one engine_disposed listener, nothing per query"
SLIPSTREAM_SERIES = "db_client_operation_duration_seconds_count"
SLIPSTREAM_LABELS = {"db_system_name": "sqlite", "db_operation_name": "SELECT", "db_collection_name": "items"}
NAIVE_SERIES, NAIVE_LABELS = "db_query_duration_seconds_count", {"db_system": "sqlite", "operation": "SELECT"}
# What a hand-written integration typically takes for the table: the first name after FROM, INTO or UPDATE.
NAIVE_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", re.IGNORECASE)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(80))
    price: Mapped[float] = mapped_column(Float)
    stock: Mapped[int]


ITEMS = Item.__table__
BY_ID = select(ITEMS).where(ITEMS.c.id == bindparam("item_id"))


def populated_engine() -> Engine:
    """A fresh in-memory SQLite database of its own (StaticPool: one DBAPI connection), holding ``ROWS`` items."""
    engine = create_engine("sqlite://", poolclass=StaticPool)
    Base.metadata.create_all(engine)
    rows = [
        {"id": i, "sku": f"SKU-{i:05d}", "name": f"Espresso cup no. {i}", "price": 2.5 + i / 4, "stock": i * 3 % 97}
        for i in range(1, ROWS + 1)
    ]
    with engine.begin() as connection:
        connection.execute(insert(Item), rows)
    return engine


def instrumentation(registry: CollectorRegistry, spans: SpanPipeline | None = None) -> Instrumentation:
    """An app's instrumentation on ``registry`` with the default settings; spans go to ``spans`` (none without)."""
    telemetry = Telemetry(spans.provider) if spans is not None else Telemetry(enabled=False)
    return Instrumentation(Settings(), registry=registry, telemetry=telemetry)


def query_ids(count: int) -> list[int]:
    """``count`` item ids, each of the ``ROWS`` in turn in a shuffled order, the same for every contender."""
    order = list(range(1, ROWS + 1))
    random.Random(20240611).shuffle(order)
    return [order[i % ROWS] for i in range(count)]


class CoreQueries:
    """``connection.execute(BY_ID, {"item_id": id}).all()`` per id, on one connection kept open."""

    label = "Core: select(items).where(items.c.id == bindparam('item_id')), .all()"

    def __init__(self, engine: Engine) -> None:
        self.connection = engine.connect()

    def __call__(self, ids: Sequence[int]) -> Any:
        execute = self.connection.execute
        rows: Any = None
        for ident in ids:
            rows = execute(BY_ID, {"item_id": ident}).all()
        return rows[0].id if rows else None

    def close(self) -> None:
        self.connection.close()


class OrmQueries:
    """``session.get(Item, id, populate_existing=True)`` per id, in one Session on one connection kept open;
    ``populate_existing`` makes every call run its SELECT, where the identity map would answer repeats."""

    label = "ORM: session.get(Item, id, populate_existing=True)"

    def __init__(self, engine: Engine) -> None:
        self.connection = engine.connect()
        self.session = Session(bind=self.connection)

    def __call__(self, ids: Sequence[int]) -> Any:
        get = self.session.get
        item: Item | None = None
        for ident in ids:
            item = get(Item, ident, populate_existing=True)
        return item.id if item is not None else None

    def close(self) -> None:
        self.session.close()
        self.connection.close()


Workload = CoreQueries | OrmQueries


@dataclass(eq=False)
class QueryContender:
    """One engine and its instrumentation. ``statements()``: the statements the instrumentation has counted so far
    (None when it keeps no count); ``spans``: where its spans go; ``in_request``: the instrumentation whose request
    record the queries run inside (None: no record). ``cpu``, ``wall``: µs per query, one sample per round."""

    name: str
    queries: Workload
    statements: Callable[[], float | None] | None = None
    spans: SpanPipeline | None = None
    in_request: Instrumentation | None = None
    spans_per_query: float = 0.0
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    record: RequestRecord | None = None

    def run(self, queries: int) -> tuple[float, float]:
        """Times ``queries`` queries, inside a fresh request record if ``in_request``; µs per query."""
        if len(self.ids) != queries:
            self.ids = query_ids(queries)
        app = self.in_request
        self.record = RequestRecord(app, request_scope("/items", None), "GET", 0.0) if app is not None else None
        token = open_record(self.record) if self.record is not None else None
        try:
            cpu_started, wall_started = time.process_time_ns(), time.perf_counter_ns()
            last = self.queries(self.ids)
            cpu, wall = time.process_time_ns() - cpu_started, time.perf_counter_ns() - wall_started
        finally:
            if token is not None:
                close_record(token)
        if last != self.ids[-1]:
            raise RuntimeError(f"{self.name}: the last query answered item {last}, not {self.ids[-1]}")
        return cpu / queries / 1000, wall / queries / 1000

    async def measure(self, queries: int) -> None:
        cpu, wall = self.run(queries)
        self.cpu.append(cpu)
        self.wall.append(wall)

    def verify(self, queries: int) -> None:
        """Warms up, then checks that the instrumentation counted every statement and made one span for each."""
        self.run(3)
        counted = self.statements() if self.statements is not None else None
        spans_before = self.spans.exported() if self.spans is not None else 0
        self.run(queries)
        if self.statements is not None and (counted is None or self.statements() != counted + queries):
            raise RuntimeError(f"{self.name}: its statement count went {counted} -> {self.statements()}")
        if self.in_request is not None and (self.record is None or self.record.db_queries != queries):
            raise RuntimeError(f"{self.name}: the request record counted {self.record and self.record.db_queries}")
        if self.spans is not None:
            self.spans_per_query = (self.spans.exported() - spans_before) / queries
            if self.spans_per_query != 1:
                raise RuntimeError(f"{self.name}: {self.spans_per_query} spans per query, not 1")


def listener_pair(engine: Engine) -> None:
    """The least the event-listener approach costs: a before and an after listener that do nothing."""

    def before(*args: object) -> None:
        return None

    def after(*args: object) -> None:
        return None

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)


def engine_disposed(engine: Engine) -> None:
    """Fires on ``Engine.dispose()`` only; but any engine-level listener sets the engine's ``_has_events``, which puts
    every statement on SQLAlchemy's event-dispatch path (before/after execute, cursor execute)."""
    return None


def naive_listeners(engine: Engine, registry: CollectorRegistry) -> None:
    """What a hand-written integration does: the start time on the execution context, then a labelled histogram."""
    seconds = Histogram(
        "db_query_duration_seconds", "Query duration.", ("db_system", "operation", "table"), registry=registry
    )

    def before(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        context._query_started = time.perf_counter()

    def after(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        elapsed = time.perf_counter() - context._query_started
        found = NAIVE_TABLE.search(statement)
        operation = statement.split(None, 1)[0].upper()
        seconds.labels(conn.engine.dialect.name, operation, found.group(1) if found else "").observe(elapsed)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)


def series(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> Callable[[], float | None]:
    return lambda: registry.get_sample_value(name, labels)


def listeners(queries: Workload, count: int) -> Workload:
    """``queries``, once its connection is seen to dispatch ``count`` before and after cursor listeners."""
    dispatch = queries.connection.dispatch
    found = (len(dispatch.before_cursor_execute), len(dispatch.after_cursor_execute))
    if found != (count, count):
        raise RuntimeError(f"{found} cursor listeners on the connection, not {count} each way")
    return queries


def contenders(workload: type[Workload]) -> list[QueryContender]:
    """Every contender for ``workload`` but OpenTelemetry's, each on an engine of its own. Listeners go on before
    the connection is opened: a Connection takes its engine's listeners when it is made."""
    bare, events, pair, naive, ours, traced, in_request = (populated_engine() for _ in range(7))
    naive_registry, ours_registry, traced_registry, request_registry = (CollectorRegistry() for _ in range(4))
    traced_spans = SpanPipeline()
    event.listen(events, "engine_disposed", engine_disposed)
    listener_pair(pair)
    naive_listeners(naive, naive_registry)
    instrument_sqlalchemy(ours, instrumentation=instrumentation(ours_registry), spans=False)
    instrument_sqlalchemy(traced, instrumentation=instrumentation(traced_registry, traced_spans), spans=True)
    request_app = instrumentation(request_registry)
    instrument_sqlalchemy(in_request, instrumentation=request_app, spans=False)
    naive_labels = {**NAIVE_LABELS, "table": "items"}

    def counted(registry: CollectorRegistry) -> Callable[[], float | None]:
        return series(registry, SLIPSTREAM_SERIES, SLIPSTREAM_LABELS)

    return [
        QueryContender(BARE, listeners(workload(bare), 0)),
        QueryContender(ENGINE_EVENTS, listeners(workload(events), 0)),
        QueryContender(PAIR, listeners(workload(pair), 1)),
        QueryContender(NAIVE, listeners(workload(naive), 1), series(naive_registry, NAIVE_SERIES, naive_labels)),
        QueryContender(SLIPSTREAM, listeners(workload(ours), 0), counted(ours_registry)),
        QueryContender(SLIPSTREAM_SPANS, listeners(workload(traced), 0), counted(traced_registry), traced_spans),
        QueryContender(
            SLIPSTREAM_REQUEST, listeners(workload(in_request), 0), counted(request_registry), None, request_app
        ),
    ]


def otel_contenders(workloads: Sequence[type[Workload]]) -> list[QueryContender]:
    """OpenTelemetry's contender for each of ``workloads``, its engines instrumented by OpenTelemetry's public entry
    point in one call (the instrumentor is a singleton: a second ``instrument()`` is refused), with
    ``skip_dep_check=True`` to force it past its declared ``sqlalchemy < 2.1.0``. That call also patches
    ``create_engine`` and ``Engine.connect`` process-wide: make and connect every other engine first, and call
    ``uninstrument_otel`` once done."""
    engines = [populated_engine() for _ in workloads]
    spans = SpanPipeline()
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumented = SQLAlchemyInstrumentor().instrument(
        engines=engines, tracer_provider=spans.provider, meter_provider=meter_provider, skip_dep_check=True
    )
    if not isinstance(instrumented, list) or len(instrumented) != len(engines):
        raise RuntimeError(f"OpenTelemetry's instrumentor returned {instrumented!r}")
    # Its before listener has retval=True, its after one not: one of each on the connection.
    return [
        QueryContender(OTEL, listeners(workload(engine), 1), spans=spans)
        for workload, engine in zip(workloads, engines, strict=True)
    ]


def uninstrument_otel() -> None:
    SQLAlchemyInstrumentor().uninstrument()
