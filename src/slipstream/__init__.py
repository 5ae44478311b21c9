"""slipstream: drop-in ASGI middleware for Starlette and FastAPI.

The public names are loaded on first use (PEP 562), so ``import slipstream`` costs next to nothing and loads no
optional dependency: a name is imported from its module when it is first looked up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slipstream.cache.decorator import cached
    from slipstream.cache.response_cache import ResponseCache
    from slipstream.cache.tags import tag_response
    from slipstream.config import Settings
    from slipstream.instrumentation import Instrumentation, current_instrumentation
    from slipstream.middleware.cache import CacheMiddleware
    from slipstream.middleware.compression import CompressionMiddleware
    from slipstream.middleware.conditional import ConditionalMiddleware
    from slipstream.middleware.timing import TimingMiddleware
    from slipstream.outbound.calls import record_llm_usage
    from slipstream.outbound.httpx_client import instrument_httpx
    from slipstream.record import Receiver, RequestRecord, current_record
    from slipstream.setup import install
    from slipstream.sqlalchemy.hooks import instrument_sqlalchemy, uninstrument_sqlalchemy
    from slipstream.timed import timed

__all__ = [
    "CacheMiddleware",
    "CompressionMiddleware",
    "ConditionalMiddleware",
    "Instrumentation",
    "Receiver",
    "RequestRecord",
    "ResponseCache",
    "Settings",
    "TimingMiddleware",
    "cached",
    "current_instrumentation",
    "current_record",
    "install",
    "instrument_httpx",
    "instrument_sqlalchemy",
    "record_llm_usage",
    "tag_response",
    "timed",
    "uninstrument_sqlalchemy",
]
__version__ = "0.1.0"

# Where each public name lives.
_MODULES = {
    "CacheMiddleware": "slipstream.middleware.cache",
    "CompressionMiddleware": "slipstream.middleware.compression",
    "ConditionalMiddleware": "slipstream.middleware.conditional",
    "Instrumentation": "slipstream.instrumentation",
    "Receiver": "slipstream.record",
    "RequestRecord": "slipstream.record",
    "ResponseCache": "slipstream.cache.response_cache",
    "Settings": "slipstream.config",
    "TimingMiddleware": "slipstream.middleware.timing",
    "cached": "slipstream.cache.decorator",
    "current_instrumentation": "slipstream.instrumentation",
    "current_record": "slipstream.record",
    "install": "slipstream.setup",
    "instrument_httpx": "slipstream.outbound.httpx_client",
    "record_llm_usage": "slipstream.outbound.calls",
    "instrument_sqlalchemy": "slipstream.sqlalchemy.hooks",
    "tag_response": "slipstream.cache.tags",
    "timed": "slipstream.timed",
    "uninstrument_sqlalchemy": "slipstream.sqlalchemy.hooks",
}


# Names whose module needs an extra: looking one up without it says what to install.
_EXTRAS = {"instrument_sqlalchemy": "sqlalchemy", "uninstrument_sqlalchemy": "sqlalchemy"}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'slipstream' has no attribute {name!r}")
    from slipstream.extras import needs_extra

    with needs_extra(f"slipstream.{name}", _EXTRAS.get(name)):
        loaded = importlib.import_module(module)
    value = getattr(loaded, name)
    globals()[name] = value  # later look-ups do not come here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
