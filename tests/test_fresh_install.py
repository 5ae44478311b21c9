"""slipstream as a user gets it: the wheel built from this checkout, installed with pip into fresh virtualenvs, one
with the core dependencies only and one with ``[all]``, then imported, served with uvicorn and asked for features.

The project's own environment has every extra installed and the source tree importable, so it cannot show a
module that imports an optional package at import time, a dependency missing from pyproject.toml, or a file left
out of the wheel. The checks that run inside each virtualenv are the ``installed_*`` functions below: they are sent
there as their own source (``inspect.getsource``), so that ruff and mypy check them with the rest of the tests. Each
imports what it needs in its body, because the virtualenv has only slipstream, its dependencies and uvicorn.
"""

from __future__ import annotations

import inspect
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Engine

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_PACKAGE = REPO_ROOT / "src" / "slipstream"
# What pip is given after the wheel's path, per virtualenv.
EXTRAS = {"core": "", "all": "[all]"}
# Upper bounds on each step, for a hung download or server; the module takes about 20 s here, downloads included.
PIP_TIMEOUT = 300.0
VENV_TIMEOUT = 120.0
CHECKS_TIMEOUT = 120.0


@dataclass(frozen=True)
class BuiltWheel:
    path: Path
    # The modules of src/ when the wheel was built: the installed package must have exactly these.
    modules: list[str]


@dataclass(frozen=True)
class FreshVenv:
    flavour: str
    root: Path
    wheel: BuiltWheel

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"


def run_step(
    what: str, command: list[str], *, timeout: float, cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; fail the test with its output when it fails or outlives ``timeout`` seconds."""
    try:
        completed = subprocess.run(
            command, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{what}: not done after {timeout:g} s: {shlex.join(command)}\n{output_of(error)}")
    if completed.returncode != 0:
        pytest.fail(
            f"{what} failed with exit status {completed.returncode}: {shlex.join(command)}\n{output_of(completed)}"
        )
    return completed


def output_of(result: subprocess.CompletedProcess[str] | subprocess.TimeoutExpired) -> str:
    def text(stream: str | bytes | None) -> str:
        # TimeoutExpired keeps bytes even when the run asked for text.
        return stream.decode(errors="replace") if isinstance(stream, bytes) else stream or ""

    return f"--- stdout\n{text(result.stdout)}\n--- stderr\n{text(result.stderr)}"


def pip_environment() -> dict[str, str]:
    """This machine's environment (its pip configuration, proxies, certificates) without what points Python at the
    project's own environment, its source tree or its coverage run."""
    own = ("PYTHON", "VIRTUAL_ENV", "COV_CORE_", "COVERAGE_")  # pytest-cov's subprocess variables among them
    return {k: v for k, v in os.environ.items() if not k.startswith(own)}


def source_modules() -> list[str]:
    """Every module and subpackage under src/slipstream, as ``pkgutil.walk_packages`` names them."""
    names = set()
    for path in SOURCE_PACKAGE.rglob("*.py"):
        parts = path.relative_to(SOURCE_PACKAGE.parent).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names - {"slipstream"})


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> BuiltWheel:
    """The wheel of this checkout, built by pip through the build backend (hatchling, fetched from PyPI)."""
    out = tmp_path_factory.mktemp("wheel")
    modules = source_modules()
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-input", "-w", str(out), str(REPO_ROOT)]
    run_step("building the wheel", command, timeout=PIP_TIMEOUT, cwd=out, env=pip_environment())
    built = sorted(out.glob("slipstream-*.whl"))
    assert len(built) == 1, f"expected one slipstream wheel in {out}, found {[p.name for p in out.iterdir()]}"
    return BuiltWheel(built[0], modules)


