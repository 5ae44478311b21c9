"""httpx clients, sync and async, measured by wrapping their transports: ``instrument_httpx(client)``.

The wrapper sits where the client hands a request to its connection pool, so it sees every request the client
sends (redirects and retries each count) and the response body as the caller reads it: each chunk is passed on as
it comes, and the last one (or closing the response) ends the call. Works with httpx and with httpx2, its
successor with the same API that the official OpenAI SDK now builds on; neither is imported here, so the clients
are handled by what they do, not by their classes. Both SDKs (OpenAI, Anthropic) take a client: ``http_client=``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

from slipstream.instrumentation import Instrumentation, current_instrumentation
from slipstream.outbound.calls import OutboundCall

C = TypeVar("C")


def instrument_httpx(client: C, *, instrumentation: Instrumentation | None = None) -> C:
    """Measure every call ``client`` (an ``httpx`` or ``httpx2`` Client or AsyncClient) makes, in place, and return
    it. Without ``instrumentation``, a call is measured for the app it is made for (the current request's, or the
    app whose lifespan started the code); a call made outside any app goes out unmeasured. Instrumenting a client
    twice changes nothing.

    httpx offers no public way to wrap the transports of a client already built, so this replaces its
    ``_transport`` and ``_mounts`` (as OpenTelemetry's httpx instrumentation does); a client you build yourself can
    take ``transport=InstrumentedAsyncTransport(httpx.AsyncHTTPTransport())`` instead."""
    kind = InstrumentedAsyncTransport if hasattr(client, "aclose") else InstrumentedTransport
    target: Any = client

    def wrap(transport: Any) -> Any:
        if transport is None or isinstance(transport, kind):
            return transport
        return kind(transport, instrumentation)

    target._transport = wrap(target._transport)
    target._mounts = {pattern: wrap(transport) for pattern, transport in target._mounts.items()}
    return client


def _begin(instrumentation: Instrumentation | None, request: Any) -> OutboundCall | None:
    instrumentation = instrumentation or current_instrumentation()
    if instrumentation is None:
        return None
    url = request.url
    try:
        body: bytes = request.content  # a streamed request body has not been read: it is no LLM request of ours
    except Exception:
        body = b""
    return OutboundCall(
        instrumentation.outbound,
        method=request.method,
        scheme=url.scheme,
        host=url.host,
        port=url.port,
        path=url.path,
        headers=request.headers,
        body=body,
    )


@functools.cache
def _stream_class(library: str, asynchronous: bool) -> type[Any]:
    """Our body wrapper as a subclass of the library's own byte stream class, which its client checks for."""
    module = importlib.import_module(library)
    if asynchronous:
        return type("AsyncBody", (_AsyncBody, module.AsyncByteStream), {})
    return type("SyncBody", (_SyncBody, module.SyncByteStream), {})


def _body_class(response: Any, asynchronous: bool) -> type[Any]:
    return _stream_class(type(response).__module__.partition(".")[0], asynchronous)


def _responded(call: OutboundCall, response: Any) -> None:
    call.responded(response.status_code, response.headers.get("content-type", ""), response.http_version)


class InstrumentedAsyncTransport:
    """An async transport measuring the calls it passes to ``inner``."""

    def __init__(self, inner: Any, instrumentation: Instrumentation | None = None) -> None:
        self.inner = inner
        self.instrumentation = instrumentation

    async def handle_async_request(self, request: Any) -> Any:
        call = _begin(self.instrumentation, request)
        if call is None:
            return await self.inner.handle_async_request(request)
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException as error:
            call.finish(error)
            raise
        _responded(call, response)
        response.stream = _body_class(response, True)(response.stream, call)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> InstrumentedAsyncTransport:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.inner.__aexit__(*exc_info)


class _AsyncBody:
    def __init__(self, inner: Any, call: OutboundCall) -> None:
        self.inner = inner
        self.call = call

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.inner:
                self.call.chunk(chunk)
                yield chunk
        except BaseException as error:
            self.call.finish(error)
            raise
        self.call.finish()

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            self.call.finish()  # a body closed unread ends the call too (a no-op once it has ended)


class InstrumentedTransport:
    """A sync transport measuring the calls it passes to ``inner``."""

    def __init__(self, inner: Any, instrumentation: Instrumentation | None = None) -> None:
        self.inner = inner
        self.instrumentation = instrumentation

    def handle_request(self, request: Any) -> Any:
        call = _begin(self.instrumentation, request)
        if call is None:
            return self.inner.handle_request(request)
        try:
            response = self.inner.handle_request(request)
        except BaseException as error:
            call.finish(error)
            raise
        _responded(call, response)
        response.stream = _body_class(response, False)(response.stream, call)
        return response

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> InstrumentedTransport:
        self.inner.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.inner.__exit__(*exc_info)


class _SyncBody:
    def __init__(self, inner: Any, call: OutboundCall) -> None:
        self.inner = inner
        self.call = call

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.inner:
                self.call.chunk(chunk)
                yield chunk
        except BaseException as error:
            self.call.finish(error)
            raise
        self.call.finish()

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.call.finish()
