"""The root package: names loaded on first use, no extra imported by ``import slipstream``, missing extras named."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import subprocess
import sys
from collections.abc import Sequence
from types import ModuleType

import pytest

import slipstream
from slipstream import ResponseCache, Settings
from slipstream.extras import missing_extra

OPTIONAL = ("sqlalchemy", "opentelemetry.sdk", "redis", "zstandard")


def test_importing_the_package_or_its_names_loads_no_extra() -> None:
    script = (
        "import sys, slipstream\n"
        "from slipstream import install, Settings, CacheMiddleware, CompressionMiddleware, ConditionalMiddleware\n"
        "from slipstream import TimingMiddleware, Instrumentation, timed, cached, current_record\n"
        f"print(sorted(name for name in {OPTIONAL!r} if name in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"


def test_every_public_name_resolves_and_unknown_ones_are_attribute_errors() -> None:
    for name in slipstream.__all__:
        assert getattr(slipstream, name) is not None
    assert set(slipstream.__all__) <= set(dir(slipstream))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        slipstream.nothing_here  # noqa: B018


def test_a_name_whose_extra_is_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(vars(slipstream), "instrument_sqlalchemy", raising=False)
    for name in [name for name in sys.modules if name.split(".")[0] == "sqlalchemy" or "slipstream.sqlalchemy" in name]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # as if the extra were not installed
    with pytest.raises(ImportError, match=r"pip install 'slipstream\[sqlalchemy\]'"):
        slipstream.instrument_sqlalchemy  # noqa: B018


def test_a_name_whose_module_is_missing_for_another_reason_is_not_blamed_on_an_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(vars(slipstream), "timed", raising=False)
    monkeypatch.delitem(sys.modules, "slipstream.timed")
    monkeypatch.setitem(sys.modules, "slipstream.timed", None)
    with pytest.raises(ModuleNotFoundError):
        slipstream.timed  # noqa: B018


def test_a_missing_extra_is_named_where_its_feature_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in sys.modules if name.split(".")[0] == "redis" or "slipstream.cache.redis" in name]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)  # as if the extra were not installed
    with pytest.raises(ImportError, match=r"cache_redis_url needs the redis extra: pip install 'slipstream\[redis\]'"):
        ResponseCache.from_settings(Settings(cache_redis_url="redis://127.0.0.1:1"))


def test_an_import_error_that_is_not_a_missing_extra_is_raised_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = ImportError("cannot import name 'Thing' from 'redis.asyncio'")
    monkeypatch.delitem(sys.modules, "slipstream.cache.redis_store", raising=False)
    monkeypatch.setattr(sys, "meta_path", [RaiseOn("slipstream.cache.redis_store", broken), *sys.meta_path])
    with pytest.raises(ImportError) as raised:
        ResponseCache.from_settings(Settings(cache_redis_url="redis://127.0.0.1:1"))
    assert raised.value is broken
    assert missing_extra(ModuleNotFoundError("No module named 'yaml'", name="yaml"), "a feature", "redis") is None


class RaiseOn(importlib.abc.MetaPathFinder):
    def __init__(self, module: str, error: ImportError) -> None:
        self.module, self.error = module, error

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == self.module:
            raise self.error
        return None
