"""Every knob slipstream has, in one frozen dataclass; the environment is read here and nowhere else."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slipstream.extras import extra_needed
from slipstream.http.codecs import Codec, available_encodings, make_codecs

ENV_PREFIX = "SLIPSTREAM_"
# The standard variables of OpenTelemetry and prometheus_client, read when the SLIPSTREAM_ one is unset.
STANDARD_VARIABLES = {
    "otel_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "otel_service_name": "OTEL_SERVICE_NAME",
    "otel_sample_ratio": "OTEL_TRACES_SAMPLER_ARG",
    "metrics_multiprocess_dir": "PROMETHEUS_MULTIPROC_DIR",
}
METRIC_NAME_SETS = ("semconv", "starlette_exporter", "instrumentator")
# Every coding this installation can produce (zstd with the ``zstd`` extra), in server preference order.
DEFAULT_ENCODINGS = available_encodings()
# OpenTelemetry's advisory buckets for http.server.request.duration (seconds).
DURATION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)

# Already-compressed or incompressible media: compressing them burns CPU for no gain.
# A trailing "/" matches the whole top-level type.
DEFAULT_EXCLUDED_CONTENT_TYPES: tuple[str, ...] = (
    "image/",
    "video/",
    "audio/",
    "font/woff",
    "font/woff2",
    "application/zip",
    "application/gzip",
    "application/x-gzip",
    "application/x-bzip2",
    "application/x-xz",
    "application/x-7z-compressed",
    "application/x-rar-compressed",
    "application/zstd",
    "application/br",
    "application/grpc",
    "application/pdf",
    "application/wasm",
)
# RFC 9110 §5.1: a field name is a token.
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# Images that are text and compress well are let back in even though "image/" is excluded.
DEFAULT_INCLUDED_CONTENT_TYPES: tuple[str, ...] = ("image/svg+xml", "image/x-icon", "image/bmp")


@dataclass(frozen=True)
class Settings:
    """All slipstream options. Build one directly, or with ``Settings.from_env()`` from ``SLIPSTREAM_*`` variables."""

    compression_enabled: bool = True
    # Server preference order; ties in the client's q-values are broken by this order.
    compression_encodings: tuple[str, ...] = DEFAULT_ENCODINGS
    compression_minimum_size: int = 500
    compression_brotli_quality: int = 4
    compression_gzip_level: int = 6
    compression_zstd_level: int = 3
    # Bodies (and streamed chunks) at least this large are compressed in a worker thread.
    compression_thread_threshold: int = 128 * 1024
    compression_event_stream: bool = False
    compression_exclude_content_types: tuple[str, ...] = DEFAULT_EXCLUDED_CONTENT_TYPES
    # Matches here win over the exclude list; "*" alone turns the exclude list off.
    compression_include_content_types: tuple[str, ...] = DEFAULT_INCLUDED_CONTENT_TYPES
    # Regular expressions matched against the request path: matching routes are never compressed (BREACH opt-out).
    compression_exclude_paths: tuple[str, ...] = ()

    conditional_enabled: bool = True
    conditional_generate_etags: bool = True
    conditional_weak_etags: bool = False
    # Evaluate If-Match / If-None-Match / If-Unmodified-Since on unsafe methods against a GET of the same URL.
    conditional_check_unsafe_methods: bool = True

    cache_enabled: bool = True
    # L2: a Redis URL ("redis://host:6379/0"); unset means the in-memory tier only.
    cache_redis_url: str | None = None
    cache_redis_prefix: str = "slipstream:"
    cache_redis_timeout: float = 0.05
    # Key of the digests that stand in for credential values (Cookie, Authorization) in Redis; set the same value on
    # every instance to share entries that vary on them. Unset: a random key per process.
    cache_redis_secret: str | None = dataclasses.field(default=None, repr=False)
    cache_memory_bytes: int = 64 * 1024 * 1024
    cache_max_entry_bytes: int = 8 * 1024 * 1024
    # Freshness for responses without explicit freshness, per route: "regex=seconds" (first match wins). A rule skips
    # requests carrying credentials (Cookie other than ignored ones, Authorization) unless written
    # "regex=seconds;credentials": a private page at a path that looks static must not be shared (cache deception).
    cache_route_ttls: tuple[str, ...] = ()
    # Heuristic freshness (RFC 9111 §4.2.2) for responses with Last-Modified and no explicit freshness: this fraction
    # of the time since Last-Modified (0.1 is usual), at most cache_heuristic_max_seconds. 0 turns it off: a cache
    # inside the app does not start storing responses the app never marked.
    cache_heuristic_fraction: float = 0.0
    cache_heuristic_max_seconds: float = 86400.0
    cache_exclude_paths: tuple[str, ...] = ()
    # Query parameters left out of the key, and removed from the request the app sees; glob patterns allowed.
    cache_ignore_query_params: tuple[str, ...] = ("utm_*", "gclid", "fbclid")
    # Request fields every entry is keyed on, as if every response named them in Vary: the ones the app trusts
    # without saying so (X-Forwarded-Host, X-Forwarded-Proto behind a proxy).
    cache_key_headers: tuple[str, ...] = ()
    # Cookies that do not make a request personal (analytics); glob patterns allowed. They are removed from the GET
    # and HEAD requests the app sees through the cache, so a request whose only cookies are these is anonymous.
    cache_ignore_cookies: tuple[str, ...] = ("_ga*", "_gid", "_gcl_*", "_fbp")
    # False (Varnish's stance): a response to a request carrying cookies is stored only when it says public or
    # names Cookie in Vary. True: stored as RFC 9111 lets a shared cache store it.
    cache_store_cookie_requests: bool = False
    # Response header reporting HIT, MISS, STALE or BYPASS; empty turns it off.
    cache_status_header: str = "X-Cache"
    # Request Cache-Control: no-cache / max-age=0 and Pragma: no-cache force revalidation (RFC 9111).
    cache_honour_client_no_cache: bool = True
    cache_allow_set_cookie: bool = False
    # Concurrent misses wait this long for the one request filling the entry, then go to the app themselves.
    cache_coalesce_timeout: float = 5.0
    # A URL whose response was just not stored (uncacheable, streamed) is not coalesced for this long after.
    cache_hit_for_miss: float = 5.0
    # How long a stale entry with a validator is kept to be revalidated after its stale windows end.
    cache_revalidation_grace: float = 300.0
    # Targeted cache fields (RFC 9213), most specific first: the first one present and valid replaces Cache-Control
    # and Expires for the cache's own decisions. All but CDN-Cache-Control are removed from responses; () turns it off.
    cache_targeted_fields: tuple[str, ...] = ("Slipstream-Cache-Control", "CDN-Cache-Control")

    timing_enabled: bool = True
    # Server-Timing response header: app time, cache outcome, db time and query count, each @timed operation.
    timing_server_timing: bool = True
    # An operation taking more than this share of its request's time is flagged as the request's bottleneck.
    timing_bottleneck_share: float = 0.2
    # Duration histogram buckets in seconds; OpenTelemetry's advisory buckets by default.
    timing_buckets: tuple[float, ...] = DURATION_BUCKETS

    # Also export the HTTP metrics under "starlette_exporter" or "instrumentator" names, for existing dashboards.
    metrics_names: str = "semconv"
    # /metrics on its own port, served from a thread of the app process; None turns it off. With
    # metrics_multiprocess_dir set, workers do not serve: the `slipstream sidecar` process does.
    metrics_port: int | None = 9464
    metrics_host: str = "127.0.0.1"
    # Also mount /metrics on the app's own (public) port at this path; protect it with a token or allowlist.
    metrics_path: str | None = None
    metrics_bearer_token: str | None = None
    metrics_allow_networks: tuple[str, ...] = ()
    # prometheus_client's multiprocess directory (PROMETHEUS_MULTIPROC_DIR), for several worker processes.
    metrics_multiprocess_dir: str | None = None
    # In multiprocess mode, the request path's increments are summed in memory and written to the worker's file every
    # this many seconds (and at shutdown), not one file write each: the sidecar lags by at most this much, and a
    # worker killed outright loses at most its last interval. 0 writes every increment at once.
    metrics_multiprocess_flush_interval: float = 0.1
    # A JSON report (slowest routes, errors, cache hit ratio, compression savings, slowest operations) served
    # at /report next to /metrics on the metrics port, and at report_path on the app when that is set.
    report_enabled: bool = False
    report_path: str | None = None
    # The live page (tables and charts refreshing in a browser) at / of the metrics port and of `slipstream sidecar`,
    # and at live_path on the app's port when set; guarded like the metrics.
    live_enabled: bool = True
    live_path: str | None = None
    # Seconds between two snapshots of the page's history; it keeps 60 (the last hour by default).
    live_history_interval: float = 60.0

    # At the app's lifespan startup, collect once and move every object the process holds out of the garbage
    # collector's way (gc.freeze()): full collections, which spans waiting in a batch processor set off among
    # others, then walk what was made since instead of pausing the server for tens of milliseconds each.
    gc_freeze: bool = True

    # One SERVER span per request, when a tracer provider exists (ours from the otel_* settings, or the app's).
    tracing_enabled: bool = True
    # OTLP/HTTP collector base URL (e.g. http://127.0.0.1:4318): traces and metrics are exported there.
    otel_endpoint: str | None = None
    otel_service_name: str | None = None
    # Share of new traces sampled; a sampled or unsampled parent (traceparent) is always followed.
    otel_sample_ratio: float = 1.0

    # Statements at least this slow (seconds) are logged, counted and kept in the report's top list.
    db_slow_query_threshold: float = 0.1
    # A CLIENT span per statement, child of the request's span; off for hot paths.
    db_spans: bool = True
    # One SELECT fingerprint run this many times in one request is an N+1 finding.
    db_n_plus_one_threshold: int = 5
    # Run the database's plan command once per slow SELECT fingerprint and report full scans as index hints.
    db_index_hints: bool = False

    # Outbound HTTP calls of instrumented httpx clients: the first this many server addresses are metric labels,
    # later ones are counted as "other".
    outbound_max_hosts: int = 50
    # Hosts (host or host:port) whose responses are read for LLM token usage (OpenAI- and Anthropic-style APIs).
    gen_ai_hosts: tuple[str, ...] = ("api.openai.com", "api.anthropic.com")
    # Prices per million tokens, "model=input/output" (e.g. "gpt-4o=2.5/10"), in gen_ai_currency; a model's
    # price is its exact name's, else the longest listed prefix's. Empty: no cost is counted.
    gen_ai_prices: tuple[str, ...] = ()
    gen_ai_currency: str = "USD"

    def __post_init__(self) -> None:
        for rule in self.gen_ai_prices:
            parse_price(rule)
        if self.outbound_max_hosts < 1:
            raise ValueError(f"outbound_max_hosts must be at least 1, got {self.outbound_max_hosts}")
        known = available_encodings()
        for name in self.compression_encodings:
            if name == "zstd" and name not in known:
                raise ValueError(extra_needed("zstd compression (the 'zstandard' package)", "zstd"))
            if name not in known:
                raise ValueError(f"unknown encoding {name!r}; choose from {', '.join(known)}")
        if len(set(self.compression_encodings)) != len(self.compression_encodings):
            raise ValueError(f"duplicate encoding in {self.compression_encodings!r}")
        _check_range("compression_brotli_quality", self.compression_brotli_quality, 0, 11)
        _check_range("compression_gzip_level", self.compression_gzip_level, 0, 9)
        _check_range("compression_zstd_level", self.compression_zstd_level, -7, 22)
        _check_range("compression_minimum_size", self.compression_minimum_size, 0, None)
        _check_range("compression_thread_threshold", self.compression_thread_threshold, 0, None)
        for route in self.cache_route_ttls:
            parse_route_ttl(route)
        if not 0 <= self.cache_heuristic_fraction <= 1:
            raise ValueError(f"cache_heuristic_fraction must be between 0 and 1, got {self.cache_heuristic_fraction}")
        if not self.cache_heuristic_max_seconds >= 0:
            raise ValueError(f"cache_heuristic_max_seconds must be at least 0, got {self.cache_heuristic_max_seconds}")
        for name in self.cache_key_headers:
            if not _FIELD_NAME.fullmatch(name) or name.lower() == "accept-encoding":
                raise ValueError(
                    f"cache_key_headers: expected field names other than Accept-Encoding (every coding is in one "
                    f"entry), got {name!r}"
                )
        targeted = [name.lower() for name in self.cache_targeted_fields]
        for name in self.cache_targeted_fields:
            if not _FIELD_NAME.fullmatch(name) or name.lower() in ("cache-control", "expires"):
                raise ValueError(
                    f"cache_targeted_fields: expected field names other than Cache-Control and Expires (the fields "
                    f"they stand in for), got {name!r}"
                )
        if len(set(targeted)) != len(targeted):
            raise ValueError(f"cache_targeted_fields: a field named twice in {self.cache_targeted_fields!r}")
        if self.metrics_multiprocess_flush_interval < 0:
            interval = self.metrics_multiprocess_flush_interval
            raise ValueError(f"metrics_multiprocess_flush_interval must be at least 0, got {interval}")
        if self.cache_hit_for_miss < 0:
            raise ValueError(f"cache_hit_for_miss must be at least 0, got {self.cache_hit_for_miss}")
        _check_range("db_n_plus_one_threshold", self.db_n_plus_one_threshold, 2, None)
        if self.db_slow_query_threshold < 0:
            raise ValueError(f"db_slow_query_threshold must be at least 0, got {self.db_slow_query_threshold}")
        if self.metrics_names not in METRIC_NAME_SETS:
            raise ValueError(f"metrics_names must be one of {', '.join(METRIC_NAME_SETS)}, got {self.metrics_names!r}")
        if not 0 <= self.otel_sample_ratio <= 1:
            raise ValueError(f"otel_sample_ratio must be between 0 and 1, got {self.otel_sample_ratio}")
        if not 0 < self.timing_bottleneck_share <= 1:
            raise ValueError(
                f"timing_bottleneck_share must be above 0 and at most 1, got {self.timing_bottleneck_share}"
            )
        if not self.timing_buckets or list(self.timing_buckets) != sorted(set(self.timing_buckets)):
            raise ValueError(f"timing_buckets must be increasing and not empty, got {self.timing_buckets!r}")
        for path in (self.metrics_path, self.report_path):
            if path is not None and not path.startswith("/"):
                raise ValueError(f"metrics_path and report_path must start with '/', got {path!r}")
        if self.live_path is not None and (not self.live_path.startswith("/") or not self.live_path.strip("/")):
            raise ValueError(f"live_path must start with '/' and name a path below the root, got {self.live_path!r}")
        if not self.live_history_interval > 0:
            raise ValueError(f"live_history_interval must be above 0, got {self.live_history_interval}")
        for network in self.metrics_allow_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"metrics_allow_networks: not an address or network: {network!r}") from None
        for pattern in self.compression_exclude_paths + self.cache_exclude_paths:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"exclude paths: bad regular expression {pattern!r}: {exc}") from None

    def codecs(self) -> dict[str, Codec]:
        """The codecs of ``compression_encodings`` at the configured levels, in preference order."""
        return make_codecs(
            self.compression_encodings,
            brotli_quality=self.compression_brotli_quality,
            gzip_level=self.compression_gzip_level,
            zstd_level=self.compression_zstd_level,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``SLIPSTREAM_<FIELD>`` variables; unset ones keep their defaults.

        A few fields also follow the standard variable of their tool (``OTEL_EXPORTER_OTLP_ENDPOINT``,
        ``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER_ARG``, ``PROMETHEUS_MULTIPROC_DIR``, and
        ``OTEL_SDK_DISABLED=true`` turning tracing off) when the ``SLIPSTREAM_`` one is unset.
        """
        env = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if name not in env:
                name = STANDARD_VARIABLES.get(f.name, name)
            if name in env:
                values[f.name] = _parse_env_value(name, env[name], hints[f.name])
        if ENV_PREFIX + "TRACING_ENABLED" not in env and env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            values["tracing_enabled"] = False
        unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX) :].lower() not in hints)
        if unknown:
            raise ValueError(f"unknown slipstream setting(s): {', '.join(unknown)}")
        return cls(**values)


