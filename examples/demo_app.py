"""The demo: a small Starlette app with everything slipstream offers switched on.

Run it with `make demo`, or `python examples/demo_app.py --port 8000`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import logging
import os
import random
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import ForeignKey, String, create_engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

import slipstream

# The stand-in LLM API next to this file, importable however the demo is started (a script, uvicorn's import
# string, a test loading it by path).
sys.path.append(str(Path(__file__).resolve().parent))
import demo_model

_rng = random.Random(42)
_WORDS = "fast correct complete stream cache etag brotli gzip zstd vary header chunk client server".split()
ITEMS = [
    {
        "id": i,
        "name": f"{_rng.choice(_WORDS)}-{i}",
        "price": round(_rng.uniform(1, 500), 2),
        "tags": _rng.sample(_WORDS, 3),
    }
    for i in range(20)
]
ROWS = "\n".join(
    f"<tr><td>{i}</td><td>{' '.join(_rng.choices(_WORDS, k=6))}</td><td>{_rng.randint(1, 10**6)}</td></tr>"
    for i in range(900)
)
PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>slipstream demo</title></head>
<body><h1>slipstream demo</h1>
<p>Open DevTools, Network tab: this page arrives br- or zstd-encoded, with a weak ETag; reload for a 304.</p>
<ul><li><a href="/api/items">/api/items</a> JSON</li>
<li><a href="/stream">/stream</a> streamed text</li>
<li><a href="/events">/events</a> server-sent events (not compressed)</li>
<li><a href="/logo.png">/logo.png</a></li></ul>
<table>{ROWS}</table></body></html>"""
# A 1x1 PNG: images are on the exclude list and go out as they are.
LOGO = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
NOTES: dict[int, tuple[int, str]] = {1: (1, "first note")}
# The client the app calls its LLM with; install() instruments it.
MODEL = demo_model.model_client()
# About 0.2 s in SQLite: a million rows counted one by one.
SLOW_STATEMENT = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000) SELECT count(*) FROM n"
)


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    books: Mapped[list[Book]] = relationship(lazy="select")


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))


# The embedded default: a SQLite file in a temporary directory, filled at start.
DATABASE_URL = os.environ.get("DEMO_DATABASE_URL") or f"sqlite:///{tempfile.mkdtemp(prefix='slipstream-demo-')}/demo.db"
engine = create_engine(DATABASE_URL)
Base.metadata.create_all(engine)
with Session(engine) as _session:
    if _session.scalar(select(Author.id).limit(1)) is None:
        _session.add_all(
            Author(id=a, name=f"author {a}", books=[Book(title=f"{_rng.choice(_WORDS)} {b}") for b in range(3)])
            for a in range(1, 9)
        )
        _session.commit()


async def home(request: Request) -> Response:
    return HTMLResponse(PAGE, headers={"cache-control": "public, max-age=60, stale-while-revalidate=30"})


async def items(request: Request) -> Response:
    # Surrogate-Key tags the cached response; POST /admin/purge/items drops it on every instance.
    with slipstream.timed("load items"):
        found = list(ITEMS)
    return JSONResponse(found, headers={"cache-control": "max-age=30", "surrogate-key": "items"})


@slipstream.timed("price quote")
async def quote(item: dict[str, object]) -> float:
    await asyncio.sleep(0.02)  # a slow downstream call: the request's bottleneck
    return float(str(item["price"])) * 1.2


def authors(request: Request) -> Response:
    """Built to have an N+1: one SELECT for the authors, then one per author for its books (lazy loading)."""
    with Session(engine) as session:
        rows = [f"{a.name}: {', '.join(b.title for b in a.books)}" for a in session.scalars(select(Author))]
    return PlainTextResponse("\n".join(rows) + "\n")


