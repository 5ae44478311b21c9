"""Where the benchmarks' spans go: each span-making contender gets a pipeline of its own, all set up alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON


class CountingExporter(SpanExporter):
    """Discards the spans a BatchSpanProcessor hands it, counting them."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


@dataclass
class SpanPipeline:
    """An SDK TracerProvider sampling every trace, with a BatchSpanProcessor (default queue, batch and delay) over an
    exporter that counts and discards: spans are built, ended and queued as in production, then dropped."""

    provider: TracerProvider = field(default_factory=lambda: TracerProvider(sampler=ALWAYS_ON))
    exporter: CountingExporter = field(default_factory=CountingExporter)

    def __post_init__(self) -> None:
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter))

    def exported(self) -> int:
        """Spans exported so far, the queue flushed first."""
        self.provider.force_flush()
        return self.exporter.spans


def global_span_pipeline() -> SpanPipeline:
    """A pipeline whose provider becomes the process's global one: the tracer provider ``install`` finds."""
    pipeline = SpanPipeline()
    trace.set_tracer_provider(pipeline.provider)
    return pipeline
