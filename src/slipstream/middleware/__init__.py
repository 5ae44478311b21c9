"""Pure ASGI middlewares; each works alone with ``app.add_middleware(...)``."""

from slipstream.middleware.compression import CompressionMiddleware
from slipstream.middleware.conditional import ConditionalMiddleware

__all__ = ["CompressionMiddleware", "ConditionalMiddleware"]