def parse_route_ttl(rule: str) -> tuple[str, float, bool]:
    """``regex=seconds`` or ``regex=seconds;credentials``: the pattern, the freshness in seconds, and whether the
    rule also applies to requests carrying credentials."""
    pattern, _, value = rule.rpartition("=")
    seconds, _, flag = value.partition(";")
    try:
        re.compile(pattern)
        ttl = float(seconds)
    except (re.error, ValueError):
        ttl = -1.0
    if not pattern or ttl < 0 or flag.strip() not in ("", "credentials"):
        raise ValueError(f"cache_route_ttls: expected 'regex=seconds' or 'regex=seconds;credentials', got {rule!r}")
    return pattern, ttl, flag.strip() == "credentials"


def parse_price(rule: str) -> tuple[str, float, float]:
    """``model=input/output``: the model (or model prefix) and its prices per million input and output tokens."""
    model, _, prices = rule.partition("=")
    given, _, produced = prices.partition("/")
    try:
        input_price, output_price = float(given), float(produced)
    except ValueError:
        input_price = output_price = -1.0
    if not model.strip() or input_price < 0 or output_price < 0:
        raise ValueError(f"gen_ai_prices: expected 'model=input/output' (prices per million tokens), got {rule!r}")
    return model.strip(), input_price, output_price


