"""``instrument_sqlalchemy(engine)``: statement latency, errors, slow queries, N+1 findings, pool use and spans.

The hook is the engine's dialect: its ``do_execute``, ``do_executemany`` and ``do_execute_no_params`` are wrapped
on that engine's dialect instance, so each statement costs one Python call around the driver's own, where a
``before_cursor_execute`` / ``after_cursor_execute`` listener pair costs two event dispatches (see bench/). The
wrapper times exactly the driver call; an AsyncEngine is instrumented through its ``sync_engine``, whose dialect
awaits the driver inside SQLAlchemy's greenlet, so the same wrapper times it too.

Nothing here may fail a statement: the bookkeeping after the driver call is guarded, and its errors are logged.
Parameter values are never logged, exported or put on spans; statements are reduced to fingerprints first.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import sqlalchemy
from opentelemetry import trace
from prometheus_client import REGISTRY, CollectorRegistry, Histogram
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from slipstream.config import Settings
from slipstream.exporters.metrics import metrics_for
from slipstream.exporters.otel import APP_PROVIDERS, Telemetry, TracerSource
from slipstream.record import MAX_FINGERPRINTS, DatabaseHooks, current_record
from slipstream.sqlalchemy.fingerprint import Fingerprint, fingerprint
from slipstream.sqlalchemy.pool import pool_collector
from slipstream.sqlalchemy.slow import caller_location, slow_queries

log = logging.getLogger("slipstream.sql")

# OpenTelemetry's db.system.name values for SQLAlchemy's dialect names.
_SYSTEMS = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mariadb",
    "mssql": "microsoft.sql_server",
    "oracle": "oracle.db",
}
_METHODS = ("do_execute", "do_executemany", "do_execute_no_params")
# Distinct statement strings remembered per engine with their fingerprint (SQLAlchemy's own cache is about as big).
_STATEMENTS = 4096


class EngineHooks:
    """The instrumentation of one engine; ``instrument_sqlalchemy`` makes it, ``uninstrument_sqlalchemy`` undoes it."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        registry: CollectorRegistry,
        tracer: trace.Tracer | Telemetry | None,
        index_advisor: Any = None,
    ) -> None:
        # Weak: the registry of instrumented engines is keyed by the engine, and must not keep it alive.
        self._engine = weakref.ref(engine)
        dialect = engine.dialect
        self.system = _SYSTEMS.get(dialect.name, dialect.name)
        url = engine.url
        self.namespace = url.database
        self.server = (url.host, url.port)
        self.pool_name = url.render_as_string(hide_password=True)
        self.slow_threshold = settings.db_slow_query_threshold
        self.n_plus_one_threshold = settings.db_n_plus_one_threshold
        self._tracer = TracerSource(tracer if settings.db_spans else None)
        self.index_advisor = index_advisor
        metrics = metrics_for(registry)
        self.durations = metrics.db_operation_duration
        self.errors = metrics.db_errors
        self.slow_counter = metrics.db_slow_queries
        self.wait = metrics.db_connection_wait.labels(self.pool_name)
        self.timeouts = metrics.db_connection_timeouts.labels(self.pool_name)
        self._children: dict[tuple[str, str | None], Histogram] = {}
        self._statements: dict[str, tuple[Fingerprint, Histogram]] = {}
        self._originals: dict[str, Callable[..., Any]] = {}
        self._pool_lock = threading.Lock()
        self.pending = 0
        pool_collector(registry).engines.add(self)

    @property
    def engine(self) -> Engine:
        engine = self._engine()
        if engine is None:  # pragma: no cover - the hooks die with their engine
            raise ReferenceError("the instrumented engine is gone")
        return engine

    @property
    def tracer(self) -> trace.Tracer | None:
        return self._tracer.get()

    # Installing and removing -------------------------------------------------------------------------------

    def install(self) -> None:
        dialect = self.engine.dialect
        for name in _METHODS:
            original = getattr(dialect, name)
            self._originals[name] = original
            setattr(dialect, name, self._wrap(original, name))
        self._wrap_pool(self.engine.pool)

    def remove(self) -> None:
        dialect = self.engine.dialect
        for name in self._originals:
            # The originals are the class's methods: dropping the instance attribute restores them.
            dialect.__dict__.pop(name, None)
        self._originals.clear()
        pool = self.engine.pool
        pool.__dict__.pop("_do_get", None)
        pool.__dict__.pop("recreate", None)
        if self.index_advisor is not None:
            self.index_advisor.close()

    # Statements ---------------------------------------------------------------------------------------------

    def _wrap(self, original: Callable[..., Any], name: str) -> Callable[..., Any]:
        hooks = self
        perf_counter = time.perf_counter

        def timed(cursor: Any, statement: str, *rest: Any) -> Any:
            span = hooks.start_span(statement) if hooks._tracer.possible else None
            start = perf_counter()
            try:
                result = original(cursor, statement, *rest)
            except BaseException as error:
                hooks.failed(statement, perf_counter() - start, error, span)
                raise
            hooks.finished(statement, rest, perf_counter() - start, span)
            return result

        timed.__name__ = name
        return timed

    def child(self, print_: Fingerprint) -> Histogram:
        key = (print_.operation, print_.collection)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = self.durations.labels(self.system, print_.operation, print_.collection or "")
        return found

    def lookup(self, statement: str) -> tuple[Fingerprint, Histogram]:
        """The statement's fingerprint and histogram child: one dict lookup for statements seen before."""
        found = self._statements.get(statement)
        if found is None:
            print_ = fingerprint(statement)
            found = (print_, self.child(print_))
            if len(self._statements) < _STATEMENTS:
                self._statements[statement] = found
        return found

    def finished(self, statement: str, rest: tuple[Any, ...], seconds: float, span: trace.Span | None) -> None:
        try:
            print_, child = self.lookup(statement)
            child.observe(seconds)
            record = current_record()
            if record is not None:
                record.db_queries += 1
                record.db_time += seconds
                seen = record.fingerprints
                count = seen.get(print_.text)
                if count is not None:
                    seen[print_.text] = count = count + 1
                    if (
                        count == self.n_plus_one_threshold
                        and print_.operation == "SELECT"
                        and print_.text not in record.n_plus_one
                    ):
                        record.n_plus_one[print_.text] = caller_location()
                elif len(seen) < MAX_FINGERPRINTS:
                    seen[print_.text] = 1
            if seconds >= self.slow_threshold and print_.operation != "EXPLAIN":
                # (the index advisor's own plan commands are not slow queries of the app)
                self.slow(print_, statement, rest, seconds)
            if span is not None:
                span.end()
        except Exception:
            log.exception("slipstream: recording a statement failed (the statement itself succeeded)")

    def failed(self, statement: str, seconds: float, error: BaseException, span: trace.Span | None) -> None:
        try:
            _, child = self.lookup(statement)
            child.observe(seconds)
            self.errors.labels(self.system, type(error).__qualname__).inc()
            record = current_record()
            if record is not None:
                record.db_queries += 1
                record.db_time += seconds
            if span is not None:
                span.record_exception(error)
                span.set_attribute("error.type", type(error).__qualname__)
                span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__qualname__))
                span.end()
        except Exception:
            log.exception("slipstream: recording a failed statement failed")

    def start_span(self, statement: str) -> trace.Span | None:
        try:
            tracer = self.tracer
            if tracer is None:
                return None
            print_ = self.lookup(statement)[0]
            attributes: dict[str, Any] = {
                "db.system.name": self.system,
                "db.operation.name": print_.operation,
                "db.query.text": print_.text,
            }
            if print_.collection is not None:
                attributes["db.collection.name"] = print_.collection
            if self.namespace:
                attributes["db.namespace"] = self.namespace
            host, port = self.server
            if host:
                attributes["server.address"] = host
                if port:
                    attributes["server.port"] = port
            name = f"{print_.operation} {print_.collection}" if print_.collection else print_.operation
            return tracer.start_span(name, kind=trace.SpanKind.CLIENT, attributes=attributes)
        except Exception:
            log.exception("slipstream: starting a statement's span failed")
            return None

    def slow(self, print_: Fingerprint, statement: str, rest: tuple[Any, ...], seconds: float) -> None:
        record = current_record()
        route = record.route if record is not None else None
        if route is None and record is not None:
            found = record.scope.get("route")
            route = getattr(found, "path_format", None) or getattr(found, "path", None)
        caller = caller_location()
        self.slow_counter.labels(self.system, print_.operation, print_.collection or "").inc()
        slow_queries.add(print_, self.system, seconds, route)
        log.warning(
            "slow query: %.1f ms %s (route %s, from %s)",
            seconds * 1000,
            print_.text,
            route,
            caller,
            extra={
                "fingerprint": print_.text,
                "duration_ms": round(seconds * 1000, 3),
                "db_system_name": self.system,
                "http_route": route,
                "caller": caller,
            },
        )
        advisor = self.index_advisor
        if advisor is not None and print_.operation == "SELECT" and rest:
            # do_execute / do_executemany pass (parameters, context); do_execute_no_params passes (context,).
            context = rest[-1]
            parameters = rest[0] if len(rest) > 1 else ()
            connection = getattr(context, "root_connection", None)
            if connection is not None:
                advisor.consider(connection, print_, statement, parameters)

    # The pool -----------------------------------------------------------------------------------------------

    def _wrap_pool(self, pool: Any) -> None:
        original = getattr(pool, "_do_get", None)
        if original is None or "_do_get" in pool.__dict__:
            return
        hooks = self
        timeout_error = sqlalchemy.exc.TimeoutError

        def _do_get() -> Any:
            with hooks._pool_lock:
                hooks.pending += 1
            start = time.perf_counter()
            try:
                return original()
            except timeout_error:
                hooks.timeouts.inc()
                raise
            finally:
                hooks.wait.observe(time.perf_counter() - start)
                with hooks._pool_lock:
                    hooks.pending -= 1

        pool._do_get = _do_get
        # dispose() replaces the pool with pool.recreate(): the new pool is wrapped too. (An engine_disposed
        # listener would do the same, but any engine listener puts every statement on SQLAlchemy's slower path.)
        recreate = pool.recreate

        def _recreate() -> Any:
            new = recreate()
            hooks._wrap_pool(new)
            return new

        pool.recreate = _recreate

    def pool_state(self) -> tuple[int, int, int | None] | None:
        """(idle, used, max) of the engine's pool now, or None for pools that keep no count (NullPool, StaticPool)."""
        engine = self._engine()
        if engine is None:  # pragma: no cover - collected between the scrape's listing and this call
            return None
        pool = engine.pool
        checkedin = getattr(pool, "checkedin", None)
        checkedout = getattr(pool, "checkedout", None)
        if checkedin is None or checkedout is None:
            return None
        size = getattr(pool, "size", None)
        overflow = getattr(pool, "_max_overflow", None)
        maximum = None
        if callable(size) and isinstance(overflow, int) and overflow >= 0:
            maximum = int(size()) + overflow
        return int(checkedin()), int(checkedout()), maximum


