"""``slipstream grafana render``: the committed grafana/ is its default rendering, other values change what they
should, bad values are refused with the reason, and the YAML it writes reads back as the data it was made from."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from slipstream.cli import main
from slipstream.grafana import GrafanaValues, render
from slipstream.grafana.alerts import alert_rules, alerts
from slipstream.grafana.rules import recording_rules
from slipstream.grafana.yaml_text import Data, dump_yaml

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"


def committed() -> dict[str, str]:
    return {str(path.relative_to(GRAFANA)): path.read_text() for path in sorted(GRAFANA.rglob("*")) if path.is_file()}


def test_the_committed_files_are_the_default_rendering() -> None:
    rendered = render(GrafanaValues())
    assert sorted(rendered) == sorted(committed()), "files added to or missing from grafana/"
    different = [path for path, text in rendered.items() if committed()[path] != text]
    assert different == [], f"{different} differ from the rendering: run `slipstream grafana render --out grafana`"


def test_the_command_writes_the_default_rendering(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grafana", "render", "--out", str(tmp_path / "out")]) == 0
    written = {
        str(p.relative_to(tmp_path / "out")): p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file()
    }
    assert written == committed()
    assert capsys.readouterr().out == f"slipstream grafana render: wrote {len(written)} files to {tmp_path / 'out'}\n"


def test_the_values_reach_every_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = ["grafana", "render", "--out", str(out), "--selector", 'job="shop"', "--availability-objective", "0.999"]
    command += ["--latency-threshold", "0.25", "--latency-objective", "0.99", "--burn-window", "page:2h/10m:10"]
    command += ["--memory-limit", str(512 * 1024**2), "--runbook-url", "https://runbooks.example/slipstream.md"]
    command += ["--upstream-error-ratio", "0.2", "--llm-budget-per-hour", "2.5"]
    assert main(command) == 0
    recorded = (out / "rules/slipstream-recording.rules.yml").read_text()
    assert 'http_server_request_duration_seconds_count{job="shop"}' in recorded
    assert 'le="0.25"' in recorded and "rate10m" in recorded and "rate1h" not in recorded
    alerting = (out / "rules/slipstream-alerts.rules.yml").read_text()
    assert 'ratio_rate2h{slo="availability"} > (10 * 0.001)' in alerting
    assert 'ratio_rate10m{slo="latency"} > (10 * 0.01)' in alerting
    assert "BurnRateSlow" not in alerting, "no ticket window was given"
    assert 'process_resident_memory_bytes{job="shop"} > 536870912' in alerting
    assert "https://runbooks.example/slipstream.md#slipstreamtargetdown" in alerting
    exprs = {rule["alert"]: rule["expr"] for rule in yaml.safe_load(alerting)["groups"][0]["rules"]}
    assert ") > 0.2\nand\n" in exprs["SlipstreamUpstreamErrorRatioHigh"]
    assert exprs["SlipstreamLlmSpendHigh"].endswith('{job="shop"}[1h])) * 3600 > 2.5')
    outbound = json.loads((out / "dashboards/slipstream-outbound.json").read_text())
    lines = {panel["title"]: panel["fieldConfig"]["defaults"]["thresholds"]["steps"][-1] for panel in outbound["panels"]
             if panel["type"] == "timeseries"}  # fmt: skip
    assert lines["Error ratio by host"]["value"] == 0.2 and lines["Cost per hour by model"]["value"] == 2.5
    variables = json.loads((out / "dashboards/slipstream-overview.json").read_text())["templating"]["list"]
    assert {v["name"]: v.get("query") for v in variables}["job"] == 'label_values(up{job="shop"}, job)'
    runbook = (out / "RUNBOOK.md").read_text()
    assert "99.9% of requests answered without a 5xx" in runbook and "512 MiB" in runbook
    assert "more than 20% of the calls a job made" in runbook and "budget of 2.5 per hour" in runbook
    assert sorted(p.name for p in (out / "tests").iterdir()) == [
        "alerts.test.yml",
        "regression.test.yml",
        "slo-page.test.yml",
    ]


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (["--latency-threshold", "0.3"], "must be a bound of the request duration buckets"),
        (["--slow-statement", "2"], "must be a bound of the statement duration buckets"),
        (["--latency-objective", "0.9"], "could never fire"),
        (["--availability-objective", "1"], "between 0 and 1"),
        (["--selector", "job=api"], "must be label matchers"),
        (
            ["--burn-window", "page:1h/5m:14.4", "--slo-period", "7d", "--burn-window", "ticket:14d/1d:1"],
            "fit in the SLO",
        ),
        (["--selector", 'job!~".*"'], "no simple label value passes"),
        (["--slo-period", "30days"], "not a duration like 5m, 6h or 30d"),
        (["--min-request-rate", "0"], "min_request_rate must be above 0"),
        (["--runbook-url", ""], "the runbook URL must not be empty"),
        (["--upstream-error-ratio", "1.5"], "upstream_error_ratio is a ratio between 0 and 1"),
        (["--llm-budget-per-hour", "0"], "llm_budget_per_hour must be above 0"),
    ],
)
def test_values_that_cannot_work_are_refused(
    options: list[str], reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["grafana", "render", "--out", str(tmp_path / "out"), *options]) == 2
    assert reason in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.json"))


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        ("page:5m/1h:14.4", "the short window 1h must be shorter than the long one, 5m"),
        ("sms:1h/5m:14.4", "a burn window's severity is page or ticket, not 'sms'"),
        ("page:1h/5m:0", "a burn-rate factor must be above 0"),
        ("page:1h:14.4", "not a burn window like page:1h/5m:14.4"),
    ],
)
def test_a_burn_window_is_checked_as_it_is_parsed(
    window: str, reason: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["grafana", "render", "--out", str(tmp_path), "--burn-window", window])
    assert stopped.value.code == 2
    assert reason in capsys.readouterr().err


def test_the_latency_buckets_are_the_environments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """0.3 s is a bucket when the apps' SLIPSTREAM_TIMING_BUCKETS say so."""
    monkeypatch.setenv("SLIPSTREAM_TIMING_BUCKETS", "0.1,0.3,1")
    assert main(["grafana", "render", "--out", str(tmp_path), "--latency-threshold", "0.3"]) == 0
    assert 'le="0.3"' in (tmp_path / "rules/slipstream-recording.rules.yml").read_text()