def path_matcher(patterns: tuple[str, ...]) -> Callable[[str], object] | None:
    """One compiled ``re.match`` for a tuple of path regular expressions; None when there are none."""
    return re.compile("|".join(f"(?:{p})" for p in patterns)).match if patterns else None


def _check_range(name: str, value: int, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _parse_env_value(name: str, raw: str, hint: Any) -> object:
    if hint is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"{name}: expected a boolean (1/0, true/false, yes/no, on/off), got {raw!r}")
    if hint is int:
        try:
            return int(raw.strip())
        except ValueError:
            raise ValueError(f"{name}: expected an integer, got {raw!r}") from None
    if hint is float:
        try:
            return float(raw.strip())
        except ValueError:
            raise ValueError(f"{name}: expected a number, got {raw!r}") from None
    if hint == (str | None):
        return raw.strip() or None
    if hint == (int | None):
        return _parse_env_value(name, raw, int) if raw.strip() else None
    if hint is str:
        return raw
    if typing.get_origin(hint) is tuple:
        parts = [part.strip() for part in raw.split(",") if part.strip()]
        if typing.get_args(hint)[0] is float:
            return tuple(typing.cast(float, _parse_env_value(name, part, float)) for part in parts)
        return tuple(parts)
    raise TypeError(f"{name}: no parser for {hint!r}")  # pragma: no cover - guards future fields
