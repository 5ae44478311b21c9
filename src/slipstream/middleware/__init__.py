"""Pure ASGI middlewares; each works alone with ``app.add_middleware(...)``.

Import each from its module (or from ``slipstream``): this package imports none of them, so importing one
middleware loads only what that middleware needs.
"""
