from __future__ import annotations

from slipstream.cache.entry import HEADER_OVERHEAD, CacheEntry
from slipstream.cache.keys import request_fields, secondary_key
from slipstream.cache.memory import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(body: bytes = b"x" * 100, vary: tuple[str, ...] = (), tags: tuple[str, ...] = ()) -> CacheEntry:
    return CacheEntry(200, [(b"content-type", b"text/plain")], body, None, None, 0.0, 0.0, 60.0, vary=vary, tags=tags)


def test_get_put_and_expiry() -> None:
    clock = Clock()
    store = MemoryStore(10_000, clock=clock)
    stored = entry()
    assert store.put("u", stored, "", ttl=5)
    assert store.get("u", {}) is stored
    clock.now += 5
    assert store.get("u", {}) is None
    assert store.bytes == 0 and len(store) == 0


def test_variants_by_vary_and_a_changed_vary_drops_old_ones() -> None:
    store = MemoryStore(10_000)
    english, french = entry(b"hello", ("accept-language",)), entry(b"bonjour", ("accept-language",))
    store.put("u", english, secondary_key(english.vary, {"accept-language": "en"}), 60)
    store.put("u", french, secondary_key(french.vary, {"accept-language": "fr"}), 60)
    assert store.get("u", {"accept-language": "fr"}) is french
    assert store.get("u", {"accept-language": "de"}) is None
    assert len(store) == 2
    replaced = entry(b"any")
    store.put("u", replaced, "", 60)
    assert len(store) == 1 and store.vary_of("u") == ()


def test_replacing_an_entry_keeps_the_byte_count_exact() -> None:
    store = MemoryStore(10_000)
    for _ in range(3):
        store.put("u", entry(), "", 60)
    assert store.bytes == entry().size() + 1


def test_lru_eviction_by_bytes_keeps_the_newest() -> None:
    one = entry().size() + 2
    store = MemoryStore(one * 3)
    for name in ("/1", "/2", "/3"):
        store.put(name, entry(), "", 60)
    store.get("/1", {})  # recently used: survives
    store.put("/4", entry(), "", 60)
    assert store.vary_of("/2") is None
    assert all(store.vary_of(name) is not None for name in ("/1", "/3", "/4"))
    assert store.bytes <= store.max_bytes and store.evictions == 1


def test_an_entry_larger_than_the_budget_is_refused() -> None:
    store = MemoryStore(500)
    assert not store.put("u", entry(b"x" * 1000), "", 60)
    assert store.bytes == 0


def test_variants_filled_later_are_counted_and_evict() -> None:
    base = entry().size() + 2
    store = MemoryStore(base * 2 + 100)
    first, second = entry(), entry()
    store.put("/1", first, "", 60)
    store.put("/2", second, "", 60)
    store.add_variant("/2", second, "gzip", b"z" * 50)
    assert store.bytes == base * 2 + 50 + HEADER_OVERHEAD - base  # /1 was evicted to make room
    assert store.vary_of("/1") is None
    store.add_variant("/2", second, "gzip", b"again")  # already there: nothing changes
    store.add_variant("/gone", entry(), "br", b"b")  # not stored: only the entry object changes
    assert store.bytes <= store.max_bytes


def test_purges_by_tag_prefix_and_all() -> None:
    store = MemoryStore(100_000)
    store.put("http://h/a", entry(tags=("t1",)), "", 60)
    store.put("http://h/b", entry(tags=("t1", "t2")), "", 60)
    store.put("http://h/c/d", entry(), "", 60)
    assert store.purge_tags(["t1", "missing"]) == 2
    assert store.purge_tags(["t2"]) == 0
    assert store.delete_prefix("http://h/c/") == 1
    assert not store.delete("http://h/c/d")
    store.put("http://h/x", entry(), "", 60)
    assert store.clear() == 1 and store.bytes == 0


def test_a_tag_shared_by_two_variants_survives_dropping_one() -> None:
    clock = Clock()
    store = MemoryStore(100_000, clock=clock)
    short, long = entry(vary=("x",), tags=("t",)), entry(vary=("x",), tags=("t",))
    store.put("u", short, secondary_key(("x",), {"x": "1"}), ttl=1)
    store.put("u", long, secondary_key(("x",), {"x": "2"}), ttl=100)
    clock.now += 2
    assert store.get("u", {"x": "1"}) is None  # expired: dropped
    assert store.purge_tags(["t"]) == 1


def in_language(body: bytes, language: bytes, vary: tuple[str, ...] = ("accept-language",)) -> CacheEntry:
    stored = entry(body, vary)
    stored.headers.append((b"content-language", language))
    return stored


def accept(value: str) -> dict[str, str]:
    return request_fields([(b"accept-language", value.encode())], ("accept-language",))


def test_a_variant_in_the_language_a_request_prefers_to_all_others_is_reused() -> None:
    clock = Clock()
    store = MemoryStore(100_000, clock=clock)
    german, english = in_language(b"hallo", b"de"), in_language(b"hello", b"en")
    store.put("u", german, secondary_key(german.vary, accept("en, de")), 10)
    store.put("u", english, secondary_key(english.vary, accept("en")), 60)
    assert store.get("u", accept("fr;q=0.5, de;q=1.0")) is german
    assert store.get("u", accept("EN-us;q=0.1, en")) is english
    assert store.get("u", accept("de, en")) is german  # its own key: en and de weigh the same
    assert store.get("u", accept("fr, de")) is None  # fr weighs as much: the origin may have it
    assert store.get("u", accept("fr")) is None
    clock.now += 10  # the German variant expires: its language goes with it
    assert store.get("u", accept("de")) is None
    assert store.get("u", accept("en")) is english


def test_the_language_index_holds_one_item_a_language_and_forgets_dropped_variants() -> None:
    store = MemoryStore(1_000_000)
    for index in range(50):
        german = in_language(b"hallo", b"de")
        store.put("u", german, secondary_key(german.vary, accept(f"de, x-{index}")), 60)
    resource = store._resources["u"]
    assert len(resource.entries) == 50 and resource.languages == {"de": secondary_key(german.vary, accept("de, x-49"))}
    assert store.get("u", accept("de")) is german
    store.put("u", entry(vary=german.vary), secondary_key(german.vary, accept("de, x-49")), 60)  # no language now
    assert resource.languages == {} and store.get("u", accept("de")) is None


def test_a_variant_whose_language_changed_or_that_varies_on_more_is_not_reused() -> None:
    store = MemoryStore(100_000)
    german = in_language(b"hallo", b"de")
    store.put("u", german, secondary_key(german.vary, accept("en, de")), 60)
    german.headers[-1] = (b"content-language", b"fr")  # as a 304 updating the stored fields may
    assert store.get("u", accept("de")) is None
    vary = ("accept-language", "x-tenant")
    tenant = in_language(b"hallo", b"de", vary)
    store.put("t", tenant, secondary_key(vary, {**accept("en, de"), "x-tenant": "a"}), 60)
    assert store.get("t", {**accept("de"), "x-tenant": "a"}) is None
