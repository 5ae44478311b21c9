"""A new signal is a receiver: added to the app's Instrumentation, it sees every request without timing changing."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import slipstream
from slipstream import Receiver, RequestRecord, Settings
from tests.support import asgi_client

pytestmark = pytest.mark.anyio


class Ledger(Receiver):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int, int]] = []

    def response_started(self, record: RequestRecord, headers: list[tuple[bytes, bytes]]) -> None:
        headers.append((b"x-ledger", record.method.encode()))

    def request_finished(self, record: RequestRecord) -> None:
        self.seen.append((record.method, record.label, record.status, record.response_size))


class Broken(Receiver):
    def request_started(self, record: RequestRecord) -> None:
        raise RuntimeError("a receiver with a bug")

    def response_started(self, record: RequestRecord, headers: list[tuple[bytes, bytes]]) -> None:
        headers.append((b"x-half-written", b"1"))
        raise RuntimeError("a receiver with a bug")

    def request_finished(self, record: RequestRecord) -> None:
        raise RuntimeError("a receiver with a bug")


async def test_a_receiver_sees_every_finished_request_and_may_add_headers() -> None:
    async def item(request: Request) -> Response:
        return PlainTextResponse("item")

    app = Starlette(routes=[Route("/items/{item_id}", item)])
    instrumentation = slipstream.install(app, Settings(metrics_port=None), registry=CollectorRegistry())
    ledger = Ledger()
    instrumentation.add_receiver(Broken())
    instrumentation.add_receiver(ledger)
    async with asgi_client(app) as client:
        response = await client.get("/items/1", headers={"accept-encoding": "identity"})
        missing = await client.get("/nowhere")
    assert response.headers["x-ledger"] == "GET" and response.text == "item"
    assert missing.status_code == 404
    # The broken receiver's errors are logged; the request and the receivers after it go on.
    assert ledger.seen == [("GET", "/items/{item_id}", 200, 4), ("GET", "__unmatched__", 404, len(missing.content))]