_installed: weakref.WeakKeyDictionary[Engine, EngineHooks] = weakref.WeakKeyDictionary()
_installed_lock = threading.Lock()


def instrument_sqlalchemy(
    engine: Engine | AsyncEngine,
    *,
    settings: Settings | None = None,
    slow_query_threshold: float | None = None,
    spans: bool | None = None,
    n_plus_one_threshold: int | None = None,
    index_hints: bool | None = None,
    registry: CollectorRegistry = REGISTRY,
    tracer: trace.Tracer | Telemetry | None = APP_PROVIDERS,
) -> EngineHooks:
    """Instrument ``engine`` (an Engine or AsyncEngine); a second call for the same engine returns the first hooks.

    Options default to ``settings`` (``db_*`` fields). Spans go to ``tracer``: by default the app's global
    OpenTelemetry provider when it is a real one (none otherwise, at no cost).
    """
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    s = (settings or Settings()).with_options(
        "db_",
        slow_query_threshold=slow_query_threshold,
        spans=spans,
        n_plus_one_threshold=n_plus_one_threshold,
        index_hints=index_hints,
    )
    with _installed_lock:
        found = _installed.get(sync_engine)
        if found is not None:
            return found
        advisor = None
        if s.db_index_hints:
            from slipstream.sqlalchemy.index_hints import IndexAdvisor

            advisor = IndexAdvisor()
        hooks = _installed[sync_engine] = EngineHooks(sync_engine, s, registry, tracer, advisor)
        hooks.install()
        DatabaseHooks.engines += 1
        return hooks


def uninstrument_sqlalchemy(engine: Engine | AsyncEngine) -> None:
    """Remove the instrumentation of ``engine``, if any."""
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    with _installed_lock:
        hooks = _installed.pop(sync_engine, None)
        if hooks is not None:
            DatabaseHooks.engines -= 1
    if hooks is not None:
        hooks.remove()


def index_hints() -> list[dict[str, Any]]:
    """The index hints every instrumented engine's advisor found, for the report."""
    with _installed_lock:
        advisors = [hooks.index_advisor for hooks in _installed.values() if hooks.index_advisor is not None]
    return [
        {
            "table": hint.table,
            "columns": list(hint.columns),
            "fingerprint": hint.fingerprint,
            "plan": hint.plan,
            "db_system_name": hint.dialect,
        }
        for advisor in advisors
        for hint in advisor.hints
    ]
