"""The one-call setup: every enabled middleware, composed in the order DESIGN.md gives."""

from __future__ import annotations

from starlette.applications import Starlette

from slipstream.config import Settings
from slipstream.middleware.compression import CompressionMiddleware
from slipstream.middleware.conditional import ConditionalMiddleware


def install(app: Starlette, settings: Settings | None = None) -> Settings:
    """Add slipstream's middlewares to a Starlette or FastAPI app; returns the settings in force.

    Order, outermost first: compression, then conditional requests, then the app. Starlette puts the
    middleware added last outermost, so they are added inner first.
    """
    settings = settings or Settings.from_env()
    if settings.conditional_enabled:
        app.add_middleware(ConditionalMiddleware, settings=settings)
    if settings.compression_enabled:
        app.add_middleware(CompressionMiddleware, settings=settings)
    return settings
