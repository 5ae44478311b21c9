"""Statement spans: one CLIENT span per statement, child of the request's, with the database semantic conventions."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from sqlalchemy.engine import Engine

from slipstream.exporters.otel import Telemetry, TracerSource
from slipstream.sqlalchemy.fingerprint import Fingerprint

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


def database_system(engine: Engine) -> str:
    """OpenTelemetry's ``db.system.name`` for the engine's dialect (the dialect's own name when it has none)."""
    return _SYSTEMS.get(engine.dialect.name, engine.dialect.name)


class StatementSpans:
    """Starts one engine's statement spans with the tracer ``telemetry`` gives (None: no spans, at no cost)."""

    def __init__(self, engine: Engine, telemetry: Telemetry | None) -> None:
        self.source = TracerSource(telemetry)
        url = engine.url
        self.attributes: dict[str, Any] = {"db.system.name": database_system(engine)}
        if url.database:
            self.attributes["db.namespace"] = url.database
        if url.host:
            self.attributes["server.address"] = url.host
            if url.port:
                self.attributes["server.port"] = url.port

    @property
    def possible(self) -> bool:
        return self.source.possible

    def start(self, print_: Fingerprint) -> trace.Span | None:
        try:
            tracer = self.source.get()
            if tracer is None:
                return None
            attributes = {
                **self.attributes,
                "db.operation.name": print_.operation,
                "db.query.text": print_.text,
            }
            if print_.collection is not None:
                attributes["db.collection.name"] = print_.collection
            name = f"{print_.operation} {print_.collection}" if print_.collection else print_.operation
            return tracer.start_span(name, kind=trace.SpanKind.CLIENT, attributes=attributes)
        except Exception:
            log.exception("slipstream: starting a statement's span failed")
            return None
