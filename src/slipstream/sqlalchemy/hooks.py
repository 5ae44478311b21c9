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
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from opentelemetry import trace
from prometheus_client import Histogram
from sqlalchemy.engine import Engine

from slipstream.exporters.metrics import LabelledChildren
from slipstream.exporters.otel import mark_failed
from slipstream.instrumentation import Instrumentation
from slipstream.record import current_record
from slipstream.sqlalchemy.fingerprint import Fingerprint, fingerprint
from slipstream.sqlalchemy.n_plus_one import DatabaseRequests, note_statement
from slipstream.sqlalchemy.pool import PoolCollector, PoolWatch
from slipstream.sqlalchemy.slow import SlowQueries, SlowStatements
from slipstream.sqlalchemy.spans import StatementSpans, database_system

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from slipstream.sqlalchemy.index_hints import IndexAdvisor

log = logging.getLogger("slipstream.sql")

_METHODS = ("do_execute", "do_executemany", "do_execute_no_params")
# Distinct statement strings remembered per engine with their fingerprint (SQLAlchemy's own cache is about as big).
_STATEMENTS = 4096
# Where an instrumented dialect keeps its hooks: the engine owns them, so nothing here is a module global.
_HOOKS_ATTRIBUTE = "_slipstream_hooks"


class EngineHooks:
    """The instrumentation of one engine; ``instrument_sqlalchemy`` makes it, ``uninstrument_sqlalchemy`` undoes it."""

    def __init__(
        self,
        engine: Engine,
        instrumentation: Instrumentation,
        *,
        slow_query_threshold: float,
        n_plus_one_threshold: int,
        spans: bool,
        index_advisor: IndexAdvisor | None = None,
    ) -> None:
        # Weak: the hooks live on the engine's dialect and must not keep the engine alive.
        self._engine = weakref.ref(engine)
        self.instrumentation = instrumentation
        self.system = database_system(engine)
        self.slow_threshold = slow_query_threshold
        self.n_plus_one_threshold = n_plus_one_threshold
        tracing = spans and instrumentation.settings.tracing_enabled
        self.spans = StatementSpans(engine, instrumentation.telemetry if tracing else None)
        self.index_advisor = index_advisor
        metrics = instrumentation.metrics
        self.durations: LabelledChildren[Histogram] = LabelledChildren(metrics.db_operation_duration.labels)
        self.errors = metrics.db_errors
        if instrumentation.slow_queries is None:
            instrumentation.slow_queries = SlowQueries()
        self.slow = SlowStatements(self.system, metrics.db_slow_queries, instrumentation.slow_queries, index_advisor)
        self.pool = PoolWatch(engine, metrics)
        self._statements: dict[str, tuple[Fingerprint, Histogram]] = {}
        self._originals: dict[str, Callable[..., Any]] = {}

    @property
    def engine(self) -> Engine:
        engine = self._engine()
        if engine is None:  # pragma: no cover - the hooks die with their engine
            raise ReferenceError("the instrumented engine is gone")
        return engine

    # Installing and removing -------------------------------------------------------------------------------

    def install(self) -> None:
        dialect = self.engine.dialect
        for name in _METHODS:
            original = getattr(dialect, name)
            self._originals[name] = original
            setattr(dialect, name, self._wrap(original, name))
        setattr(dialect, _HOOKS_ATTRIBUTE, self)
        self.pool.install(self.engine.pool)

    def remove(self) -> None:
        dialect = self.engine.dialect
        for name in self._originals:
            # The originals are the class's methods: dropping the instance attribute restores them.
            dialect.__dict__.pop(name, None)
        dialect.__dict__.pop(_HOOKS_ATTRIBUTE, None)
        self._originals.clear()
        PoolWatch.remove(self.engine.pool)
        self.instrumentation.engines.discard(self)
        if self.index_advisor is not None:
            self.index_advisor.close()

    # Statements ---------------------------------------------------------------------------------------------

    def _wrap(self, original: Callable[..., Any], name: str) -> Callable[..., Any]:
        hooks = self
        perf_counter = time.perf_counter

        def timed(cursor: Any, statement: str, *rest: Any) -> Any:
            span = hooks.spans.start(hooks.lookup(statement)[0]) if hooks.spans.possible else None
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

    def lookup(self, statement: str) -> tuple[Fingerprint, Histogram]:
        """The statement's fingerprint and histogram child: one dict lookup for statements seen before."""
        found = self._statements.get(statement)
        if found is None:
            print_ = fingerprint(statement)
            found = (print_, self.durations[self.system, print_.operation, print_.collection or ""])
            if len(self._statements) < _STATEMENTS:
                self._statements[statement] = found
        return found

    def finished(self, statement: str, rest: tuple[Any, ...], seconds: float, span: trace.Span | None) -> None:
        try:
            print_, child = self.lookup(statement)
            child.observe(seconds)
            record = current_record()
            if record is not None:
                note_statement(record, print_, seconds, self.n_plus_one_threshold)
            if seconds >= self.slow_threshold:
                self.slow.record(print_, statement, rest, seconds)
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
                mark_failed(span, error)
                span.end()
        except Exception:
            log.exception("slipstream: recording a failed statement failed")


