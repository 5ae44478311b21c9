"""Which tracer slipstream's spans go to: one given by ``install`` (our OTLP setup), else the app's global one."""

from __future__ import annotations

from opentelemetry import trace


def global_tracer() -> trace.Tracer | None:
    """A tracer from the app's global provider when one is configured; None (no spans, no cost) otherwise."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return provider.get_tracer("slipstream")
