"""Two apps in one process, each installed with its own registry and settings, never see each other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, create_engine, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import slipstream
from slipstream import Instrumentation, Settings, cached, timed
from tests.support import asgi_client

pytestmark = pytest.mark.anyio


@cached(ttl=60)
async def greeting(name: str) -> str:
    return f"hello {name}"


def build(name: str, engine: Engine, buckets: tuple[float, ...]) -> tuple[Starlette, Instrumentation]:
    async def page(request: Request) -> Response:
        with timed(f"{name} render"):
            with engine.connect() as connection:
                for _ in range(6):  # an N+1 loop
                    connection.execute(text("select 1 from pages where id = :id"), {"id": 1}).all()
            body = await greeting(name)
        return PlainTextResponse(body, headers={"cache-control": "max-age=60"})

    app = Starlette(routes=[Route(f"/{name}/{{page}}", page)])
    settings = Settings(metrics_port=None, report_enabled=True, timing_buckets=buckets, db_slow_query_threshold=0)
    return app, slipstream.install(app, settings, registry=CollectorRegistry(), engines=[engine])


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    made = []
    for name in ("first", "second"):
        engine = create_engine(f"sqlite:///{tmp_path / name}.db")
        with engine.begin() as connection:
            connection.execute(text("create table pages (id integer primary key)"))
            connection.execute(text("insert into pages values (1)"))
        made.append(engine)
    yield made[0], made[1]
    for engine in made:
        engine.dispose()


def samples(instrumentation: Instrumentation, name: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for family in instrumentation.registry.collect()
        for sample in family.samples
        if sample.name == name and sample.value
    ]


async def test_requests_queries_operations_and_cache_entries_stay_with_their_app(
    engines: tuple[Engine, Engine],
) -> None:
    first, first_instrumentation = build("first", engines[0], (0.1, 1.0))
    second, second_instrumentation = build("second", engines[1], (0.05, 0.5, 5.0))
    async with asgi_client(first) as one, asgi_client(second) as two:
        assert (await one.get("/first/a")).text == "hello first"
        assert (await one.get("/first/a")).headers["x-cache"] == "HIT"
        assert (await two.get("/second/b")).headers["x-cache"] == "MISS"
    apps = {"first": first_instrumentation, "second": second_instrumentation}
    for name, instrumentation in apps.items():
        other = "second" if name == "first" else "first"
        routes = {s["http_route"] for s in samples(instrumentation, "http_server_request_duration_seconds_count")}
        assert routes == {f"/{name}/{{page}}"}
        buckets = {s["le"] for s in samples(instrumentation, "http_server_request_duration_seconds_bucket")}
        assert buckets <= {"0.1", "1.0", "0.05", "0.5", "5.0", "+Inf"} and ("0.05" in buckets) == (name == "second")
        assert {s["operation"] for s in samples(instrumentation, "slipstream_operation_duration_seconds_count")} == {
            f"{name} render"
        }
        # One request of each app reached its app (the first's second request was a hit): six statements each.
        queries = instrumentation.registry.get_sample_value(
            "db_client_operation_duration_seconds_count",
            {"db_system_name": "sqlite", "db_operation_name": "SELECT", "db_collection_name": "pages"},
        )
        assert queries == 6
        assert {s["http_route"] for s in samples(instrumentation, "slipstream_db_n_plus_one_total")} == {
            f"/{name}/{{page}}"
        }
        assert instrumentation.slow_queries is not None
        assert {row["route"] for row in instrumentation.slow_queries.snapshot()} == {f"/{name}/{{page}}"}
        assert [hooks.engine for hooks in instrumentation.engines] == [engines[0 if name == "first" else 1]]
        assert instrumentation.report is not None
        assert [row["route"] for row in instrumentation.report.snapshot()["slowest_routes"]] == [f"/{name}/{{page}}"]
        cache = instrumentation.cache
        assert cache is not None
        other_page = f"http://testserver/{other}/{'b' if other == 'second' else 'a'}"
        assert cache.lookup_memory(f"http://testserver/{name}/{'a' if name == 'first' else 'b'}", []) is not None
        assert cache.lookup_memory(other_page, []) is None
