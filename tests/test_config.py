from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from slipstream import Settings


def test_defaults() -> None:
    settings = Settings()
    assert settings.compression_encodings == ("br", "zstd", "gzip")
    assert settings.compression_minimum_size == 500
    assert settings.conditional_generate_etags is True


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().compression_minimum_size = 1  # type: ignore[misc]


def test_from_env_reads_every_kind_of_field() -> None:
    settings = Settings.from_env(
        {
            "SLIPSTREAM_COMPRESSION_ENCODINGS": "gzip, br",
            "SLIPSTREAM_COMPRESSION_MINIMUM_SIZE": " 1024 ",
            "SLIPSTREAM_COMPRESSION_EVENT_STREAM": "yes",
            "SLIPSTREAM_CONDITIONAL_WEAK_ETAGS": "On",
            "SLIPSTREAM_CONDITIONAL_ENABLED": "0",
            "SLIPSTREAM_COMPRESSION_EXCLUDE_PATHS": "",
            "UNRELATED": "ignored",
        }
    )
    assert settings.compression_encodings == ("gzip", "br")
    assert settings.compression_minimum_size == 1024
    assert settings.compression_event_stream is True
    assert settings.conditional_weak_etags is True
    assert settings.conditional_enabled is False
    assert settings.compression_exclude_paths == ()


def test_from_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPSTREAM_COMPRESSION_GZIP_LEVEL", "9")
    assert Settings.from_env().compression_gzip_level == 9


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SLIPSTREAM_COMPRESSION_MINIMUM_SIZE": "big"}, "expected an integer"),
        ({"SLIPSTREAM_COMPRESSION_ENABLED": "maybe"}, "expected a boolean"),
        ({"SLIPSTREAM_COMPRESION_ENABLED": "1"}, "unknown slipstream setting"),
        ({"SLIPSTREAM_COMPRESSION_ZSTD_LEVEL": "99"}, "between -7 and 22"),
    ],
)
def test_from_env_errors_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(environ)


def test_integer_options_reject_other_types() -> None:
    with pytest.raises(TypeError, match="must be an integer"):
        Settings(compression_minimum_size=True)


def test_cache_settings_from_env() -> None:
    settings = Settings.from_env(
        {
            "SLIPSTREAM_CACHE_REDIS_URL": "redis://127.0.0.1:6390/0",
            "SLIPSTREAM_CACHE_REDIS_TIMEOUT": "0.08",
            "SLIPSTREAM_CACHE_ROUTE_TTLS": "/api/.*=30, /static/.*=3600",
            "SLIPSTREAM_CACHE_STATUS_HEADER": "X-Edge-Cache",
        }
    )
    assert settings.cache_redis_url == "redis://127.0.0.1:6390/0"
    assert settings.cache_redis_timeout == 0.08
    assert settings.cache_route_ttls == ("/api/.*=30", "/static/.*=3600")
    assert settings.cache_status_header == "X-Edge-Cache"
    assert Settings.from_env({"SLIPSTREAM_CACHE_REDIS_URL": " "}).cache_redis_url is None


def test_cache_key_headers_from_env() -> None:
    settings = Settings.from_env({"SLIPSTREAM_CACHE_KEY_HEADERS": "X-Forwarded-Host, X-Forwarded-Proto"})
    assert settings.cache_key_headers == ("X-Forwarded-Host", "X-Forwarded-Proto")
    assert Settings().cache_key_headers == ()


def test_a_route_ttl_may_apply_to_requests_carrying_credentials() -> None:
    settings = Settings.from_env({"SLIPSTREAM_CACHE_ROUTE_TTLS": r"^/me$=60;credentials, .*\.css$=3600"})
    assert settings.cache_route_ttls == ("^/me$=60;credentials", r".*\.css$=3600")


