from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests import postgres_server as postgres_module
from tests.postgres_server import PostgresDatabase, PostgresServer, find_postgres_binaries, run_postgres_server

pytestmark = pytest.mark.anyio


def _has_table(url: str, table: str) -> bool:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).has_table(table)
    finally:
        engine.dispose()


def test_psycopg_engine_reaches_the_session_database(postgres_server: PostgresServer) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{postgres_server.port}/slipstream_test"
    assert postgres_server.url("psycopg") == url
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("select 1")).scalar_one() == 1
            assert connection.execute(sa.text("select current_database()")).scalar_one() == "slipstream_test"
    finally:
        engine.dispose()


async def test_asyncpg_engine_reaches_the_session_database(postgres_server: PostgresServer) -> None:
    assert postgres_server.url("asyncpg").startswith("postgresql+asyncpg://postgres@127.0.0.1:")
    engine = create_async_engine(postgres_server.url("asyncpg"))
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(sa.text("select 1"))).scalar_one() == 1
            assert (await connection.execute(sa.text("select current_user"))).scalar_one() == "postgres"
    finally:
        await engine.dispose()


def test_each_fresh_database_sees_only_its_own_tables(
    postgres_server: PostgresServer, postgres_database: PostgresDatabase
) -> None:
    engine = sa.create_engine(postgres_database.url("psycopg"))
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("create table visits (id integer primary key)"))
    finally:
        engine.dispose()
    with postgres_server.fresh_database() as other:
        assert other.database != postgres_database.database
        assert _has_table(postgres_database.url("psycopg"), "visits")
        assert not _has_table(other.url("psycopg"), "visits")
        assert not _has_table(postgres_server.url("psycopg"), "visits")


def test_a_fresh_database_is_dropped_even_with_a_connection_left_open(postgres_server: PostgresServer) -> None:
    with postgres_server.fresh_database() as database:
        lingering = psycopg.connect(database.conninfo)
        assert lingering.execute("select current_database()").fetchone() == (database.database,)
    lingering.close()
    with psycopg.connect(postgres_server.target("postgres").conninfo) as admin:
        rows = admin.execute("select 1 from pg_database where datname = %s", [database.database]).fetchall()
    assert rows == []


def test_the_cluster_and_port_are_gone_after_the_server_stops(tmp_path: Path) -> None:
    with run_postgres_server(tmp_path) as server:
        cluster = server.directory
        assert (cluster / "data" / "PG_VERSION").is_file()
        assert (tmp_path / "postgres.log").is_file()
    assert not cluster.exists()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
        pass


def test_binaries_of_the_highest_complete_version_are_chosen(tmp_path: Path) -> None:
    for version, names in [("9.6", ["initdb", "pg_ctl", "postgres"]), ("15", ["initdb", "pg_ctl", "postgres"])]:
        (tmp_path / version / "bin").mkdir(parents=True)
        for name in names:
            (tmp_path / version / "bin" / name).touch()
    (tmp_path / "16" / "bin").mkdir(parents=True)
    (tmp_path / "16" / "bin" / "initdb").touch()
    assert find_postgres_binaries(tmp_path) == tmp_path / "15" / "bin"
    assert find_postgres_binaries(tmp_path / "missing") is None


def test_missing_binaries_fail_rather_than_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres_module, "DEBIAN_ROOT", tmp_path)
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL is missing"), run_postgres_server(tmp_path):
        pass
