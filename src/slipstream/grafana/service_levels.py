"""The overview's rows on service levels (burn rates and budget left, from the recorded SLI rates) and on the
process (prometheus_client's default collectors, absent behind the sidecar)."""

from __future__ import annotations

from slipstream.grafana.panels import Panel, Query, here, rate, stat, timeseries
from slipstream.grafana.promql import sli_errors, sli_requests, sli_slow
from slipstream.grafana.values import GrafanaValues

__all__ = ["process_panels", "slo_panels"]


def slo_panels(v: GrafanaValues) -> list[Panel]:
    panels: list[Panel] = []
    longs = sorted({w.long for w in v.burn_windows}, key=v.windows.index)
    for slo, bad in (("availability", sli_errors), ("latency", sli_slow)):
        budget = v.budget(slo)
        queries = (Query(f"sum({here(bad(w))})\n/\nsum({here(sli_requests(w))})\n/ {budget:g}", w) for w in longs)
        panels.append(
            timeseries(
                f"{slo.capitalize()} burn rate",
                f"How fast the {slo} error budget ({budget * 100:g}% of requests) is spent, over each long window of "
                "the burn-rate alerts: 1 spends it exactly over the SLO period.",
                "none",
                *queries,
                width=8,
                threshold=1,
            )
        )
    short = v.windows[0]
    for slo, bad in (("availability", sli_errors), ("latency", sli_slow)):
        spent = f"sum(sum_over_time({here(bad(short))}[{v.slo_period}]))"
        seen = f"sum(sum_over_time({here(sli_requests(short))}[{v.slo_period}]))"
        panels.append(
            stat(
                f"{slo.capitalize()} budget left",
                f"Share of the {slo} error budget left over the last {v.slo_period} (from the recorded {short} rates).",
                "percentunit",
                Query(f"1 - (\n  {spent}\n  /\n  {seen}\n) / {v.budget(slo):g}"),
                red_below=0,
            )
        )
    return panels


def process_panels(v: GrafanaValues) -> list[Panel]:
    absent = " Absent behind `slipstream sidecar`: multiprocess mode has no per-process collectors."
    return [
        timeseries(
            "Resident memory",
            "Resident memory of each process (prometheus_client's process collector); the red line is the memory "
            "alert's." + absent,
            "bytes",
            Query(f"sum by (instance) ({here('process_resident_memory_bytes')})", "{{instance}}"),
            width=8,
            threshold=v.memory_limit,
        ),
        timeseries(
            "CPU",
            "CPU time per second of each process: 100% is one core." + absent,
            "percentunit",
            Query(rate("process_cpu_seconds_total", by="instance"), "{{instance}}"),
            width=8,
        ),
        timeseries(
            "Garbage collections",
            "Python garbage collections per second, by generation." + absent,
            "ops",
            Query(rate("python_gc_collections_total", by="instance, generation"), "{{instance}} gen {{generation}}"),
            width=8,
        ),
        timeseries(
            "Open file descriptors",
            "Open file descriptors as a share of the process' limit." + absent,
            "percentunit",
            Query(
                f"sum by (instance) ({here('process_open_fds')})\n/\nsum by (instance) ({here('process_max_fds')})",
                "{{instance}}",
            ),
        ),
        timeseries(
            "Sidecar workers",
            "Live worker processes each `slipstream sidecar` merges (empty for single-process apps).",
            "short",
            Query(f"sum by (instance) ({here('slipstream_sidecar_workers')})", "{{instance}}"),
        ),
    ]
