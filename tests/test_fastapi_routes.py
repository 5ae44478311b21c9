"""A real FastAPI app with routers included under a prefix: every signal names the same full route template."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, create_engine, text

import slipstream
from slipstream import Instrumentation, Settings
from tests.support import asgi_client

pytestmark = pytest.mark.anyio
ITEMS = "/api/v1/items/"
ITEM = "/api/v1/items/{item_id}"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'items.db'}")
    with engine.begin() as connection:
        connection.execute(text("create table items (id integer primary key, name text)"))
        connection.execute(text("insert into items (name) values ('one'), ('two')"))
    yield engine
    engine.dispose()


def build(engine: Engine) -> tuple[FastAPI, Instrumentation]:
    router = APIRouter()

    @router.get("/items/")
    def list_items() -> list[str]:  # a sync endpoint: it runs in the threadpool
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(text("select name from items order by id"))]

    @router.get("/items/{item_id}")
    def read_item(item_id: int, response: Response) -> str:
        with engine.connect() as connection:
            name = connection.execute(text("select name from items where id = :id"), {"id": item_id}).scalar_one()
        response.headers["etag"] = '"v1"'
        return str(name)

    @router.put("/items/{item_id}")
    def write_item(item_id: int) -> str:
        return "written"

    app = FastAPI()
    app.include_router(router, prefix="/api/v1")
    settings = Settings(metrics_port=None, report_enabled=True, db_slow_query_threshold=0)
    instrumentation = slipstream.install(app, settings, registry=CollectorRegistry(), engines=[engine])
    return app, instrumentation


def requests(instrumentation: Instrumentation, route: str, status: str, method: str = "GET") -> float:
    labels = {"http_request_method": method, "http_route": route, "http_response_status_code": status}
    return instrumentation.registry.get_sample_value("http_server_request_duration_seconds_count", labels) or 0.0


async def test_slow_queries_name_the_prefixed_route_as_the_metrics_do(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    app, instrumentation = build(engine)
    with caplog.at_level(logging.WARNING, logger="slipstream.sql"):
        async with asgi_client(app) as client:
            assert (await client.get(ITEMS)).json() == ["one", "two"]
    assert requests(instrumentation, ITEMS, "200") == 1
    logged = [r for r in caplog.records if r.getMessage().startswith("slow query")]
    assert logged and {getattr(r, "http_route", None) for r in logged} == {ITEMS}
    assert instrumentation.report is not None
    rows = instrumentation.report.snapshot()["slow_queries"]
    assert {row["route"] for row in rows if "from items" in row["fingerprint"]} == {ITEMS}


async def test_a_failed_precondition_is_labelled_with_the_included_route(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    app, instrumentation = build(engine)
    with caplog.at_level(logging.WARNING, logger="slipstream.sql"):
        async with asgi_client(app) as client:
            refused = await client.put("/api/v1/items/1", headers={"if-match": '"v0"'})
            written = await client.put("/api/v1/items/1", headers={"if-match": '"v1"'})
    assert refused.status_code == 412 and written.text == '"written"'
    assert requests(instrumentation, ITEM, "412", "PUT") == 1
    assert requests(instrumentation, ITEM, "200", "PUT") == 1
    assert requests(instrumentation, "__unmatched__", "412", "PUT") == 0
    # The probe GETs the item to learn its ETag: its statement is logged under the route too, never "None".
    probes = [r for r in caplog.records if r.getMessage().startswith("slow query") and "where id" in r.getMessage()]
    assert len(probes) == 2 and {getattr(r, "http_route", None) for r in probes} == {ITEM}