def authors_eager(request: Request) -> Response:
    """The same page without the N+1: the books come in one more SELECT for all authors."""
    with Session(engine) as session:
        found = session.scalars(select(Author).options(selectinload(Author.books)))
        rows = [f"{a.name}: {', '.join(b.title for b in a.books)}" for a in found]
    return PlainTextResponse("\n".join(rows) + "\n")


def slow_report(request: Request) -> Response:
    """One statement slow enough for the slow-query log (db_slow_query_threshold, 0.1 s by default)."""
    with Session(engine) as session:
        total = session.scalar(text(SLOW_STATEMENT))
    return PlainTextResponse(f"counted to {total}\n")


def broken_report(request: Request) -> Response:
    """A statement on a table that does not exist: a statement error in the metrics, and a 500 for the caller."""
    with Session(engine) as session:
        try:
            session.execute(text("SELECT count(*) FROM sales"))
        except OperationalError:
            return PlainTextResponse("the sales table is missing\n", status_code=500)
    return PlainTextResponse("the sales table exists after all\n")


async def report(request: Request) -> Response:
    """Not cached: each request shows its own operations in Server-Timing."""
    item = ITEMS[int(request.path_params["item_id"]) % len(ITEMS)]
    price = await quote(item)
    with slipstream.timed("render"):
        text = f"{item['name']}: {price:.2f}\n"
    return PlainTextResponse(text)


async def assistant(request: Request) -> Response:
    """Asks the stand-in LLM API: Server-Timing shows the call as `api`, its tokens and cost reach the metrics.
    ?overloaded=1 makes the model answer 503, and this route 502."""
    question = request.query_params.get("q", "what does slipstream measure?")
    answer = await demo_model.ask(MODEL, question, overloaded="overloaded" in request.query_params)
    if answer.status_code != 200:
        return PlainTextResponse(f"the model answered {answer.status_code}\n", status_code=502)
    return PlainTextResponse(answer.json()["choices"][0]["message"]["content"] + "\n")


async def purge(request: Request) -> Response:
    removed = await request.app.state.slipstream_cache.purge_tags(request.path_params["tag"])
    return PlainTextResponse(f"purged {removed} entries\n")


async def stream(request: Request) -> Response:
    async def lines() -> AsyncIterator[str]:
        for i in range(5):
            yield f"line {i}: " + " ".join(_WORDS) + "\n"
            await asyncio.sleep(0.5)

    return StreamingResponse(lines(), media_type="text/plain")


async def events(request: Request) -> Response:
    async def ticks() -> AsyncIterator[str]:
        for i in range(5):
            yield f"event: tick\ndata: {i}\n\n"
            await asyncio.sleep(0.5)

    return StreamingResponse(ticks(), media_type="text/event-stream")


async def logo(request: Request) -> Response:
    return Response(LOGO, media_type="image/png")


async def note(request: Request) -> Response:
    note_id = int(request.path_params["note_id"])
    if request.method == "PUT":
        version = NOTES.get(note_id, (0, ""))[0] + 1
        NOTES[note_id] = (version, (await request.body()).decode(errors="replace"))
    if note_id not in NOTES:
        return PlainTextResponse("no such note\n", status_code=404)
    version, text = NOTES[note_id]
    return PlainTextResponse(text + "\n", headers={"etag": f'"v{version}"'})


app = Starlette(
    routes=[
        Route("/", home),
        Route("/api/items", items),
        Route("/stream", stream),
        Route("/events", events),
        Route("/logo.png", logo),
        Route("/notes/{note_id:int}", note, methods=["GET", "PUT"]),
        Route("/admin/purge/{tag}", purge, methods=["POST"]),
        Route("/quote/{item_id:int}", report),
        Route("/authors", authors),
        Route("/authors/eager", authors_eager),
        Route("/reports/slow", slow_report),
        Route("/reports/broken", broken_report),
        Route("/assistant", assistant),
    ]
)
# Everything on: the environment's settings, plus the JSON report next to /metrics (and the live page at its /), and
# the stand-in model read as an LLM API at the demo's price.
_env = slipstream.Settings.from_env()
_demo_settings = dataclasses.replace(
    _env,
    report_enabled=True,
    gen_ai_hosts=(*_env.gen_ai_hosts, demo_model.HOST),
    gen_ai_prices=(*_env.gen_ai_prices, demo_model.PRICE),
)
settings = slipstream.install(app, _demo_settings, engines=[engine], http_clients=[MODEL]).settings


