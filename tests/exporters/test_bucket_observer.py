"""bucket_observer, gauge_adder and counter_adder: the same samples as prometheus_client's own observe and inc/dec."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from slipstream.exporters.metrics import bucket_observer, counter_adder, gauge_adder

BOUNDS = (0.005, 0.01, 0.1, 1.0, 10.0)
AMOUNTS = [0.0, 0.004, 0.005, 0.0050001, 0.01, 0.05, 0.1, 0.99, 1.0, 9.0, 10.0, 10.5, 1e9, -1.0]


def test_it_counts_as_observe_does_on_every_bucket_and_the_sum() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("test_seconds", "Test.", ("how",), buckets=BOUNDS, registry=registry)
    plain, fast = histogram.labels("observe"), bucket_observer(histogram.labels("bucket_observer"))
    for amount in AMOUNTS:
        plain.observe(amount)
        fast(amount)

    def samples(how: str) -> dict[tuple[str, str], float]:
        return {
            (sample.name, sample.labels.get("le", "")): sample.value
            for family in registry.collect()
            for sample in family.samples
            if sample.labels.get("how") == how and not sample.name.endswith("_created")
        }

    expected = samples("observe")
    assert expected[("test_seconds_count", "")] == len(AMOUNTS)
    assert expected[("test_seconds_bucket", "0.005")] == 4  # 0, 0.004, 0.005 and -1: a bound is inclusive
    assert samples("bucket_observer") == expected


def test_gauge_adder_adds_as_inc_and_dec_do() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("test_in_flight", "Test.", ("how",), registry=registry)
    plain, fast = gauge.labels("inc"), gauge_adder(gauge.labels("gauge_adder"))
    for amount in (1, 1, 1, -1, 2.5, -0.5):
        if amount > 0:
            plain.inc(amount)
        else:
            plain.dec(-amount)
        fast(amount)
    assert registry.get_sample_value("test_in_flight", {"how": "inc"}) == 4.0
    assert registry.get_sample_value("test_in_flight", {"how": "gauge_adder"}) == 4.0


def test_counter_adder_counts_as_inc_does() -> None:
    registry = CollectorRegistry()
    counter = Counter("test_results", "Test.", ("how",), registry=registry)
    plain, fast = counter.labels("inc"), counter_adder(counter.labels("counter_adder"))
    for amount in (1, 1, 2.5):
        plain.inc(amount)
        fast(amount)
    assert registry.get_sample_value("test_results_total", {"how": "inc"}) == 4.5
    assert registry.get_sample_value("test_results_total", {"how": "counter_adder"}) == 4.5
