"""What a middleware added alone records into, when ``install()`` did not give it the app's instrumentation."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slipstream.instrumentation import Instrumentation


def own_instrumentation() -> Instrumentation:
    """A new Instrumentation on the default registry, imported only now: importing a middleware module loads only
    what that middleware needs (the instrumentation brings the exporters, the report and OpenTelemetry's API)."""
    from slipstream.instrumentation import Instrumentation

    return Instrumentation()