def test_heuristic_freshness_is_off_unless_asked_for() -> None:
    assert (Settings().cache_heuristic_fraction, Settings().cache_heuristic_max_seconds) == (0.0, 86400.0)
    settings = Settings.from_env(
        {"SLIPSTREAM_CACHE_HEURISTIC_FRACTION": "0.1", "SLIPSTREAM_CACHE_HEURISTIC_MAX_SECONDS": "3600"}
    )
    assert (settings.cache_heuristic_fraction, settings.cache_heuristic_max_seconds) == (0.1, 3600.0)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SLIPSTREAM_CACHE_HEURISTIC_FRACTION": "1.5"}, "cache_heuristic_fraction must be between 0 and 1"),
        ({"SLIPSTREAM_CACHE_HEURISTIC_FRACTION": "-0.1"}, "cache_heuristic_fraction must be between 0 and 1"),
        ({"SLIPSTREAM_CACHE_HEURISTIC_FRACTION": "nan"}, "cache_heuristic_fraction must be between 0 and 1"),
        ({"SLIPSTREAM_CACHE_HEURISTIC_FRACTION": "10%"}, "expected a number"),
        ({"SLIPSTREAM_CACHE_HEURISTIC_MAX_SECONDS": "-1"}, "cache_heuristic_max_seconds must be at least 0"),
        ({"SLIPSTREAM_CACHE_HEURISTIC_MAX_SECONDS": "nan"}, "cache_heuristic_max_seconds must be at least 0"),
    ],
)
def test_bad_heuristic_freshness_settings(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(environ)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SLIPSTREAM_CACHE_REDIS_TIMEOUT": "soon"}, "expected a number"),
        ({"SLIPSTREAM_CACHE_ROUTE_TTLS": "/api=forever"}, "expected 'regex=seconds'"),
        ({"SLIPSTREAM_CACHE_ROUTE_TTLS": "=30"}, "expected 'regex=seconds'"),
        ({"SLIPSTREAM_CACHE_ROUTE_TTLS": "(=30"}, "expected 'regex=seconds'"),
        ({"SLIPSTREAM_CACHE_ROUTE_TTLS": "/me=30;always"}, "'regex=seconds;credentials'"),
        ({"SLIPSTREAM_CACHE_ROUTE_TTLS": "/me=;credentials"}, "'regex=seconds;credentials'"),
        ({"SLIPSTREAM_CACHE_EXCLUDE_PATHS": "(unclosed"}, "bad regular expression"),
        ({"SLIPSTREAM_CACHE_KEY_HEADERS": "X-Forwarded-Host, x forwarded"}, "cache_key_headers: expected field names"),
        ({"SLIPSTREAM_CACHE_KEY_HEADERS": "Accept-Encoding"}, "cache_key_headers: expected field names"),
        ({"SLIPSTREAM_CACHE_HIT_FOR_MISS": "-1"}, "cache_hit_for_miss must be at least 0"),
        (
            {"SLIPSTREAM_METRICS_MULTIPROCESS_FLUSH_INTERVAL": "-0.5"},
            "metrics_multiprocess_flush_interval must be at least 0",
        ),
    ],
)
def test_bad_cache_settings(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(environ)


def test_telemetry_settings_follow_the_standard_variables() -> None:
    settings = Settings.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
            "OTEL_SERVICE_NAME": "shop",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_SDK_DISABLED": "true",
            "PROMETHEUS_MULTIPROC_DIR": "/tmp/prom",
            "SLIPSTREAM_TIMING_BUCKETS": "0.01, 0.1,1",
            "SLIPSTREAM_METRICS_PORT": "",
        }
    )
    assert settings.otel_endpoint == "http://127.0.0.1:4318"
    assert settings.otel_service_name == "shop"
    assert settings.otel_sample_ratio == 0.25
    assert settings.tracing_enabled is False
    assert settings.metrics_multiprocess_dir == "/tmp/prom"
    assert settings.timing_buckets == (0.01, 0.1, 1.0)
    assert settings.metrics_port is None


def test_slipstream_variables_win_over_the_standard_ones() -> None:
    settings = Settings.from_env(
        {"OTEL_SERVICE_NAME": "a", "SLIPSTREAM_OTEL_SERVICE_NAME": "b", "OTEL_SDK_DISABLED": "true"}
        | {"SLIPSTREAM_TRACING_ENABLED": "1", "SLIPSTREAM_METRICS_PORT": "9100"}
    )
    assert (settings.otel_service_name, settings.tracing_enabled, settings.metrics_port) == ("b", True, 9100)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metrics_names": "datadog"}, "metrics_names must be one of"),
        ({"otel_sample_ratio": 1.5}, "otel_sample_ratio"),
        ({"timing_bottleneck_share": 0.0}, "timing_bottleneck_share"),
        ({"timing_buckets": (1.0, 0.5)}, "timing_buckets"),
        ({"timing_buckets": ()}, "timing_buckets"),
        ({"metrics_path": "metrics"}, "must start with '/'"),
        ({"report_path": "report"}, "must start with '/'"),
        ({"metrics_allow_networks": ("10.0.0.0/8", "nonsense")}, "nonsense"),
    ],
)
def test_bad_telemetry_settings_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**options)


def test_bucket_variables_must_be_numbers() -> None:
    with pytest.raises(ValueError, match="SLIPSTREAM_TIMING_BUCKETS: expected a number"):
        Settings.from_env({"SLIPSTREAM_TIMING_BUCKETS": "0.1,fast"})
