"""Content codings: one-shot and streaming compressors for brotli, gzip and zstd."""

from __future__ import annotations

import importlib.util
import threading
import zlib
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

import brotli

if TYPE_CHECKING:
    import zstandard


class StreamCompressor(Protocol):
    coding: str

    def compress_chunk(self, data: bytes) -> bytes:
        """Compress ``data`` and flush, so the client can decode everything sent so far."""

    def finish(self, data: bytes) -> bytes:
        """Compress the last ``data`` and end the stream."""


class Codec(Protocol):
    """A content coding: ``name`` is its Content-Encoding token, ``token`` the same as header bytes."""

    name: str
    token: bytes

    def compress(self, data: bytes) -> bytes: ...

    def stream(self) -> StreamCompressor: ...


def available_encodings() -> tuple[str, ...]:
    """The codings this installation can produce: zstd only with the ``zstd`` extra (looked for, not imported)."""
    try:
        installed = importlib.util.find_spec("zstandard") is not None
    except (ImportError, ValueError):  # pragma: no cover - a broken or half-removed installation
        installed = False
    return ("br", "zstd", "gzip") if installed else ("br", "gzip")


def _zstandard() -> ModuleType:
    # Imported by the first zstd codec, not by importing slipstream: most apps never pay for it.
    import zstandard

    return zstandard


class _BrotliStream:
    __slots__ = ("_compressor",)
    coding = "br"

    def __init__(self, quality: int) -> None:
        self._compressor = brotli.Compressor(quality=quality)

    def compress_chunk(self, data: bytes) -> bytes:
        return bytes(self._compressor.process(data) + self._compressor.flush())

    def finish(self, data: bytes) -> bytes:
        return bytes(self._compressor.process(data) + self._compressor.finish())


class BrotliCodec:
    name = "br"
    token = b"br"

    def __init__(self, quality: int) -> None:
        self.quality = quality

    def compress(self, data: bytes) -> bytes:
        compressed: bytes = brotli.compress(data, quality=self.quality)
        return compressed

    def stream(self) -> StreamCompressor:
        return _BrotliStream(self.quality)


class _GzipStream:
    __slots__ = ("_compressor",)
    coding = "gzip"

    def __init__(self, level: int) -> None:
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)

    def compress_chunk(self, data: bytes) -> bytes:
        return self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def finish(self, data: bytes) -> bytes:
        return self._compressor.compress(data) + self._compressor.flush(zlib.Z_FINISH)


class GzipCodec:
    name = "gzip"
    token = b"gzip"

    def __init__(self, level: int) -> None:
        self.level = level

    def compress(self, data: bytes) -> bytes:
        # wbits=31 writes the gzip container; compressobj keeps Python 3.10 support (zlib.compress has no wbits there).
        compressor = zlib.compressobj(self.level, zlib.DEFLATED, 31)
        return compressor.compress(data) + compressor.flush()

    def stream(self) -> StreamCompressor:
        return _GzipStream(self.level)


# zstandard.COMPRESSOBJ_FLUSH_BLOCK: end the block so the client can decode it, without ending the frame.
_FLUSH_BLOCK = 1


class _ZstdStream:
    __slots__ = ("_compressor",)
    coding = "zstd"

    def __init__(self, level: int) -> None:
        self._compressor: zstandard.ZstdCompressionObj = _zstandard().ZstdCompressor(level=level).compressobj()

    def compress_chunk(self, data: bytes) -> bytes:
        return self._compressor.compress(data) + self._compressor.flush(_FLUSH_BLOCK)

    def finish(self, data: bytes) -> bytes:
        return self._compressor.compress(data) + self._compressor.flush()


class ZstdCodec:
    name = "zstd"
    token = b"zstd"

    def __init__(self, level: int) -> None:
        self.module = _zstandard()
        self.level = level
        # A ZstdCompressor is not thread safe and costs ~20 µs to build: keep one per thread.
        self._local = threading.local()

    def compress(self, data: bytes) -> bytes:
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = self._local.compressor = self.module.ZstdCompressor(level=self.level)
        compressed: bytes = compressor.compress(data)
        return compressed

    def stream(self) -> StreamCompressor:
        return _ZstdStream(self.level)


def make_codecs(names: Iterable[str], *, brotli_quality: int, gzip_level: int, zstd_level: int) -> dict[str, Codec]:
    """The codecs for ``names``, in that (preference) order."""
    levels = {"brotli_quality": brotli_quality, "gzip_level": gzip_level, "zstd_level": zstd_level}
    return {name: make_codec(name, **levels) for name in names}


def make_codec(name: str, *, brotli_quality: int, gzip_level: int, zstd_level: int) -> Codec:
    factories: dict[str, Callable[[], Codec]] = {
        "br": lambda: BrotliCodec(brotli_quality),
        "gzip": lambda: GzipCodec(gzip_level),
        "zstd": lambda: ZstdCodec(zstd_level),
    }
    return factories[name]()
