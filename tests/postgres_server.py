"""A real PostgreSQL (Debian's /usr/lib/postgresql/<version>/bin) on a free loopback port, with throwaway databases.

``run_postgres_server(directory)`` runs initdb into a fresh temp dir, starts ``postgres`` on 127.0.0.1 with trust
auth and durability off, creates the database ``slipstream_test`` and yields a ``PostgresServer``. PostgreSQL
refuses to run as root, so as root the cluster belongs to Debian's ``postgres`` user and the server runs as it.
``PostgresServer.fresh_database()`` creates an empty database for one test and drops it afterwards.
Startup (initdb, start, first connection) takes about a second, so conftest shares one server per session.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.support import stop_process

__all__ = ["PostgresDatabase", "PostgresServer", "find_postgres_binaries", "run_postgres_server"]

DEBIAN_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
DATABASE = "slipstream_test"
Driver = Literal["psycopg", "asyncpg"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin: "16" and "9.6" both sort by number, not as text.
    return tuple(int(part) for part in bin_dir.parent.name.split(".") if part.isdigit())


def find_postgres_binaries(root: Path | None = None) -> Path | None:
    """The bin directory of the highest PostgreSQL version with initdb, pg_ctl and postgres, or None."""
    candidates = [
        bin_dir
        for bin_dir in (DEBIAN_ROOT if root is None else root).glob("*/bin")
        if all((bin_dir / name).is_file() for name in ("initdb", "pg_ctl", "postgres"))
    ]
    return max(candidates, key=_version_key, default=None)


@dataclass(frozen=True)
class PostgresDatabase:
    """Where one database lives: SQLAlchemy URLs and a libpq conninfo for it."""

    host: str
    port: int
    user: str
    database: str

    def url(self, driver: Driver) -> str:
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def conninfo(self) -> str:
        return make_conninfo(host=self.host, port=self.port, user=self.user, dbname=self.database)


class PostgresServer:
    """One postgres process over a throwaway cluster; `database` is ``slipstream_test``."""

    host = "127.0.0.1"
    user = SUPERUSER
    database = DATABASE

    def __init__(self, bin_dir: Path, directory: Path, log_path: Path) -> None:
        self.bin_dir = bin_dir
        self.directory = directory
        self.log_path = log_path
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, driver: Driver) -> str:
        return self.target(self.database).url(driver)

    def target(self, database: str) -> PostgresDatabase:
        return PostgresDatabase(self.host, self.port, self.user, database)

    @contextlib.contextmanager
    def fresh_database(self) -> Iterator[PostgresDatabase]:
        """An empty database named test_<hex> for one test, dropped (connections and all) afterwards."""
        name = f"test_{uuid.uuid4().hex}"
        self._execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield self.target(name)
        finally:
            self._execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def start(self, timeout: float = 30.0) -> None:
        assert self._process is None, "already started"
        data = self.directory / "data"
        initdb = [str(self.bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", self.user, "--no-sync"]
        initdb += ["-E", "UTF8", "--locale=C"]
        result = subprocess.run(initdb, capture_output=True, **self._as_owner())
        if result.returncode != 0:
            pytest.fail(f"initdb failed ({result.returncode}):\n{result.stdout.decode()}\n{result.stderr.decode()}")
        command = [str(self.bin_dir / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(self.directory)]
        for setting in ("listen_addresses=127.0.0.1", "fsync=off", "synchronous_commit=off", "full_page_writes=off"):
            command += ["-c", setting]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **self._as_owner())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._process.poll() is None:
            try:
                self._execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)), "postgres")
            except psycopg.OperationalError:
                time.sleep(0.05)
            else:
                return
        log_text = self.log_path.read_text(errors="replace")
        self.stop()
        pytest.fail(f"postgres on port {self.port} did not accept connections within {timeout}s:\n{log_text[-2000:]}")

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            # SIGINT is postgres's "fast" shutdown: roll back sessions, skip waiting for clients.
            stop_process(process, timeout, signal.SIGINT)

    def _execute(self, statement: sql.Composed, database: str = DATABASE) -> None:
        # CREATE and DROP DATABASE cannot run inside a transaction block.
        with psycopg.connect(self.target(database).conninfo, autocommit=True, connect_timeout=2) as connection:
            connection.execute(statement)

    def _as_owner(self) -> dict[str, Any]:
        """Popen arguments that run initdb and postgres as the cluster's owner, in a directory it may enter."""
        options: dict[str, Any] = {"cwd": self.directory, "env": {"PATH": os.defpath, "LC_ALL": "C", "TZ": "UTC"}}
        if os.geteuid() == 0:
            options.update(user=SUPERUSER, group=SUPERUSER, extra_groups=[])
        return options


@contextlib.contextmanager
def run_postgres_server(directory: Path) -> Iterator[PostgresServer]:
    """Start a server whose log is ``directory/postgres.log``; its cluster lives in a temp dir removed afterwards."""
    bin_dir = find_postgres_binaries()
    if bin_dir is None:
        pytest.fail(f"PostgreSQL is missing (no {DEBIAN_ROOT}/<version>/bin/initdb): run make test, which installs it")
    # The cluster and its socket go in a temp dir of their own: pytest's tmp dirs are private to the current user.
    cluster = Path(tempfile.mkdtemp(prefix="slipstream-pg-"))
    try:
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(SUPERUSER)
            except KeyError:
                pytest.fail(f"running as root needs the {SUPERUSER!r} user that Debian's postgresql package creates")
            os.chown(cluster, owner.pw_uid, owner.pw_gid)
        server = PostgresServer(bin_dir, cluster, directory / "postgres.log")
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(cluster, ignore_errors=True)
