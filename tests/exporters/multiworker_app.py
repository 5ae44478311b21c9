"""An app for ``uvicorn --workers 2`` with PROMETHEUS_MULTIPROC_DIR set: /pid answers with its worker's pid."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from slipstream import Settings, install


async def worker_pid(request: Request) -> Response:
    return PlainTextResponse(str(os.getpid()))


app = Starlette(routes=[Route("/pid", worker_pid)])
# Every request reaches a worker (the cache counts one bypass each); the sidecar serves the metrics, not the workers.
install(
    app,
    Settings(
        metrics_port=None,
        metrics_multiprocess_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"],
        cache_exclude_paths=(r"/pid\Z",),
    ),
)
