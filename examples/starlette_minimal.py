"""A minimal Starlette app adding slipstream's middlewares one by one with ``add_middleware``, without ``install()``.

    python examples/starlette_minimal.py --port 8000

Each middleware works alone, with keyword options whose defaults are the settings' defaults. Starlette runs the
middleware added last first, so they are added innermost first: conditional requests (ETags, 304), compression,
then the response cache outermost, which stores the compressed variants with their ETag.
"""

from __future__ import annotations

import argparse

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from slipstream import CacheMiddleware, CompressionMiddleware, ConditionalMiddleware

ITEMS = [{"id": n, "name": f"item {n}", "tags": ["fast", "small", "cached"]} for n in range(50)]


async def items(request: Request) -> Response:
    return JSONResponse(ITEMS, headers={"cache-control": "public, max-age=60"})


app = Starlette(routes=[Route("/items", items)])
app.add_middleware(ConditionalMiddleware)
app.add_middleware(CompressionMiddleware, minimum_size=256)
# Hits are encoded by the cache itself, so it is told the same minimum size.
app.add_middleware(CacheMiddleware, minimum_compress_size=256, max_entry_bytes=1024 * 1024)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    base = f"http://{args.host}:{args.port}"
    print(f"curl -si --compressed {base}/items   # br, an ETag, X-Cache: MISS then HIT", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