def instrument_sqlalchemy(
    engine: Engine | AsyncEngine,
    *,
    instrumentation: Instrumentation | None = None,
    slow_query_threshold: float | None = None,
    spans: bool | None = None,
    n_plus_one_threshold: int | None = None,
    index_hints: bool | None = None,
) -> EngineHooks:
    """Instrument ``engine`` (an Engine or AsyncEngine) for ``instrumentation`` (the app's; by default a new one).

    Options left out are the instrumentation's settings (``db_*`` fields). A second call for an engine already
    instrumented returns the first hooks, unless it names another app's instrumentation: that is an error (each
    statement would be counted twice). Pass the app's instrumentation (what ``install()`` returned) so that its
    requests report their query counts and N+1 findings; ``install(app, engines=[...])`` does.
    """
    sync_engine = _sync_engine(engine)
    found = _hooks_of(sync_engine)
    if found is not None:
        if instrumentation is None or found.instrumentation is instrumentation:
            return found
        raise ValueError(f"{sync_engine!r} is instrumented for another app already; uninstrument_sqlalchemy it first")
    if instrumentation is None:
        instrumentation = Instrumentation()
    s = instrumentation.settings
    advisor = None
    if s.db_index_hints if index_hints is None else index_hints:
        from slipstream.sqlalchemy.index_hints import IndexAdvisor

        advisor = IndexAdvisor()
    hooks = EngineHooks(
        sync_engine,
        instrumentation,
        slow_query_threshold=s.db_slow_query_threshold if slow_query_threshold is None else slow_query_threshold,
        n_plus_one_threshold=s.db_n_plus_one_threshold if n_plus_one_threshold is None else n_plus_one_threshold,
        spans=s.db_spans if spans is None else spans,
        index_advisor=advisor,
    )
    if not any(isinstance(receiver, DatabaseRequests) for receiver in instrumentation.receivers):
        # The app's first engine: requests now report their query count (zero included) and their N+1 findings.
        instrumentation.add_receiver(DatabaseRequests(instrumentation.metrics))
    PoolCollector.of(instrumentation.registry).pools.add(hooks.pool)
    instrumentation.engines.add(hooks)
    hooks.install()
    return hooks


def uninstrument_sqlalchemy(engine: Engine | AsyncEngine) -> None:
    """Remove the instrumentation of ``engine``, if any."""
    hooks = _hooks_of(_sync_engine(engine))
    if hooks is not None:
        hooks.remove()


def _sync_engine(engine: Engine | AsyncEngine) -> Engine:
    # Duck-typed: checking isinstance(engine, AsyncEngine) would import the asyncio extension, which needs greenlet.
    sync_engine = getattr(engine, "sync_engine", None)
    return sync_engine if isinstance(sync_engine, Engine) else cast(Engine, engine)


def _hooks_of(engine: Engine) -> EngineHooks | None:
    found = engine.dialect.__dict__.get(_HOOKS_ATTRIBUTE)
    return found if isinstance(found, EngineHooks) else None
