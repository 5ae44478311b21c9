"""A small blog schema with a lazy relationship, for the hook tests and the N+1 apps."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

AUTHORS = 6
POSTS_EACH = 3


class Base(AsyncAttrs, DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    email: Mapped[str] = mapped_column(String(100))
    # lazy="select": reading .posts runs one SELECT per author, the classic N+1.
    posts: Mapped[list[Post]] = relationship(back_populates="author", lazy="select")


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    author: Mapped[Author] = relationship(back_populates="posts")


def rows() -> list[Author]:
    return [
        Author(
            id=n,
            name=f"author {n}",
            email=f"author{n}@example.com",
            posts=[Post(title=f"post {n}.{p}") for p in range(POSTS_EACH)],
        )
        for n in range(1, AUTHORS + 1)
    ]


def filled_sqlite(path: str) -> Engine:
    """A SQLite file database with the schema and rows, returned as an engine (dispose it after use)."""
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(rows())
        session.commit()
    return engine
