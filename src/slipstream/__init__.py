"""slipstream: drop-in ASGI middleware for Starlette and FastAPI."""

from slipstream.cache.decorator import cached
from slipstream.cache.response_cache import ResponseCache
from slipstream.cache.tags import tag_response
from slipstream.config import Settings
from slipstream.middleware.cache import CacheMiddleware
from slipstream.middleware.compression import CompressionMiddleware
from slipstream.middleware.conditional import ConditionalMiddleware
from slipstream.middleware.timing import TimingMiddleware
from slipstream.record import RequestRecord, current_record
from slipstream.setup import Installation, install
from slipstream.sqlalchemy.hooks import instrument_sqlalchemy, uninstrument_sqlalchemy
from slipstream.timed import timed

__all__ = [
    "CacheMiddleware",
    "CompressionMiddleware",
    "ConditionalMiddleware",
    "Installation",
    "RequestRecord",
    "ResponseCache",
    "Settings",
    "TimingMiddleware",
    "cached",
    "current_record",
    "install",
    "instrument_sqlalchemy",
    "tag_response",
    "timed",
    "uninstrument_sqlalchemy",
]
__version__ = "0.1.0"
