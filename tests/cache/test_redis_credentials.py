"""What Redis sees of a request: only the fields a stored Vary names, and credentials only as keyed digests.

An operator watching ``MONITOR`` or reading ``SLOWLOG`` must never see a session cookie or a bearer token.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from starlette.types import Receive, Scope, Send

from slipstream import ResponseCache, Settings
from slipstream.cache.memory import MemoryStore
from slipstream.cache.redis_store import RedisStore
from tests.middleware.test_cache import stack
from tests.redis_server import RedisServer
from tests.support import call_asgi, stop_process

pytestmark = pytest.mark.anyio
PAGE = "http://example.test/me"
SECRETS = ("alice-cookie-secret", "alice-token-secret", "bob-cookie-secret")
ALICE = [
    ("cookie", "session=alice-cookie-secret"),
    ("authorization", "Bearer alice-token-secret"),
    ("user-agent", "agent-not-in-vary"),
]


async def per_user(scope: Scope, receive: Receive, send: Send) -> None:
    user = b"alice" if b"alice" in dict(scope["headers"]).get(b"cookie", b"") else b"someone else"
    headers = [(b"cache-control", b"public, max-age=60"), (b"vary", b"Cookie, Authorization")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"page of " + user})


class Monitor:
    """``redis-cli monitor`` writing every command the server receives to a file, as an operator would watch it."""

    def __init__(self, server: RedisServer, directory: Path) -> None:
        self.path = directory / "monitor.log"
        executable = shutil.which("redis-cli")
        assert executable is not None, "redis-cli is missing: run make test, which installs it"
        with self.path.open("wb") as out:
            self.process = subprocess.Popen([executable, "-p", str(server.port), "monitor"], stdout=out)

    async def seen(self, client: Redis, marker: str) -> str:
        """Everything monitored up to ``ECHO marker``, sent last."""
        await client.echo(marker)
        deadline = time.monotonic() + 10
        while marker not in (text := self.path.read_text(errors="replace")):
            assert time.monotonic() < deadline, "redis-cli monitor saw nothing"
            time.sleep(0.01)
        return text


@pytest.fixture
def monitor(redis_server: RedisServer, tmp_path: Path) -> Iterator[Monitor]:
    watcher = Monitor(redis_server, tmp_path)
    time.sleep(0.2)  # redis-cli connects and sends MONITOR
    yield watcher
    stop_process(watcher.process)


async def leaks(raw: Redis, monitor: Monitor, marker: str) -> list[str]:
    """The secrets (and the field no Vary names) found in what MONITOR, SLOWLOG and the stored entries show."""
    watched = await monitor.seen(raw, marker)
    assert "EVALSHA" in watched.upper()
    slowlog = repr(await raw.slowlog_get(1024))
    stored = repr([await raw.hgetall(key) for key in await raw.keys("*:e:*")])
    seen = watched + slowlog + stored
    return [value for value in (*SECRETS, "agent-not-in-vary") if value in seen]


async def test_credentials_never_reach_redis_in_clear(redis_server: RedisServer, raw: Redis, monitor: Monitor) -> None:
    await raw.config_set("slowlog-log-slower-than", 0)
    alone = ResponseCache(MemoryStore(1 << 20), RedisStore.from_url(redis_server.url, prefix="test:"))
    try:  # no secret: digests keyed by this process alone
        first = await call_asgi(stack(per_user, cache=alone), path="/me", headers=ALICE)
        assert first.headers["x-cache"] == "MISS"
    finally:
        await alone.close()
    assert await leaks(raw, monitor, "one-instance") == []
    # Two instances with the same secret share the variants keyed on credentials, through Redis alone.
    settings = Settings(cache_redis_url=redis_server.url, cache_redis_prefix="shared:", cache_redis_secret="s3")
    caches = [ResponseCache.from_settings(settings) for _ in range(2)]
    try:
        apps = [stack(per_user, cache=cache) for cache in caches]
        await call_asgi(apps[0], path="/me", headers=ALICE)
        from_redis = await call_asgi(apps[1], path="/me", headers=ALICE)
        bob = await call_asgi(apps[1], path="/me", headers=[("cookie", "session=bob-cookie-secret"), *ALICE[1:]])
    finally:
        for cache in caches:
            await cache.close()
    assert (from_redis.headers["x-cache"], from_redis.body) == ("HIT", b"page of alice")
    assert (bob.headers["x-cache"], bob.body) == ("MISS", b"page of someone else")
    assert await leaks(raw, monitor, "two-instances") == []
    assert len(await raw.keys("shared:e:*")) == 1


async def test_credential_digests_match_only_with_the_same_secret(redis_server: RedisServer, raw: Redis) -> None:
    stores = [RedisStore.from_url(redis_server.url, secret=secret) for secret in ("s", "s", "t")]
    vary = ("accept-language", "cookie")
    alice = {"accept-language": "en", "cookie": "session=alice", "authorization": "Bearer x"}
    try:
        await stores[0].put(PAGE, vary, stores[0].secondary(vary, alice), b"alice", 60, ())
        assert await stores[1].get(PAGE, alice) == b"alice"
        assert await stores[1].get(PAGE, alice, vary) == b"alice"
        assert await stores[1].get(PAGE, {**alice, "cookie": "session=bob"}) is None
        assert await stores[2].get(PAGE, alice) is None
        fields = await raw.hkeys(stores[0].entry_key(PAGE))
        assert len(fields) == 3 and not [f for f in fields if b"alice" in f]
    finally:
        for store in stores:
            await store.close()
    assert "s3" not in repr(Settings(cache_redis_secret="s3"))
    assert Settings.from_env({"SLIPSTREAM_CACHE_REDIS_SECRET": "s3"}).cache_redis_secret == "s3"
