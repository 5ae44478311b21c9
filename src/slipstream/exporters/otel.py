"""OpenTelemetry tracer and meter providers exporting over OTLP/HTTP, built from the ``otel_*`` settings.

OpenTelemetry keeps the first global provider a process sets and refuses the rest, so ours becomes the global
only when the app has not set one, and slipstream asks ``Telemetry`` for its tracer rather than the globals:
with our providers it gets ours, without them the app's own, and with neither it gets None and builds no span.
Only the API is imported here; the SDK and the OTLP exporter (the ``otel`` extra) are imported when an
``otel_endpoint`` asks for our own providers.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opentelemetry import trace

from slipstream.config import Settings
from slipstream.extras import needs_extra

if TYPE_CHECKING:
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["Telemetry", "TracerSource", "configure_opentelemetry", "mark_failed", "signal_endpoints"]

logger = logging.getLogger(__name__)

_SIGNAL_PATHS = ("/v1/traces", "/v1/metrics", "/v1/logs")


class Telemetry:
    """Where slipstream's spans and OpenTelemetry metrics go: our own providers, else the app's global ones.

    ``tracer()`` and ``meter()`` return None when nothing would record what they make, so callers skip the work.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        enabled: bool = True,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.enabled = enabled
        self.shutdown_timeout = shutdown_timeout
        self._lock = threading.Lock()
        self._shut_down = False

    def tracer(self, name: str, version: str | None = None) -> trace.Tracer | None:
        if not self.enabled:
            return None
        provider = self.tracer_provider if self.tracer_provider is not None else trace.get_tracer_provider()
        tracer = provider.get_tracer(name, version)
        # The API's default proxy and no-op tracers (and a disabled SDK's) make spans that nobody records. A proxy
        # provider given a real provider since hands out that provider's tracers, so it passes.
        return None if isinstance(tracer, (trace.NoOpTracer, trace.ProxyTracer)) else tracer

    def meter(self, name: str, version: str | None = None) -> metrics.Meter | None:
        if not self.enabled:
            return None
        # The metrics API is imported here, not with the module: most apps never ask for a meter.
        from opentelemetry import metrics
        from opentelemetry.metrics._internal import _ProxyMeter

        provider = self.meter_provider if self.meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter(name, version)
        return None if isinstance(meter, (metrics.NoOpMeter, _ProxyMeter)) else meter

    def shutdown(self) -> None:
        """Export what is buffered and stop our providers, within ``shutdown_timeout`` seconds. Never raises.

        A collector that is down or hangs must not hold up or fail the app's own shutdown, so the work runs in a
        daemon thread that is abandoned, with a warning, once the time is up.
        """
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
        atexit.unregister(self.shutdown)
        if self.tracer_provider is None and self.meter_provider is None:
            return
        worker = threading.Thread(target=self._shutdown_providers, name="slipstream-otel-shutdown", daemon=True)
        try:
            worker.start()
        except RuntimeError:  # pragma: no cover - Python 3.12+ starts no threads in atexit handlers
            self._shutdown_providers()
            return
        worker.join(self.shutdown_timeout)
        if worker.is_alive():
            logger.warning(
                "OpenTelemetry export did not finish within %gs (is the collector at the OTLP endpoint reachable?); "
                "spans and metrics not yet exported are dropped",
                self.shutdown_timeout,
            )

    def _shutdown_providers(self) -> None:
        if self.tracer_provider is not None:
            try:
                # The batch processor exports every queued span before it stops.
                self.tracer_provider.shutdown()
            except Exception:
                logger.exception("shutting down the OpenTelemetry tracer provider failed")
        if self.meter_provider is not None:
            try:
                # The periodic reader collects and exports once more before it stops. It gets the whole budget even
                # when the spans took it: past the budget this thread is abandoned, and it still closes the exporter.
                self.meter_provider.shutdown(timeout_millis=self.shutdown_timeout * 1000)
            except Exception:
                logger.exception("shutting down the OpenTelemetry meter provider failed")


def mark_failed(span: trace.Span, error: BaseException) -> None:
    """What every slipstream span does with an exception: record it, name its type, set an ERROR status."""
    kind = type(error).__qualname__
    span.record_exception(error)
    span.set_attribute("error.type", kind)
    span.set_status(trace.Status(trace.StatusCode.ERROR, kind))