def test_the_rule_files_read_back_as_the_rules() -> None:
    values = GrafanaValues()
    for name, data in (("recording", recording_rules(values)), ("alerts", alert_rules(values))):
        text = (GRAFANA / f"rules/slipstream-{name}.rules.yml").read_text()
        assert yaml.safe_load(text) == data


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text(min_size=1), st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans()))
def test_any_string_reads_back_as_itself(value: str, key: str, number: float) -> None:
    data: dict[str, Data] = {key: value, "list": [value, number, {"k": value, "n": number}], "nested": {"v": value}}
    assert yaml.safe_load(dump_yaml(data)) == data


def github_anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def test_every_alert_links_to_its_own_runbook_section() -> None:
    runbook = (GRAFANA / "RUNBOOK.md").read_text()
    anchors = {github_anchor(line[3:]) for line in runbook.splitlines() if line.startswith("## ")}
    names = [alert.name for alert in alerts(GrafanaValues())]
    assert len(names) == len(set(names)) == 17
    for alert in alerts(GrafanaValues()):
        url = alert.rule(GrafanaValues())["annotations"]["runbook_url"]  # type: ignore[index,call-overload]
        assert url == f"RUNBOOK.md#{alert.name.lower()}"
        assert url.split("#")[1] in anchors, f"RUNBOOK.md has no section {alert.name}"
    assert "$" not in runbook.replace("$SLIPSTREAM_CACHE_REDIS_URL", ""), "a placeholder was left in the runbook"
