"""How CompressionMiddleware hands the identity response to a cache sitting outside it."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Message

# The cache puts an IdentityCapture in the scope under this key; compression fills it in.
CAPTURE_SCOPE_KEY = "slipstream.capture"


@dataclass(slots=True)
class IdentityCapture:
    """``negotiated``: compression chose the coding of this response, so a client accepting none of the codings
    (not even identity) gets 406 and one refusing identity gets a coding whatever the type and size.
    ``compressible``: the response's type and status allow encoding. ``start``/``body``: the identity
    response as the app sent it, recorded when compression replaced it with an encoded one. ``revalidation``: the
    cache is revalidating a stored response, so a 304 made inside it may carry every field of the 200 (RFC 9110
    §15.4.5 allows metadata that guides cache updates) and the stored response is refreshed with all of them."""

    revalidation: bool = False
    # A body in several messages: the cache sets ``keep`` (True: it keeps the response to store it; False: not, or
    # no longer) at the first streamed chunk; compression keeps the identity chunks meanwhile, at most ``limit`` bytes.
    keep: bool | None = None
    limit: int = 0
    negotiated: bool = False
    compressible: bool = False
    start: Message | None = None
    body: bytes | None = None