class TracerSource:
    """A tracer, None (no spans), or a Telemetry asked for its tracer at first use: apps often set their tracer
    provider up after building the middleware stack. ``possible`` turns False once there is known to be none."""

    __slots__ = ("_given", "possible")

    def __init__(self, given: trace.Tracer | Telemetry | None) -> None:
        self._given = given
        self.possible = given is not None

    def get(self) -> trace.Tracer | None:
        given = self._given
        if isinstance(given, Telemetry):
            given = self._given = given.tracer("slipstream")
            self.possible = given is not None
        return given


def signal_endpoints(endpoint: str) -> tuple[str, str]:
    """The OTLP/HTTP traces and metrics URLs under a collector base URL; a signal's URL is taken back to its base."""
    base = endpoint.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"otel_endpoint must be an http:// or https:// URL such as http://127.0.0.1:4318, got {endpoint!r}"
        )
    for path in _SIGNAL_PATHS:
        if base.endswith(path):
            base = base[: -len(path)]
            break
    return f"{base}/v1/traces", f"{base}/v1/metrics"


def configure_opentelemetry(
    settings: Settings,
    *,
    service_version: str | None = None,
    export_timeout: float = 10.0,
    shutdown_timeout: float = 5.0,
    install_globals: bool = True,
) -> Telemetry:
    """Providers exporting to ``settings.otel_endpoint``, or none of our own when it is unset.

    ``export_timeout`` bounds each OTLP request, retries included. With ``install_globals`` our providers also
    become OpenTelemetry's globals, for the app's other instrumentation, unless the app has set its own.
    Call ``shutdown()`` on the result when the app stops; it also runs at interpreter exit.
    """
    if not settings.tracing_enabled:
        return Telemetry(enabled=False)
    if settings.otel_endpoint is None:
        return Telemetry(shutdown_timeout=shutdown_timeout)
    traces_url, metrics_url = signal_endpoints(settings.otel_endpoint)
    with needs_extra("otel_endpoint (OTEL_EXPORTER_OTLP_ENDPOINT)", "otel"):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from slipstream import __version__

    attributes = {
        # The OpenTelemetry specification's name for a service nobody named.
        SERVICE_NAME: settings.otel_service_name or "unknown_service",
        "telemetry.distro.name": "slipstream",
        "telemetry.distro.version": __version__,
    }
    if service_version:
        attributes[SERVICE_VERSION] = service_version
    # Resource.create adds telemetry.sdk.* and OTEL_RESOURCE_ATTRIBUTES; the attributes given here win.
    resource = Resource.create(attributes)
    tracer_provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(settings.otel_sample_ratio)),
        resource=resource,
        shutdown_on_exit=False,
    )
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url, timeout=export_timeout))
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=metrics_url, timeout=export_timeout), export_timeout_millis=export_timeout * 1000
    )
    meter_provider = MeterProvider(metric_readers=[reader], resource=resource, shutdown_on_exit=False)
    telemetry = Telemetry(tracer_provider, meter_provider, shutdown_timeout=shutdown_timeout)
    # The SDK's own exit hook would wait on a dead collector for as long as it takes; ours is bounded.
    atexit.register(telemetry.shutdown)
    if install_globals:
        _install_globals(tracer_provider, meter_provider)
    logger.info("exporting OpenTelemetry traces to %s and metrics to %s", traces_url, metrics_url)
    return telemetry


def _install_globals(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
    from opentelemetry import metrics
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    # Until a provider is set the API hands out its proxies; any other provider is the app's and stays. Checking
    # first keeps the API from logging "Overriding of current TracerProvider is not allowed".
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(tracer_provider)
    else:
        logger.info("the app set its own OpenTelemetry tracer provider: slipstream's spans go to otel_endpoint only")
    # The meter proxy's class is private to the API; it has had this name since metrics became stable.
    if isinstance(metrics.get_meter_provider(), _ProxyMeterProvider):
        metrics.set_meter_provider(meter_provider)
    else:
        logger.info("the app set its own OpenTelemetry meter provider: slipstream's metrics go to otel_endpoint only")
