"""Pure ASGI middlewares; each works alone with ``app.add_middleware(...)``."""

from slipstream.middleware.cache import CacheMiddleware
from slipstream.middleware.compression import CompressionMiddleware
from slipstream.middleware.conditional import ConditionalMiddleware
from slipstream.middleware.timing import TimingMiddleware

__all__ = ["CacheMiddleware", "CompressionMiddleware", "ConditionalMiddleware", "TimingMiddleware"]
