"""Which media types are worth compressing."""

from __future__ import annotations

from collections.abc import Iterable

_CACHE_LIMIT = 256


def _normalise(patterns: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...], bool]:
    exact: set[str] = set()
    prefixes: list[str] = []
    everything = False
    for raw in patterns:
        pattern = raw.strip().lower()
        if pattern in ("*", "*/*"):
            everything = True
        elif pattern.endswith("/*"):
            prefixes.append(pattern[:-1])
        elif pattern.endswith("/"):
            prefixes.append(pattern)
        elif pattern:
            exact.add(pattern)
    return frozenset(exact), tuple(prefixes), everything


class _MediaTypeSet:
    def __init__(self, patterns: Iterable[str]) -> None:
        self.exact, self.prefixes, self.everything = _normalise(patterns)

    def __contains__(self, media_type: str) -> bool:
        return self.everything or media_type in self.exact or media_type.startswith(self.prefixes)


class CompressiblePolicy:
    """Decides from a Content-Type value whether a response may be compressed.

    An include match wins over an exclude match, so ``exclude=("*",)`` with an include list is an allow list.
    ``text/event-stream`` follows its own switch, because compressing it only works with per-event flushing.
    """

    def __init__(self, exclude: Iterable[str], include: Iterable[str], event_stream: bool) -> None:
        self._exclude = _MediaTypeSet(exclude)
        self._include = _MediaTypeSet(include)
        self._event_stream = event_stream
        self._cache: dict[bytes | None, bool] = {}

    def __call__(self, content_type: bytes | None) -> bool:
        try:
            return self._cache[content_type]
        except KeyError:
            pass
        decision = self._decide(content_type)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[content_type] = decision
        return decision

    def _decide(self, content_type: bytes | None) -> bool:
        if content_type is None:
            return True
        media_type = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
        if media_type == "text/event-stream":
            return self._event_stream
        return media_type in self._include or media_type not in self._exclude
