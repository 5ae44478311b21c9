"""The sidecar merging real worker processes' files: two uvicorn workers, writers that die, the CLI as a process."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from slipstream.cli import build_parser, main
from slipstream.config import Settings
from slipstream.exporters.sidecar import Sidecar, process_exists, worker_files
from tests.exporters.test_prometheus import promtool
from tests.support import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
OPEN_METRICS = "application/openmetrics-text; version=1.0.0"
# A stand-in worker: a livesum gauge and a counter, both set to argv[1]; it exits when its stdin closes.
WRITER = """
import sys
from prometheus_client import Counter, Gauge
Gauge("test_in_flight", "Work in flight.", multiprocess_mode="livesum").inc(float(sys.argv[1]))
Counter("test_jobs", "Jobs done.").inc(float(sys.argv[1]))
print("ready", flush=True)
sys.stdin.read()
"""


def wait_for(url: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> int:
    """Poll ``url`` until it answers 200; returns how many requests were answered (and so counted by the app)."""
    deadline = time.monotonic() + timeout
    answered = 0
    while True:
        try:
            status = httpx.get(url, timeout=5).status_code
        except httpx.TransportError:
            status = None
        else:
            answered += 1
        if status == 200:
            return answered
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 in time")
        time.sleep(0.05)


def sample_sum(exposition: str, name: str) -> float:
    """The sum over every series of the samples called ``name``."""
    families = text_string_to_metric_families(exposition)
    return sum(sample.value for family in families for sample in family.samples if sample.name == name)


def family_names(exposition: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(exposition)}


@pytest.fixture
def multiproc_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "multiproc"
    directory.mkdir()
    return directory


@contextlib.contextmanager
def writer(directory: Path, amount: float) -> Iterator[subprocess.Popen[bytes]]:
    """A child process that wrote ``amount`` to a livesum gauge and a counter and waits; close its stdin to end it."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    command = [sys.executable, "-c", WRITER, str(amount)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env) as child:
        try:
            assert child.stdout is not None
            ready, _, _ = select.select([child.stdout], [], [], 20)
            assert ready and child.stdout.readline() == b"ready\n", "the writer did not start"
            yield child
        finally:
            stop_process(child)


def end(child: subprocess.Popen[bytes]) -> int:
    assert child.stdin is not None
    child.stdin.close()
    assert child.wait(10) == 0
    return child.pid


def dead_pid() -> int:
    with subprocess.Popen([sys.executable, "-c", "pass"]) as child:
        child.wait(10)
    return child.pid


@dataclass
class Running:
    """A server process started from the repository root, its stdout in ``output``."""

    url: str
    process: subprocess.Popen[bytes]
    output: Path
    # Requests the readiness probe got answers to: an app counts them too.
    probes: int


@contextlib.contextmanager
def running(command: list[str], port: int, ready_path: str, multiproc_dir: Path, output: Path) -> Iterator[Running]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir), "PYTHONPATH": str(ROOT)}
    with output.open("wb") as stdout:
        process = subprocess.Popen([sys.executable, "-m", *command], cwd=ROOT, env=env, stdout=stdout)
    try:
        url = f"http://127.0.0.1:{port}"
        yield Running(url, process, output, wait_for(url + ready_path, process))
    finally:
        stop_process(process)


@pytest.fixture
def workers(multiproc_dir: Path, tmp_path: Path) -> Iterator[Running]:
    """``uvicorn --workers 2`` serving tests/exporters/multiworker_app.py, writing to ``multiproc_dir``."""
    port = free_port()
    command = ["uvicorn", "tests.exporters.multiworker_app:app", "--workers", "2", "--port", str(port)]
    command += ["--host", "127.0.0.1", "--log-level", "warning"]
    with running(command, port, "/pid", multiproc_dir, tmp_path / "uvicorn.out") as started:
        yield started


@pytest.fixture
def sidecar_process(multiproc_dir: Path, tmp_path: Path) -> Iterator[Running]:
    """``python -m slipstream.cli sidecar`` as a process of its own, reading ``multiproc_dir``."""
    port = free_port()
    command = ["slipstream.cli", "sidecar", "--dir", str(multiproc_dir), "--port", str(port)]
    command += ["--cleanup-interval", "0.2"]
    with running(command, port, "/healthz", multiproc_dir, tmp_path / "sidecar.out") as started:
        yield started


