"""FastAPI with async SQLAlchemy, ``@cached``, ``@timed``, tag purges and, given a Redis URL, the shared Redis tier.

    python examples/fastapi_app.py --port 8000                                  # SQLite (aiosqlite) in a temp dir
    DATABASE_URL=postgresql+asyncpg://user@127.0.0.1/books python examples/fastapi_app.py   # PostgreSQL instead
    SLIPSTREAM_CACHE_REDIS_URL=redis://127.0.0.1:6379/0 python examples/fastapi_app.py     # and the Redis tier

Every ``SLIPSTREAM_*`` variable applies (``Settings.from_env()``). ``--create-database`` creates and fills the tables
and exits: with several workers, run it once before they start (examples/multiworker.py does).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel
from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import slipstream

DATABASE_URL = os.environ.get("DATABASE_URL") or (
    f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='slipstream-fastapi-')}/books.db"
)
engine = create_async_engine(DATABASE_URL)
sessions = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(120))
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"), index=True)


class NewBook(BaseModel):
    title: str
    author_id: int


async def create_database() -> None:
    """The tables, and a few authors and books when they are empty."""
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    async with sessions() as session:
        if await session.scalar(select(func.count()).select_from(Author)) == 0:
            authors = [Author(name=f"author {n}") for n in range(1, 6)]
            session.add_all(authors)
            await session.flush()
            session.add_all(Book(title=f"book {a.id}.{n}", author_id=a.id) for a in authors for n in range(1, 4))
            await session.commit()


async def create_database_and_close() -> None:
    await create_database()
    await engine.dispose()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await create_database()
    yield
    await engine.dispose()


app = FastAPI(title="slipstream FastAPI example", lifespan=lifespan)
instrumentation = slipstream.install(app, engines=[engine])


@slipstream.cached(ttl=60, tags=["books"])
@slipstream.timed("book summary")
async def book_summary(book_id: int) -> dict[str, Any] | None:
    """A result worth caching: computed once a minute at most (per process, or per cluster with Redis)."""
    async with sessions() as session:
        row = (
            await session.execute(
                select(Book.id, Book.title, Author.name)
                .join(Author, Author.id == Book.author_id)
                .where(Book.id == book_id)
            )
        ).first()
    if row is None:
        return None
    return {"id": row.id, "title": row.title, "author": row.name}


@app.get("/books")
async def list_books(response: Response) -> list[dict[str, Any]]:
    """The whole list: a shared HTTP cache entry for 30 s, tagged ``books`` so a change purges it at once."""
    with slipstream.timed("list books"):
        async with sessions() as session:
            books = (await session.scalars(select(Book).order_by(Book.id))).all()
    response.headers["cache-control"] = "public, max-age=30"
    slipstream.tag_response(response, "books")
    return [{"id": book.id, "title": book.title, "author_id": book.author_id} for book in books]


@app.get("/books/{book_id}")
async def get_book(book_id: int) -> dict[str, Any]:
    summary: dict[str, Any] | None = await book_summary(book_id)
    if summary is None:
        raise HTTPException(status_code=404, detail="no such book")
    return summary


@app.post("/books", status_code=201)
async def add_book(book: NewBook, request: Request) -> dict[str, Any]:
    """A write: the new row, then a purge of everything tagged ``books`` (both tiers, every process)."""
    async with sessions() as session:
        created = Book(title=book.title, author_id=book.author_id)
        session.add(created)
        await session.commit()
    purged = await request.app.state.slipstream_cache.purge_tags("books")
    return {"id": created.id, "purged": purged}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def instructions(base: str) -> str:
    s = instrumentation.settings
    redis = s.cache_redis_url or "none (set SLIPSTREAM_CACHE_REDIS_URL)"
    live = f"http://{s.metrics_host}:{s.metrics_port}/" if s.metrics_port and not s.metrics_multiprocess_dir else None
    return f"""
slipstream FastAPI example on {base}
  database: {engine.url.render_as_string(hide_password=True)}   Redis tier: {redis}
  curl -s {base}/books                                  # X-Cache: MISS, then HIT for 30 s
  curl -s {base}/books/1                                # @cached: the summary is computed once a minute
  curl -s -X POST {base}/books -H 'content-type: application/json' -d '{{"title": "new", "author_id": 1}}'
                                                        # purges the tag "books": the next GET is a MISS
  live page: {live or "served by the sidecar (slipstream sidecar) with several workers"}
"""


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--create-database", action="store_true", help="create and fill the tables, then exit")
    args = parser.parse_args()
    if args.create_database:
        asyncio.run(create_database_and_close())
        return
    print(instructions(f"http://{args.host}:{args.port}"), flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
