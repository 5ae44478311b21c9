"""The optional extras: which packages each brings, and the error that says which one to install."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

# The top-level packages each extra installs (pyproject.toml's optional dependencies).
EXTRA_PACKAGES = {
    "sqlalchemy": frozenset({"sqlalchemy", "greenlet"}),
    "redis": frozenset({"redis"}),
    "zstd": frozenset({"zstandard"}),
    "otel": frozenset({"opentelemetry"}),
}


def extra_needed(feature: str, extra: str) -> str:
    return f"{feature} needs the {extra} extra: pip install 'slipstream[{extra}]'"


def missing_extra(error: ImportError, feature: str, extra: str) -> ImportError | None:
    """The error to raise when ``error`` says a package of ``extra`` is not installed; None when it is about
    something else (a bug in an installed package, say), which should be raised as it is."""
    name = error.name if isinstance(error, ModuleNotFoundError) else None
    if name is None or name.split(".")[0] not in EXTRA_PACKAGES[extra]:
        return None
    return ImportError(extra_needed(feature, extra))


@contextlib.contextmanager
def needs_extra(feature: str, extra: str | None) -> Iterator[None]:
    """Around the imports of ``feature``: a package of ``extra`` that is not installed becomes the error naming the
    extra; any other import error goes on as it is."""
    try:
        yield
    except ImportError as exc:
        missing = None if extra is None else missing_extra(exc, feature, extra)
        if missing is None:
            raise
        raise missing from exc