@pytest.mark.anyio
async def test_two_uvicorn_workers_add_up_exactly(workers: Running, sidecar_process: Running) -> None:
    answered: dict[str, int] = {}
    sent = 0
    # No keep-alive: every request opens a connection, so the kernel spreads them over both workers.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=workers.url, limits=limits, timeout=10) as client:

        async def fetch() -> None:
            response = await client.get("/pid")
            assert response.status_code == 200
            answered[response.text] = answered.get(response.text, 0) + 1

        async def round_of(size: int) -> None:
            nonlocal sent
            sent += size
            async with anyio.create_task_group() as tasks:
                for _ in range(size):
                    tasks.start_soon(fetch)

        for _ in range(20):
            await round_of(10)
        for _ in range(50):
            if len(answered) == 2:
                break
            await anyio.sleep(0.1)
            await round_of(10)
    assert len(answered) == 2, f"only one worker answered: {answered}"
    assert sum(answered.values()) == sent >= 200

    health = httpx.get(sidecar_process.url + "/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "workers": 2}

    # The workers write their summed increments every metrics_multiprocess_flush_interval (0.1 s): within it, every
    # request is in the merged files.
    expected = sent + workers.probes
    deadline = time.monotonic() + 10
    while True:
        scrape = httpx.get(sidecar_process.url + "/metrics")
        assert scrape.status_code == 200
        counted = sample_sum(scrape.text, "http_server_request_duration_seconds_count")
        if counted >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sample_sum(scrape.text, "slipstream_cache_requests_total") == expected
    # The timing middleware's request counts, merged from both workers, add up exactly too.
    assert sample_sum(scrape.text, "http_server_request_duration_seconds_count") == expected
    assert sample_sum(scrape.text, "http_server_active_requests") == 0
    routes = {
        sample.labels.get("http_route")
        for family in text_string_to_metric_families(scrape.text)
        for sample in family.samples
        if sample.name == "http_server_request_duration_seconds_count"
    }
    assert routes == {"/pid"}
    checked = subprocess.run([promtool(), "check", "metrics"], input=scrape.content, capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stderr.decode() + checked.stdout.decode()

    negotiated = httpx.get(sidecar_process.url + "/metrics", headers={"accept": OPEN_METRICS})
    assert negotiated.headers["content-type"].startswith("application/openmetrics-text")
    assert negotiated.text.endswith("# EOF\n")

    served = sidecar_process.output.read_text()
    assert f"serving {sidecar_process.url}/metrics" in served
    sidecar_process.process.send_signal(signal.SIGTERM)
    assert sidecar_process.process.wait(10) == 0


def test_a_dead_workers_live_gauge_is_removed_and_its_counter_kept(multiproc_dir: Path) -> None:
    with (
        Sidecar(str(multiproc_dir), free_port(), cleanup_interval=0.05) as sidecar,
        writer(multiproc_dir, 5) as staying,
        writer(multiproc_dir, 3) as leaving,
    ):
        before = httpx.get(sidecar.url + "/metrics").text
        assert sample_sum(before, "test_in_flight") == 8
        assert sample_sum(before, "test_jobs_total") == 8
        # The merged files, and the sidecar's own count of live workers.
        assert family_names(before) == {"test_in_flight", "test_jobs", "slipstream_sidecar_workers"}
        assert sample_sum(before, "slipstream_sidecar_workers") == 2
        assert httpx.get(sidecar.url + "/healthz").json() == {"status": "ok", "workers": 2}

        pid = end(leaving)
        live_gauge = multiproc_dir / f"gauge_livesum_{pid}.db"
        # No scrape meanwhile: the periodic cleanup alone removes it.
        for _ in range(200):
            if not live_gauge.exists():
                break
            time.sleep(0.05)
        assert not live_gauge.exists()
        assert (multiproc_dir / f"counter_{pid}.db").exists()

        after = httpx.get(sidecar.url + "/metrics").text
        assert sample_sum(after, "test_in_flight") == 5
        assert sample_sum(after, "test_jobs_total") == 8
        assert sample_sum(after, "slipstream_sidecar_workers") == 1
        assert httpx.get(sidecar.url + "/healthz").json() == {"status": "ok", "workers": 1}
        assert sidecar.live_workers() == [staying.pid]
        end(staying)


def test_a_scrape_first_removes_the_live_gauges_of_dead_workers(multiproc_dir: Path) -> None:
    with Sidecar(str(multiproc_dir), free_port(), cleanup_interval=3600) as sidecar:
        with writer(multiproc_dir, 2) as leaving:
            pid = end(leaving)
        assert (multiproc_dir / f"gauge_livesum_{pid}.db").exists()
        scrape = httpx.get(sidecar.url + "/metrics", headers={"accept": OPEN_METRICS, "accept-encoding": "gzip"})
        assert scrape.headers["content-type"].startswith("application/openmetrics-text")
        assert scrape.headers["content-encoding"] == "gzip"
        assert "test_in_flight" not in scrape.text
        assert "test_jobs_total 2.0" in scrape.text
        assert not (multiproc_dir / f"gauge_livesum_{pid}.db").exists()
        assert sidecar.remove_dead_workers() == []


def test_a_corrupt_file_answers_503_and_the_sidecar_keeps_serving(
    multiproc_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # "Used: 64 bytes", then an entry claiming a key far longer than that.
    corrupt = (64).to_bytes(4, "little") + bytes(4) + (10_000).to_bytes(4, "little") + bytes(60)
    (multiproc_dir / f"counter_{os.getpid()}.db").write_bytes(corrupt)
    with Sidecar(str(multiproc_dir), free_port()) as sidecar, caplog.at_level(logging.ERROR):
        response = httpx.get(sidecar.url + "/metrics")
        assert response.status_code == 503
        assert "could not merge the multiprocess files" in response.text
        assert "corrupted" in response.text
        assert httpx.get(sidecar.url + "/healthz").status_code == 200
        (multiproc_dir / f"counter_{os.getpid()}.db").unlink()
        assert httpx.get(sidecar.url + "/metrics").status_code == 200
    assert "could not merge" in caplog.text


def test_live_gauges_that_cannot_be_removed_are_logged(multiproc_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    pid = dead_pid()
    # A directory with a live gauge's name: os.remove refuses it, even for root.
    (multiproc_dir / f"gauge_livesum_{pid}.db").mkdir()
    sidecar = Sidecar(str(multiproc_dir), free_port())
    try:
        with caplog.at_level(logging.WARNING):
            assert sidecar.remove_dead_workers() == []
        assert f"could not remove the live gauges of dead pid {pid}" in caplog.text
    finally:
        sidecar.stop()


def test_a_missing_directory_answers_503(multiproc_dir: Path) -> None:
    with Sidecar(str(multiproc_dir), free_port()) as sidecar:
        # No worker yet: nothing merged, and no live worker.
        empty = httpx.get(sidecar.url + "/metrics").text
        assert family_names(empty) == {"slipstream_sidecar_workers"}
        assert sample_sum(empty, "slipstream_sidecar_workers") == 0
        multiproc_dir.rmdir()
        metrics = httpx.get(sidecar.url + "/metrics")
        health = httpx.get(sidecar.url + "/healthz")
    assert metrics.status_code == 503
    assert "is missing" in metrics.text
    assert health.status_code == 503
    assert "is missing" in health.json()["status"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nothing", 404),
        ("GET", "/metrics/extra", 404),
        ("POST", "/metrics", 405),
        ("DELETE", "/healthz", 405),
        ("POST", "/", 405),
    ],
)
def test_other_paths_and_methods_are_refused(multiproc_dir: Path, method: str, path: str, status: int) -> None:
    with Sidecar(str(multiproc_dir), free_port()) as sidecar:
        response = httpx.request(method, sidecar.url + path)
    assert response.status_code == status


@pytest.mark.parametrize(
    ("options", "headers", "status"),
    [
        ({"bearer_token": "s3cret"}, {}, 401),
        ({"bearer_token": "s3cret"}, {"authorization": "Bearer wrong"}, 401),
        ({"bearer_token": "s3cret"}, {"authorization": "Bearer s3cret"}, 200),
        ({"bearer_token": "s3cret"}, {"authorization": "bEaReR s3cret"}, 200),
        ({"bearer_token": "s3cret"}, {"authorization": "bearer S3CRET"}, 401),
        ({"allow_networks": ("10.0.0.0/8",)}, {}, 403),
        ({"allow_networks": ("127.0.0.0/8",)}, {}, 200),
    ],
)
def test_metrics_access_is_guarded_and_health_is_not(
    multiproc_dir: Path, options: dict[str, object], headers: dict[str, str], status: int
) -> None:
    with Sidecar(str(multiproc_dir), free_port(), **options) as sidecar:  # type: ignore[arg-type]
        metrics = httpx.get(sidecar.url + "/metrics", headers=headers)
        health = httpx.get(sidecar.url + "/healthz")
    assert metrics.status_code == status
    if status == 401:
        assert metrics.headers["www-authenticate"].startswith("Bearer")
    assert health.status_code == 200


def test_the_token_is_required_of_the_cli_sidecar(multiproc_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    command = ["slipstream.cli", "sidecar", "--dir", str(multiproc_dir), "--port", str(port), "--token", "t0k"]
    with running(command, port, "/healthz", multiproc_dir, tmp_path / "sidecar.out") as sidecar:
        assert httpx.get(sidecar.url + "/metrics").status_code == 401
        assert httpx.get(sidecar.url + "/metrics", headers={"authorization": "Bearer t0k"}).status_code == 200
        sidecar.process.send_signal(signal.SIGINT)
        assert sidecar.process.wait(10) == 0


def test_worker_files_are_grouped_by_the_pid_in_their_name(tmp_path: Path) -> None:
    for name in (
        "counter_12.db",
        "gauge_livesum_12.db",
        "histogram_34.db",
        "gauge_all_worker-a.db",
        "counter_0.db",
        "counter_99999999999.db",
        "notes_56.txt",
    ):
        (tmp_path / name).touch()
    found = worker_files(str(tmp_path))
    assert {pid: sorted(names) for pid, names in found.items()} == {
        12: ["counter_12.db", "gauge_livesum_12.db"],
        34: ["histogram_34.db"],
    }


def test_process_exists() -> None:
    assert process_exists(os.getpid())
    assert process_exists(1)  # init: ours to signal as root, someone else's (EPERM) otherwise
    assert not process_exists(dead_pid())


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        Sidecar(str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="cleanup_interval"):
        Sidecar(str(tmp_path), cleanup_interval=0)
    Sidecar(str(tmp_path), free_port()).stop()  # never started: stops without waiting for a serving thread


def test_the_cli_defaults_come_from_the_settings() -> None:
    settings = Settings(
        metrics_multiprocess_dir="/run/metrics",
        metrics_port=None,
        metrics_host="0.0.0.0",
        metrics_bearer_token="from-env",
        metrics_allow_networks=("10.0.0.0/8",),
    )
    args = build_parser(settings).parse_args(["sidecar"])
    assert (args.dir, args.port, args.host, args.token) == ("/run/metrics", 9464, "0.0.0.0", "from-env")
    assert args.allow is None and args.allow_default == ("10.0.0.0/8",)
    assert args.cleanup_interval == 5.0

    given = ["sidecar", "--dir", "/d", "--port", "9000", "--host", "::1", "--token", "t"]
    given += ["--allow", "192.168.0.0/16", "--allow", "127.0.0.1", "--cleanup-interval", "0.5"]
    args = build_parser(Settings(metrics_port=9100)).parse_args(given)
    assert (args.dir, args.port, args.host, args.token) == ("/d", 9000, "::1", "t")
    assert args.allow == ["192.168.0.0/16", "127.0.0.1"]
    assert args.cleanup_interval == 0.5
    assert build_parser(Settings(metrics_port=9100)).parse_args(["sidecar"]).port == 9100


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required: COMMAND"),
        (["serve"], "invalid choice"),
        (["sidecar", "--allow", "not-a-network"], "not an address or network"),
        (["sidecar", "--cleanup-interval", "0"], "must be above 0"),
        (["sidecar", "--cleanup-interval", "soon"], "not a number"),
        (["sidecar", "--port", "http"], "invalid int value"),
    ],
)
def test_the_cli_refuses_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_the_cli_needs_an_existing_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("SLIPSTREAM_METRICS_MULTIPROCESS_DIR", raising=False)
    assert main(["sidecar"]) == 2
    assert "pass --dir or set PROMETHEUS_MULTIPROC_DIR" in capsys.readouterr().err
    assert main(["sidecar", "--dir", str(tmp_path / "absent")]) == 2
    assert "is not a directory; create it" in capsys.readouterr().err
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "gone"))
    assert main(["sidecar"]) == 2
    assert "gone' is not a directory" in capsys.readouterr().err


