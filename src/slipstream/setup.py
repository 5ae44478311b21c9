"""The one-call setup: every enabled middleware, composed in the order DESIGN.md gives."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette

from slipstream.cache.decorator import set_default_cache
from slipstream.cache.response_cache import ResponseCache
from slipstream.config import Settings
from slipstream.middleware.cache import CacheMiddleware
from slipstream.middleware.compression import CompressionMiddleware
from slipstream.middleware.conditional import ConditionalMiddleware


@dataclass(frozen=True)
class Installation:
    """What ``install`` set up: the settings in force and the response cache (None when the cache is off)."""

    settings: Settings
    cache: ResponseCache | None


def install(app: Starlette, settings: Settings | None = None) -> Installation:
    """Add slipstream's middlewares to a Starlette or FastAPI app.

    Order, outermost first: cache, compression, conditional requests, then the app. Starlette puts the
    middleware added last outermost, so they are added inner first. The cache is also on
    ``app.state.slipstream_cache``, for purges from endpoints.
    """
    settings = settings or Settings.from_env()
    if settings.conditional_enabled:
        app.add_middleware(ConditionalMiddleware, settings=settings)
    if settings.compression_enabled:
        app.add_middleware(CompressionMiddleware, settings=settings)
    cache = None
    if settings.cache_enabled:
        cache = ResponseCache.from_settings(settings)
        app.add_middleware(CacheMiddleware, settings=settings, cache=cache)
        app.state.slipstream_cache = cache
        set_default_cache(cache)
    return Installation(settings, cache)
