"""L1: an in-process LRU bounded by bytes, with per-entry expiry. Every operation is O(1) but the purges."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from slipstream.cache.entry import HEADER_OVERHEAD, CacheEntry
from slipstream.cache.keys import secondary_key
from slipstream.cache.negotiated_fields import content_language, preferred_language, variant_language


@dataclass
class _Resource:
    """Everything stored for one primary key: the Vary fields it was seen with and one entry per variant."""

    vary: tuple[str, ...]
    entries: dict[str, tuple[CacheEntry, float]] = field(default_factory=dict)  # secondary -> (entry, expires_at)
    size: int = 0
    # Content-Language -> the secondary key of the latest variant in it, for a Vary of Accept-Language alone: at
    # most one item per variant, so bounded with them (their overhead estimate covers it).
    languages: dict[str, str] = field(default_factory=dict)


class MemoryStore:
    """Byte-bounded LRU of CacheEntry objects; what it holds never exceeds ``max_bytes`` by its own accounting."""

    def __init__(self, max_bytes: int, *, clock: Callable[[], float] = time.time) -> None:
        self.max_bytes = max_bytes
        self.clock = clock
        self.bytes = 0
        self.evictions = 0
        self._resources: OrderedDict[str, _Resource] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        # Sync code (``@cached`` plain functions in worker threads) shares the store with the event loop.
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return sum(len(resource.entries) for resource in self._resources.values())

    def vary_of(self, primary: str) -> tuple[str, ...] | None:
        with self._lock:
            resource = self._resources.get(primary)
            return None if resource is None else resource.vary

    def get(self, primary: str, fields: Mapping[str, str]) -> CacheEntry | None:
        with self._lock:
            resource = self._resources.get(primary)
            if resource is None:
                return None
            secondary = secondary_key(resource.vary, fields)
            if secondary not in resource.entries and resource.languages:
                secondary = self._language_variant(resource, fields) or secondary
            found = resource.entries.get(secondary)
            if found is None:
                return None
            entry, expires_at = found
            if expires_at <= self.clock():
                self._drop_entry(primary, resource, secondary)
                return None
            self._resources.move_to_end(primary)
            return entry

    def put(self, primary: str, entry: CacheEntry, secondary: str, ttl: float) -> bool:
        """Store ``entry``; False when it alone is larger than the whole budget."""
        with self._lock:
            size = entry.size() + len(primary) + len(secondary)
            if size > self.max_bytes:
                return False
            resource = self._resources.get(primary)
            if resource is not None and resource.vary != entry.vary:
                self.delete(primary)  # a new Vary makes the old variants unreachable
                resource = None
            if resource is None:
                resource = self._resources[primary] = _Resource(entry.vary)
            else:
                self._drop_entry(primary, resource, secondary, keep_empty=True)
                self._resources.move_to_end(primary)
            resource.entries[secondary] = (entry, self.clock() + ttl)
            language = variant_language(entry.vary, entry.headers)
            if language is not None:
                resource.languages[language] = secondary
            resource.size += size
            self.bytes += size
            for tag in entry.tags:
                self._tags.setdefault(tag, set()).add(primary)
            self._evict(keep=primary)
            return primary in self._resources

    def add_variant(self, primary: str, entry: CacheEntry, coding: str, data: bytes) -> None:
        """Attach an encoded body filled on demand, accounting for its bytes (and evicting if need be)."""
        with self._lock:
            if coding in entry.variants:
                return
            entry.variants[coding] = data
            resource = self._resources.get(primary)
            if resource is not None and any(stored is entry for stored, _ in resource.entries.values()):
                added = len(data) + HEADER_OVERHEAD
                resource.size += added
                self.bytes += added
                self._evict(keep=primary)

    def delete(self, primary: str) -> bool:
        with self._lock:
            resource = self._resources.pop(primary, None)
            if resource is None:
                return False
            self.bytes -= resource.size
            for entry, _ in resource.entries.values():
                self._untag(primary, entry.tags)
            return True

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            return sum(self.delete(primary) for primary in [p for p in self._resources if p.startswith(prefix)])

    def purge_tags(self, tags: Iterable[str]) -> int:
        with self._lock:
            primaries = set().union(*(self._tags.get(tag, set()) for tag in tags))
            return sum(self.delete(primary) for primary in primaries)

    def clear(self) -> int:
        with self._lock:
            count = len(self._resources)
            self._resources.clear()
            self._tags.clear()
            self.bytes = 0
            return count

    def _evict(self, keep: str) -> None:
        while self.bytes > self.max_bytes and self._resources:
            oldest = next(iter(self._resources))
            if oldest == keep and len(self._resources) > 1:
                self._resources.move_to_end(keep)
                continue
            self.delete(oldest)
            self.evictions += 1

    @staticmethod
    def _language_variant(resource: _Resource, fields: Mapping[str, str]) -> str | None:
        """The secondary key of a variant in the one language the request prefers to all others, if one is stored:
        what the origin would choose for it, since it has that language (see README, "Response cache")."""
        language = preferred_language(fields.get("accept-language", ""))
        secondary = None if language is None else resource.languages.get(language)
        found = None if secondary is None else resource.entries.get(secondary)
        # A 304 may have changed the variant's Content-Language since it was indexed.
        return secondary if found is not None and content_language(found[0].headers) == language else None

    def _drop_entry(self, primary: str, resource: _Resource, secondary: str, keep_empty: bool = False) -> None:
        found = resource.entries.pop(secondary, None)
        if found is not None:
            for language in [name for name, indexed in resource.languages.items() if indexed == secondary]:
                del resource.languages[language]
            entry = found[0]
            size = entry.size() + len(primary) + len(secondary)
            resource.size -= size
            self.bytes -= size
            still_tagged = {tag for other, _ in resource.entries.values() for tag in other.tags}
            self._untag(primary, [tag for tag in entry.tags if tag not in still_tagged])
        if not resource.entries and not keep_empty:
            self._resources.pop(primary, None)
            self.bytes -= resource.size
            resource.size = 0

    def _untag(self, primary: str, tags: Iterable[str]) -> None:
        for tag in tags:
            members = self._tags.get(tag)
            if members is not None:
                members.discard(primary)
                if not members:
                    del self._tags[tag]