def test_the_cli_as_a_process_exits_2_without_a_directory(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "slipstream.cli", "sidecar", "--dir", str(tmp_path / "absent")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=30)
    assert done.returncode == 2
    assert b"slipstream sidecar: error:" in done.stderr and b"is not a directory" in done.stderr


def test_the_cli_reports_bad_settings(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLIPSTREAM_NO_SUCH_SETTING", "1")
    assert main(["sidecar"]) == 2
    assert "unknown slipstream setting(s): SLIPSTREAM_NO_SUCH_SETTING" in capsys.readouterr().err


def test_the_cli_reports_a_port_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["sidecar", "--dir", str(tmp_path), "--port", str(port)]) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_the_cli_serves_until_a_signal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], signal_number: signal.Signals
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    seen: list[int] = []
    returned = threading.Event()

    def scrape_then_signal() -> None:
        try:
            wait_for(url + "/healthz", timeout=20)
            seen.append(httpx.get(url + "/metrics").status_code)
        finally:
            # Even when the server never answered, so that main returns; never once it has returned.
            if not returned.is_set():
                os.kill(os.getpid(), signal_number)

    before = signal.getsignal(signal_number)
    thread = threading.Thread(target=scrape_then_signal)
    thread.start()
    try:
        status = main(["sidecar", "--dir", str(tmp_path), "--port", str(port), "--allow", "127.0.0.1"])
    finally:
        returned.set()
        thread.join(30)
    assert status == 0
    assert seen == [200]
    assert signal.getsignal(signal_number) == before
    assert f"slipstream sidecar: serving {url}/metrics and /healthz, merging {tmp_path}" in capsys.readouterr().out
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/healthz", timeout=1)
