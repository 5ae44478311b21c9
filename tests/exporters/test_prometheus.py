"""The metric definitions and their exposition, checked by promtool and read over real HTTP."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from slipstream.config import DURATION_BUCKETS
from slipstream.exporters.metrics import Metrics
from slipstream.exporters.prometheus import MetricsApp, MetricsServer
from tests.support import asgi_client, free_port

pytestmark = pytest.mark.anyio


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run `make test`, which installs Debian's prometheus package")
    return path


def filled_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    metrics = Metrics.register(registry, DURATION_BUCKETS)
    labels = {"http_request_method": "GET", "http_route": "/users/{id}", "http_response_status_code": "200"}
    metrics.request_duration.labels(**labels).observe(0.012, exemplar={"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})
    metrics.response_body_size.labels(**labels).observe(512)
    metrics.time_to_first_byte.labels("GET", "/users/{id}").observe(0.004)
    metrics.request_body_size.labels("GET", "/users/{id}").observe(0)
    metrics.active_requests.labels("GET").inc()
    metrics.cache_requests.labels("hit", "l1").inc()
    metrics.cache_redis_errors.inc()
    metrics.compression_input_bytes.labels("br").inc(60_000)
    metrics.compression_output_bytes.labels("br").inc(12_000)
    metrics.conditional_responses.labels("304").inc()
    metrics.operation_duration.labels("render").observe(0.002)
    return registry


def test_registration_is_idempotent_per_registry() -> None:
    registry = CollectorRegistry()
    first, second = Metrics.register(registry, DURATION_BUCKETS), Metrics.register(registry, DURATION_BUCKETS)
    assert first.request_duration is second.request_duration and first.db_errors is second.db_errors
    assert Metrics.register(CollectorRegistry(), DURATION_BUCKETS).request_duration is not first.request_duration


def test_metrics_registered_earlier_by_another_copy_are_reused() -> None:
    registry = CollectorRegistry()
    Counter("slipstream_cache_redis_errors", "registered elsewhere first", registry=registry)
    metrics = Metrics.register(registry, (0.1, 1.0))
    metrics.cache_redis_errors.inc()
    assert registry.get_sample_value("slipstream_cache_redis_errors_total") == 1


@pytest.mark.parametrize(
    "clash",
    [
        lambda registry: Metrics.register(registry, (0.5, 5.0)),
        lambda registry: Counter("http_server_active_requests", "another kind", registry=registry),
        lambda registry: Counter("slipstream_cache_redis_errors", "other labels", ("shard",), registry=registry),
    ],
)
def test_a_registry_holding_other_buckets_or_kinds_is_refused(clash: Callable[[CollectorRegistry], object]) -> None:
    registry = CollectorRegistry()
    clash(registry)
    with pytest.raises(ValueError, match="registry of its own"):
        Metrics.register(registry, DURATION_BUCKETS)


def test_the_exposition_passes_promtool() -> None:
    exposition = generate_latest(filled_registry())
    checked = subprocess.run([promtool(), "check", "metrics"], input=exposition, capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stderr.decode() + checked.stdout.decode()
    text = exposition.decode()
    for name in (
        "http_server_request_duration_seconds_bucket",
        "http_server_active_requests",
        "slipstream_cache_requests_total",
        "slipstream_compression_output_bytes_total",
    ):
        assert name in text


async def test_openmetrics_with_exemplars_and_gzip_are_negotiated() -> None:
    async with asgi_client(MetricsApp(filled_registry())) as client:
        plain = await client.get("/")
        open_metrics = await client.get("/", headers={"accept": "application/openmetrics-text; version=1.0.0"})
        compressed = await client.get("/", headers={"accept-encoding": "gzip"})
    assert plain.headers["content-type"].startswith("text/plain")
    assert "# {trace_id=" not in plain.text
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert '# {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.012' in open_metrics.text
    assert compressed.headers["content-encoding"] == "gzip"
    assert "http_server_request_duration_seconds" in compressed.text


@pytest.mark.parametrize(
    ("options", "headers", "status"),
    [
        ({"bearer_token": "s3cret"}, {}, 401),
        ({"bearer_token": "s3cret"}, {"authorization": "Bearer wrong"}, 401),
        ({"bearer_token": "s3cret"}, {"authorization": "Bearer s3cret"}, 200),
        # RFC 9110 §11.1: the scheme is case-insensitive; the token is not.
        ({"bearer_token": "s3cret"}, {"authorization": "bearer s3cret"}, 200),
        ({"bearer_token": "s3cret"}, {"authorization": "BEARER s3cret"}, 200),
        ({"bearer_token": "s3cret"}, {"authorization": "Bearer S3CRET"}, 401),
        ({"bearer_token": "s3cret"}, {"authorization": "Basic s3cret"}, 401),
        ({"bearer_token": "s3cret"}, {"authorization": "Bearers3cret"}, 401),
        ({"bearer_token": "s3cret"}, {"authorization": "s3cret"}, 401),
        ({"allow_networks": ("10.0.0.0/8",)}, {}, 403),
        ({"allow_networks": ("127.0.0.0/8",)}, {}, 200),
        ({"allow_networks": ("127.0.0.1",), "bearer_token": "t"}, {"authorization": "Bearer t"}, 200),
    ],
)
async def test_access_control(options: dict[str, object], headers: dict[str, str], status: int) -> None:
    import httpx as client_library

    transport = client_library.ASGITransport(app=MetricsApp(CollectorRegistry(), **options), client=("127.0.0.1", 5))  # type: ignore[arg-type]
    async with client_library.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_separate_port_server_serves_and_guards_metrics() -> None:
    server = MetricsServer(free_port(), registry=filled_registry(), bearer_token="tok")
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        assert httpx.get(url).status_code == 401
        # only /metrics: nothing else on the port answers with metrics
        elsewhere = httpx.get(f"http://127.0.0.1:{server.port}/report", headers={"authorization": "Bearer tok"})
        assert (elsewhere.status_code, elsewhere.text) == (404, "404 Not Found: this port serves /metrics\n")
        response = httpx.get(url, headers={"authorization": "Bearer tok", "accept-encoding": "gzip"})
        assert response.status_code == 200
        assert httpx.get(url, headers={"authorization": "bearer tok"}).status_code == 200
        assert httpx.get(url, headers={"authorization": "bearer TOK"}).status_code == 401
        assert response.headers["content-encoding"] == "gzip"
        assert "slipstream_operation_duration_seconds_count" in response.text
    finally:
        server.stop()


def test_a_token_beyond_ascii_reads_the_same_on_the_separate_port() -> None:
    # The WSGI server hands the header over decoded as latin-1 (PEP 3333); its bytes, as sent, are what is compared.
    server = MetricsServer(free_port(), registry=filled_registry(), bearer_token="pässwörd")
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        assert httpx.get(url, headers={b"authorization": "Bearer pässwörd".encode()}).status_code == 200
        assert httpx.get(url, headers={"authorization": "Bearer passwort"}).status_code == 401
    finally:
        server.stop()


async def test_lifespan_is_answered() -> None:
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return next(messages)

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])

    await MetricsApp(CollectorRegistry())({"type": "lifespan"}, receive, send)  # type: ignore[arg-type]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
