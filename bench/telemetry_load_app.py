"""The apps bench_load.py serves with uvicorn (``--factory --app-dir bench``): a cacheable 60 KB HTML page and an
uncached small JSON route, bare or under slipstream's whole stack."""

from __future__ import annotations

import functools
import random
from collections import Counter
from dataclasses import replace

from starlette.applications import Starlette
from starlette.routing import BaseRoute

import slipstream
from cache_contenders import make_html_page, make_rows, routes
from telemetry_contenders import PAGE_PATH, OneSpan, item_route
from telemetry_spans import SpanPipeline, global_span_pipeline


def serving_routes() -> list[BaseRoute]:
    """``/page.html`` (bench_cache.py's page, ``Cache-Control: public, max-age=3600``) and ``/items/{item_id}``."""
    rng = random.Random(20240611)
    calls = Counter[str]()
    page = [route for route in routes(make_rows(rng), make_html_page(rng), calls) if route.path == PAGE_PATH]
    return [*page, item_route(calls)]


@functools.cache
def process_pipeline() -> SpanPipeline:
    """The process's one global pipeline (OpenTelemetry keeps the first global provider set), made at first use."""
    return global_span_pipeline()


def bare_app() -> Starlette:
    return Starlette(routes=serving_routes())


def full_app() -> Starlette:
    """``install`` with everything on (the report too; no metrics port, nothing listens but the app; the multiprocess
    directory from the environment when several workers run), its spans going to an SDK provider with a
    BatchSpanProcessor over an exporter that discards them."""
    process_pipeline()
    app = Starlette(routes=serving_routes())
    slipstream.install(app, replace(slipstream.Settings.from_env(), metrics_port=None, report_enabled=True))
    return app


def metrics_app(*, tracing: bool = True) -> Starlette:
    """The same stack without a tracer provider: what an app that has not set up tracing gets (no spans). In a
    process that has a global provider, ``tracing=False`` gets the same (slipstream asks for no tracer)."""
    app = Starlette(routes=serving_routes())
    settings = replace(slipstream.Settings.from_env(), metrics_port=None, report_enabled=True, tracing_enabled=tracing)
    slipstream.install(app, settings)
    return app


def floor_app() -> OneSpan:
    """The bare app inside the least a tracing middleware can do with the SDK (bench_telemetry.py's floor): one
    current SERVER span with slipstream's attributes, ended as the response completes, to the same pipeline."""
    return OneSpan(bare_app(), process_pipeline().provider.get_tracer("bench"))
