"""slipstream: drop-in ASGI middleware for Starlette and FastAPI."""

from slipstream.config import Settings
from slipstream.middleware.compression import CompressionMiddleware
from slipstream.middleware.conditional import ConditionalMiddleware
from slipstream.setup import install

__all__ = ["CompressionMiddleware", "ConditionalMiddleware", "Settings", "install"]
__version__ = "0.1.0"
