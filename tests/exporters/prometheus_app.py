"""An app for ``python -m uvicorn --lifespan on``, in its own process because it sets the global tracer provider.

The metrics port comes from PROMETHEUS_APP_METRICS_PORT. Every response carries the trace id of its request's
span in X-Trace-Id, so a test can match the exemplars Prometheus stores against the requests it really made.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from slipstream import Settings, install

# No exporter: sampled spans are enough for TimingMiddleware to attach trace ids to its duration histogram.
trace.set_tracer_provider(TracerProvider())


def trace_headers() -> dict[str, str]:
    # no-store: never answered from the cache, as every response must name its own request's trace.
    trace_id = trace.get_current_span().get_span_context().trace_id
    return {"x-trace-id": f"{trace_id:032x}", "cache-control": "no-store"}


async def item(request: Request) -> Response:
    return JSONResponse({"item_id": request.path_params["item_id"]}, headers=trace_headers())


async def broken(request: Request) -> Response:
    return PlainTextResponse("the backend is down", status_code=500, headers=trace_headers())


app = Starlette(routes=[Route("/items/{item_id}", item), Route("/broken", broken)])
install(
    app,
    Settings(
        metrics_port=int(os.environ["PROMETHEUS_APP_METRICS_PORT"]), metrics_host="127.0.0.1", report_enabled=True
    ),
)
