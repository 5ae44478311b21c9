"""HTTP behaviour of a real FastAPI app through ``install()``: the app's own answers are not replaced by ours."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Header, HTTPException, Response
from prometheus_client import CollectorRegistry

import slipstream
from slipstream import Settings
from tests.support import asgi_client

pytestmark = pytest.mark.anyio


def user(authorization: Annotated[str | None, Header()] = None) -> str:
    """The caller: no token is 401 (with a challenge), an unknown one 403."""
    if authorization is None:
        raise HTTPException(401, "log in first", headers={"WWW-Authenticate": 'Bearer realm="items"'})
    if authorization not in ("Bearer reader", "Bearer writer"):
        raise HTTPException(403, "unknown user")
    return authorization.removeprefix("Bearer ")


def writer(name: Annotated[str, Depends(user)]) -> str:
    if name != "writer":
        raise HTTPException(403, "read only")
    return name


class Items:
    """A FastAPI app whose GET and PUT of an item need a token (the dependencies above), counting writes."""

    def __init__(self) -> None:
        self.writes = 0
        self.app = FastAPI()

        @self.app.get("/items/{item_id}")
        def read_item(item_id: int, response: Response, name: Annotated[str, Depends(user)]) -> str:
            response.headers["etag"] = '"v1"'
            return f"item {item_id}"

        @self.app.put("/items/{item_id}")
        def write_item(item_id: int, name: Annotated[str, Depends(writer)]) -> str:
            self.writes += 1
            return "written"

        slipstream.install(self.app, Settings(metrics_port=None), registry=CollectorRegistry())


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), ("Bearer stranger", 403)],
    ids=["no-credentials", "forbidden"],
)
@pytest.mark.parametrize("precondition", [{"if-match": '"v1"'}, {"if-match": '"v0"'}, {"if-match": "*"}])
async def test_a_refused_write_is_answered_by_the_app_not_412(
    authorization: str | None, status: int, precondition: dict[str, str]
) -> None:
    items = Items()
    headers = dict(precondition)
    if authorization is not None:
        headers["authorization"] = authorization
    async with asgi_client(items.app) as client:
        result = await client.put("/items/1", headers=headers)
    assert result.status_code == status
    if status == 401:
        assert result.headers["www-authenticate"] == 'Bearer realm="items"'
    assert items.writes == 0


async def test_preconditions_still_guard_writes_the_caller_may_make() -> None:
    items = Items()
    writer = {"authorization": "Bearer writer"}
    async with asgi_client(items.app) as client:
        stale = await client.put("/items/1", headers={**writer, "if-match": '"v0"'})
        fresh = await client.put("/items/1", headers={**writer, "if-match": '"v1"'})
        missing = await client.put("/items/x", headers={**writer, "if-match": '"v1"'})
    assert (stale.status_code, fresh.status_code, items.writes) == (412, 200, 1)
    assert missing.status_code == 422  # FastAPI's own validation answer: the GET failing is not "no item"
