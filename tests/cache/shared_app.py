"""An app run in separate uvicorn processes sharing one Redis (SLIPSTREAM_CACHE_REDIS_URL); counts its calls there."""

from __future__ import annotations

import asyncio
import os

import redis.asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import slipstream

# The calls are counted in the same Redis (or Redis Cluster) the cache uses.
_url = os.environ["SLIPSTREAM_CACHE_REDIS_URL"]
counter: redis.asyncio.Redis | redis.asyncio.RedisCluster = (
    redis.asyncio.RedisCluster.from_url(_url.replace("redis+cluster://", "redis://", 1))
    if _url.startswith("redis+cluster://")
    else redis.asyncio.Redis.from_url(_url)
)


async def slow(request: Request) -> Response:
    await counter.incr("test:app-calls")
    await asyncio.sleep(0.3)  # long enough for every concurrent request to arrive while it runs
    headers = {"cache-control": "max-age=600", "surrogate-key": "report"}
    return PlainTextResponse("the report " * 200, headers=headers)


async def purge(request: Request) -> Response:
    removed = await request.app.state.slipstream_cache.purge_tags(request.path_params["tag"])
    return PlainTextResponse(f"purged {removed}\n")


app = Starlette(routes=[Route("/report", slow), Route("/purge/{tag}", purge, methods=["POST"])])
slipstream.install(app)