@pytest.fixture(scope="module", params=sorted(EXTRAS))
def fresh_venv(
    request: pytest.FixtureRequest, wheel: BuiltWheel, tmp_path_factory: pytest.TempPathFactory
) -> FreshVenv:
    """A new virtualenv (not the project's) with the wheel, its ``EXTRAS`` and uvicorn installed from PyPI."""
    flavour: str = request.param
    venv = FreshVenv(flavour, tmp_path_factory.mktemp(f"venv-{flavour}"), wheel)
    env = pip_environment()
    # The test run's interpreter; venv bases the new environment on its base installation, not on .venv.
    run_step(
        "creating a virtualenv",
        [sys.executable, "-m", "venv", str(venv.root)],
        timeout=VENV_TIMEOUT,
        cwd=venv.root,
        env=env,
    )
    install = [str(venv.python), "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
    install += [f"{wheel.path}{EXTRAS[flavour]}", "uvicorn"]
    run_step(f"pip install into the {flavour} virtualenv", install, timeout=PIP_TIMEOUT, cwd=venv.root, env=env)
    return venv


def clean_environment(venv: FreshVenv) -> dict[str, str]:
    """Nothing of this machine's environment: no PYTHONPATH, no OTEL_* or SLIPSTREAM_* settings, no proxies."""
    return {"PATH": f"{venv.bin}{os.pathsep}{os.defpath}", "HOME": str(venv.root), "LANG": "C.UTF-8"}


def test_installed_package_works(fresh_venv: FreshVenv) -> None:
    code = [inspect.getsource(function) for function in IN_VENV]
    call = f"installed_checks({fresh_venv.flavour!r}, {fresh_venv.wheel.path.name!r}, {fresh_venv.wheel.modules!r})"
    script = fresh_venv.root / "installed_checks.py"
    script.write_text("\n\n".join(["from __future__ import annotations", *code, call]) + "\n", encoding="utf-8")
    # -I: the script's directory, the working directory and PYTHON* variables stay off sys.path; cwd is outside
    # the repository too, so only the installed package can be imported.
    command = [str(fresh_venv.python), "-I", str(script)]
    env = clean_environment(fresh_venv)
    completed = run_step("the checks in the virtualenv", command, timeout=CHECKS_TIMEOUT, cwd=fresh_venv.root, env=env)
    lines = completed.stdout.splitlines()
    # The last line is printed only after every check: a script that stopped early cannot pass.
    assert lines and lines[-1] == f"{fresh_venv.flavour}: every check passed", output_of(completed)
    for alarm in ("Traceback", "Exception ignored", "ERROR"):
        assert alarm not in completed.stderr, f"{alarm!r} on the checks' stderr\n{output_of(completed)}"


def test_slipstream_command_is_installed(fresh_venv: FreshVenv) -> None:
    command = [str(fresh_venv.bin / "slipstream"), "sidecar", "--help"]
    env = clean_environment(fresh_venv)
    completed = run_step("the slipstream command", command, timeout=CHECKS_TIMEOUT, cwd=fresh_venv.root, env=env)
    assert "--dir" in completed.stdout, output_of(completed)


def test_grafana_render_works_from_the_wheel(fresh_venv: FreshVenv) -> None:
    """The render command and its runbook template come with the wheel, and give the repository's grafana/."""
    out = fresh_venv.root / "grafana"
    command = [str(fresh_venv.bin / "slipstream"), "grafana", "render", "--out", str(out)]
    env = clean_environment(fresh_venv)
    run_step("slipstream grafana render", command, timeout=CHECKS_TIMEOUT, cwd=fresh_venv.root, env=env)
    committed = REPO_ROOT / "grafana"
    expected = {str(p.relative_to(committed)): p.read_text() for p in committed.rglob("*") if p.is_file()}
    rendered = {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert rendered == expected


# What runs inside the virtualenv ------------------------------------------------------------------------------


def installed_checks(flavour: str, wheel_name: str, expected_modules: list[str]) -> None:
    """Every check, the lazy import first: later ones load what it must not find loaded."""
    installed_import_loads_no_extra()
    installed_package_is_the_wheel(wheel_name)
    installed_extras_are(flavour)
    installed_public_names_resolve(flavour)
    installed_modules_import(flavour, expected_modules)
    installed_app_serves(flavour)
    if flavour == "core":
        installed_missing_extras_are_named()
    else:
        installed_extras_work()
    print(f"{flavour}: every check passed")


def installed_import_loads_no_extra() -> None:
    import sys

    optional = ("sqlalchemy", "opentelemetry.sdk", "redis", "zstandard")

    def loaded() -> list[str]:
        return sorted(m for m in sys.modules if any(m == name or m.startswith(name + ".") for name in optional))

    import slipstream

    assert not loaded(), f"import slipstream loaded {loaded()}"
    from slipstream import (
        CacheMiddleware,
        CompressionMiddleware,
        ConditionalMiddleware,
        Settings,
        TimingMiddleware,
        cached,
        install,
        timed,
    )

    assert not loaded(), f"importing slipstream's middlewares, install, Settings, timed and cached loaded {loaded()}"
    public = (CacheMiddleware, CompressionMiddleware, ConditionalMiddleware, Settings, TimingMiddleware, cached)
    assert all(callable(name) for name in (*public, install, timed))
    print(f"import slipstream {slipstream.__version__} and its public names: none of {', '.join(optional)} loaded")


def installed_package_is_the_wheel(wheel_name: str) -> None:
    import importlib.metadata
    import json
    import sys
    from pathlib import Path

    import slipstream

    origin = json.loads(importlib.metadata.distribution("slipstream").read_text("direct_url.json") or "{}")
    assert str(origin.get("url", "")).endswith("/" + wheel_name), f"slipstream was installed from {origin}"
    location = Path(slipstream.__file__).resolve()
    assert Path(sys.prefix).resolve() in location.parents, f"slipstream imported from {location}, not the virtualenv"
    assert (location.parent / "py.typed").is_file(), "the installed package has no py.typed"
    print(f"slipstream {importlib.metadata.version('slipstream')} from {wheel_name}, at {location.parent}")


def installed_extras_are(flavour: str) -> None:
    import importlib.metadata

    # A distribution each extra brings in; asked of the metadata, so that nothing is imported.
    brought_by_extras = ("sqlalchemy", "greenlet", "redis", "zstandard", "opentelemetry-sdk")
    installed = set()
    for name in (*brought_by_extras, "opentelemetry-exporter-otlp-proto-http"):
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        installed.add(name)
    expected = set() if flavour == "core" else {*brought_by_extras, "opentelemetry-exporter-otlp-proto-http"}
    assert installed == expected, f"{flavour}: expected {sorted(expected)} of the extras' packages, got {installed}"


def installed_public_names_resolve(flavour: str) -> None:
    import slipstream

    missing = sorted(set(slipstream.__all__) - set(dir(slipstream)))
    assert not missing, f"dir(slipstream) leaves out {missing}"
    # These two are SQLAlchemy hooks: without it, looking them up fails with an error naming the extra.
    needs_sqlalchemy = {"instrument_sqlalchemy", "uninstrument_sqlalchemy"}
    for name in sorted({*dir(slipstream), *slipstream.__all__}):
        try:
            getattr(slipstream, name)
        except ImportError as error:
            named = "pip install 'slipstream[sqlalchemy]'" in str(error)
            if flavour == "core" and name in needs_sqlalchemy and named:
                continue
            raise AssertionError(f"slipstream.{name} does not resolve: {error!r}") from error
    print(f"{len(slipstream.__all__)} names of __all__ resolve")


def installed_modules_import(flavour: str, expected_modules: list[str]) -> None:
    import importlib
    import pkgutil

    import slipstream

    # The modules that need an extra, by name or name prefix, and the package each needs.
    needs_extra = {"slipstream.sqlalchemy.": "sqlalchemy", "slipstream.cache.redis_store": "redis"}
    needs_extra["slipstream.cache.invalidation"] = "redis"
    failures: dict[str, BaseException] = {}

    def package_failed(name: str) -> None:
        failures[name] = ImportError(f"walk_packages could not import package {name}")

    found = sorted(m.name for m in pkgutil.walk_packages(slipstream.__path__, "slipstream.", onerror=package_failed))
    left_out, unknown = sorted(set(expected_modules) - set(found)), sorted(set(found) - set(expected_modules))
    assert not left_out and not unknown, f"the installed package lacks {left_out} of src/, and has {unknown} more"
    for name in found:
        try:
            importlib.import_module(name)
        except Exception as error:
            failures[name] = error
    for name, failure in sorted(failures.items()):
        package = next((p for prefix, p in needs_extra.items() if name.startswith(prefix)), None)
        missing = failure.name if isinstance(failure, ModuleNotFoundError) else None
        if flavour == "core" and package is not None and missing is not None and missing.split(".")[0] == package:
            continue
        raise AssertionError(f"{name} does not import in the {flavour} virtualenv: {failure!r}") from failure
    print(f"{len(found)} modules; those needing a missing extra: {', '.join(sorted(failures)) or 'none'}")


def installed_missing_extras_are_named() -> None:
    """Core only: each feature whose extra is missing is refused where it is asked for, naming the extra."""
    from starlette.applications import Starlette

    import slipstream

    refusals: list[tuple[str, type[Exception], Callable[[], object]]] = [
        (
            "slipstream[redis]",
            ImportError,
            lambda: slipstream.install(Starlette(), slipstream.Settings(cache_redis_url="redis://127.0.0.1:1")),
        ),
        ("slipstream[zstd]", ValueError, lambda: slipstream.Settings(compression_encodings=("zstd",))),
        (
            "slipstream[sqlalchemy]",
            ImportError,
            lambda: slipstream.install(Starlette(), slipstream.Settings(), engines=[object()]),  # type: ignore[list-item]
        ),
        (
            "slipstream[otel]",
            ImportError,
            lambda: slipstream.install(Starlette(), slipstream.Settings(otel_endpoint="http://127.0.0.1:4318")),
        ),
    ]
    for extra, kind, ask in refusals:
        try:
            ask()
        except kind as error:
            assert f"pip install '{extra}'" in str(error), f"{extra}: the error does not name it: {error!r}"
            print(f"{extra} missing: {type(error).__name__}: {error}")
        else:
            raise AssertionError(f"{extra} is not installed, yet asking for its feature raised no {kind.__name__}")


def installed_extras_work() -> None:
    """[all] only: what the missing extras refuse in the core virtualenv is there."""
    import zstandard
    from starlette.applications import Starlette

    import slipstream

    data = b"slipstream " * 200
    compressed = slipstream.Settings(compression_encodings=("zstd",)).codecs()["zstd"].compress(data)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(compressed) == data
    # Not connected until the first request: the port answers nothing, and nothing is sent to it.
    redis = slipstream.install(Starlette(), slipstream.Settings(cache_redis_url="redis://127.0.0.1:1"))
    assert redis.cache is not None and redis.cache.redis is not None, "cache_redis_url gave the cache no Redis tier"
    try:
        slipstream.install(Starlette(), slipstream.Settings(), engines=[object()])  # type: ignore[list-item]
    except TypeError as error:
        assert "SQLAlchemy Engine" in str(error), repr(error)
    else:
        raise AssertionError("engines=[object()] was taken for an engine")
    otel = slipstream.install(Starlette(), slipstream.Settings(otel_endpoint="http://127.0.0.1:4318"))
    assert otel.telemetry.tracer_provider is not None and otel.telemetry.meter_provider is not None
    otel.stop()  # nothing was recorded, so nothing is sent; stop() is bounded either way
    print("zstd compresses, cache_redis_url adds a Redis tier, otel_endpoint builds OpenTelemetry providers")


def installed_app_serves(flavour: str) -> None:
    """A Starlette app with ``install()`` behind a real uvicorn on loopback: compressed, validated, cached, counted."""
    import json
    import socket
    import threading
    import time
    import urllib.error
    import urllib.request

    import brotli
    import uvicorn
    from prometheus_client.parser import text_string_to_metric_families
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    import slipstream

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def item_of(item_id: str) -> dict[str, object]:
        # Big enough for compression (500 bytes by default), and the same each time.
        return {"id": item_id, "tags": [f"tag-{n}" for n in range(100)]}

    async def item(request: Request) -> JSONResponse:
        return JSONResponse(item_of(request.path_params["item_id"]), headers={"cache-control": "max-age=60"})

    routes = [Route("/items/{item_id}", item)]
    engines: list[Engine] = []
    if flavour == "all":
        from sqlalchemy import create_engine, text

        engine = create_engine("sqlite://")

        def query(request: Request) -> JSONResponse:  # sync: Starlette runs it in a thread, as a driver call should
            with engine.connect() as connection:
                return JSONResponse({"one": connection.execute(text("SELECT 1")).scalar_one()})

        routes.append(Route("/db", query))
        engines.append(engine)
    app = Starlette(routes=routes)
    metrics_port, app_port = free_port(), free_port()
    slipstream.install(app, slipstream.Settings(metrics_port=metrics_port), engines=engines)
    config = uvicorn.Config(app, host="127.0.0.1", port=app_port, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    # Loopback only, whatever proxy the environment might name.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        try:
            with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        except urllib.error.HTTPError as error:  # 304 comes here
            with error:
                return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()

    def metric_value(name: str, **labels: str) -> float:
        """The sample ``name`` with these labels (others too) on the metrics port; 0 while there is none."""
        _, _, exposition = get(f"http://127.0.0.1:{metrics_port}/metrics")
        for family in text_string_to_metric_families(exposition.decode()):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return float(sample.value)
        return 0.0

    def wait_for(what: str, ready: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if not thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError(f"{what}: not after {timeout:g} s")
            time.sleep(0.02)

    thread.start()
    try:
        wait_for("uvicorn started, lifespan included", lambda: server.started)
        url = f"http://127.0.0.1:{app_port}/items/7"
        seen = []
        for expected_cache in ("MISS", "HIT"):
            status, headers, body = get(url, {"Accept-Encoding": "br"})
            assert status == 200, (status, headers)
            assert headers.get("content-encoding") == "br", headers
            assert json.loads(brotli.decompress(body)) == item_of("7")
            assert headers.get("x-cache") == expected_cache, headers
            assert headers.get("etag"), headers
            seen.append(headers["etag"])
        assert seen[0] == seen[1], f"the hit's ETag differs from the miss's: {seen}"
        status, headers, body = get(url, {"Accept-Encoding": "br", "If-None-Match": seen[0]})
        assert (status, body) == (304, b""), (status, headers, body)

        def counted(status_code: str) -> float:
            labels = {"http_route": "/items/{item_id}", "http_response_status_code": status_code}
            return metric_value("http_server_request_duration_seconds_count", **labels)

        wait_for("the miss and the hit in /metrics", lambda: counted("200") == 2)
        wait_for("the 304 in /metrics", lambda: counted("304") == 1)
        # The live page and its JSON: the HTML is package data, so a wheel without it would fail here.
        status, headers, body = get(f"http://127.0.0.1:{metrics_port}/")
        assert status == 200 and b"slipstream live" in body, (status, body[:200])
        assert "script-src 'sha256-" in headers.get("content-security-policy", ""), headers
        status, _, body = get(f"http://127.0.0.1:{metrics_port}/live.json")
        live = {row["route"]: row for row in json.loads(body)["routes"]}
        assert status == 200 and live["/items/{item_id}"]["requests"] == 3, live
        if flavour == "all":
            status, headers, body = get(f"http://127.0.0.1:{app_port}/db")
            assert (status, json.loads(body)) == (200, {"one": 1}), (status, body)
            statements = "db_client_operation_duration_seconds_count"
            select = {"db_system_name": "sqlite", "db_operation_name": "SELECT"}
            wait_for("the SELECT in /metrics", lambda: metric_value(statements, **select) == 1)
    finally:
        server.should_exit = True
        thread.join(15)
    assert not thread.is_alive(), "uvicorn did not stop within 15 s"
    # The lifespan's shutdown stopped the metrics server too.
    try:
        socket.create_connection(("127.0.0.1", metrics_port), timeout=5).close()
    except ConnectionRefusedError:
        pass
    else:
        raise AssertionError(f"the metrics port {metrics_port} still answers after uvicorn stopped")
    database = ", the /db SELECT counted" if flavour == "all" else ""
    print(
        f"served by uvicorn: br, ETag, X-Cache MISS then HIT, 304, counted in /metrics and on the live page{database}; "
        "stopped cleanly"
    )


# Sent to the virtualenv, in this order.
IN_VENV: tuple[Callable[..., None], ...] = (
    installed_checks,
    installed_import_loads_no_extra,
    installed_package_is_the_wheel,
    installed_extras_are,
    installed_public_names_resolve,
    installed_modules_import,
    installed_missing_extras_are_named,
    installed_extras_work,
    installed_app_serves,
)