def instructions(base: str) -> str:
    redis = f" + Redis {settings.cache_redis_url}" if settings.cache_redis_url else ""
    metrics = live = ""
    if settings.metrics_port is not None:
        where = f"http://{settings.metrics_host}:{settings.metrics_port}"
        metrics = (
            f"  curl -s {where}/metrics | grep http_server_request_duration_seconds_count   # by route template\n"
            f"  curl -s {where}/report                                           # slowest routes, hit ratio, savings\n"
        )
        sign_in = " (sign in with the metrics bearer token)" if settings.metrics_bearer_token else ""
        live = f"The live page, refreshed every 5 s (routes, charts, cache, database): {where}/{sign_in}\n"
    return f"""
slipstream demo on {base}  (encodings: {", ".join(settings.compression_encodings)}; cache: in memory{redis})
Try:
  curl -si {base}/ -H 'Accept-Encoding: br' -o /dev/null -w '%{{size_download}} bytes\\n' -D -
  curl -s --compressed {base}/api/items | head -c 200; echo
  curl -si {base}/api/items -H 'Accept-Encoding: zstd;q=1, gzip;q=0.5' -o /dev/null -D -
  curl -si {base}/api/items -H 'Accept-Encoding: identity;q=0'          # 406: nothing acceptable
  curl -sN --compressed {base}/stream                                  # chunks arrive one by one
  curl -sN {base}/events -H 'Accept-Encoding: gzip'                    # SSE passes through uncompressed
  etag=$(curl -sI {base}/api/items | tr -d '\\r' | sed -n 's/^etag: //p')
  curl -si {base}/api/items -H "If-None-Match: $etag"                  # 304 Not Modified
  curl -si -X PUT {base}/notes/1 -H 'If-Match: "v0"' -d 'lost update'    # 412: the handler does not run
  curl -si -X PUT {base}/notes/1 -H 'If-Match: "v1"' -d 'second note'    # 200: version 2
  curl -s -o /dev/null -D - {base}/api/items | grep -i -e x-cache -e age   # MISS, then HIT with an Age
  curl -s -X POST {base}/admin/purge/items                             # tag purge: the next GET is a MISS
  curl -s -o /dev/null -D - {base}/quote/3 | grep -i server-timing       # app, render, price quote: the bottleneck
  curl -s -o /dev/null -D - {base}/authors | grep -i server-timing       # db: 9 queries (and an N+1 warning in the log)
  curl -s -o /dev/null -D - {base}/authors/eager | grep -i server-timing # db: 2 queries, no N+1
  curl -s {base}/reports/slow                                          # a slow statement (logged, counted)
  curl -si {base}/reports/broken | head -1                             # a failing statement: 500
  curl -si '{base}/assistant?q=hello'                                  # an LLM call: api in Server-Timing, tokens, cost
  curl -si '{base}/assistant?overloaded=1' | head -1                   # the model answers 503: 502
{metrics}Open {base}/ in a browser and watch the Network tab.
{live}Grafana and Prometheus: grafana/ holds the dashboards, the recording and alert rules and a prometheus.yml that
scrapes 127.0.0.1:9464; the README's section "Grafana dashboards and alert rules" (or grafana/README, where there is
one) says how to load them: `prometheus --config.file=grafana/prometheus.yml`, then import grafana/dashboards/*.json.
Ctrl+C stops the server.
"""


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    print(instructions(f"http://{args.host}:{args.port}"), flush=True)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
