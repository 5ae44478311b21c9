"""The root package: names loaded on first use, no extra imported by ``import slipstream``, missing extras named."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import slipstream

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
