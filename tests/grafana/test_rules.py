"""The recording and alert rules checked by Debian's promtool (``check rules``, ``check config``, ``test rules``),
parsed by a PromQL parser, and their promtool tests shown to fail when the alerts are wrong."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipstream.grafana import BurnWindow, GrafanaValues, write
from tests.grafana.promql import matchers, parse, vector_selectors

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
PROMTOOL = "/usr/bin/promtool"
RULE_FILES = sorted((GRAFANA / "rules").glob("*.yml"))
TIMEOUT = 120


def promtool(*args: str, cwd: Path = GRAFANA) -> subprocess.CompletedProcess[str]:
    if shutil.which(PROMTOOL) is None:
        pytest.fail(f"{PROMTOOL} is missing: run scripts/install-system-deps.sh (Debian's prometheus package)")
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def rules(path: Path) -> list[dict[str, Any]]:
    loaded = yaml.safe_load(path.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return rules(GRAFANA / "rules/slipstream-alerts.rules.yml")


def test_promtool_checks_the_rules_and_the_prometheus_example() -> None:
    checked = promtool("check", "rules", *map(str, RULE_FILES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 17 rules found" in checked.stdout and "SUCCESS: 39 rules found" in checked.stdout
    # The example configuration loads both rule files (check config checks them too).
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0 and "SUCCESS: 2 rule files found" in config.stdout, config.stdout + config.stderr


def test_every_expression_parses_and_reads_only_the_selected_jobs() -> None:
    for path in RULE_FILES:
        for rule in rules(path):
            for found in vector_selectors(parse(rule["expr"])):
                name = found.node.name
                if ":" in name:
                    assert name.count(":") == 2, f"{name} is not level:metric:operations"
                else:
                    assert matchers(found.node).get("job") == ("=~", "slipstream.*"), f"{name} in {rule}"


def test_every_alert_says_how_bad_what_and_where_to_read_on() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}
        assert annotations["summary"].endswith(".") and annotations["summary"].count(". ") == 0
        assert "{{ $labels." in annotations["description"], f"{rule['alert']}'s description names no label"
        assert annotations["runbook_url"] == f"RUNBOOK.md#{rule['alert'].lower()}"


def test_the_burn_rate_alerts_have_the_multiwindow_shape() -> None:
    """Sloth's page alert for a 99% objective, word for word: 1h and 5m at 14.4x, or 6h and 30m at 6x."""
    by_name = {rule["alert"]: rule for rule in alert_rules()}
    page = by_name["SlipstreamAvailabilityBurnRateFast"]
    ratio = 'job_slo:slipstream_sli_error:ratio_rate{}{{slo="availability"}}'
    assert page["expr"] == (
        f"(\n  {ratio.format('1h')} > (14.4 * 0.01)\nand\n  {ratio.format('5m')} > (14.4 * 0.01)\n)\nor\n"
        f"(\n  {ratio.format('6h')} > (6 * 0.01)\nand\n  {ratio.format('30m')} > (6 * 0.01)\n)"
    )
    assert page["labels"] == {"severity": "critical", "slo": "availability"}
    ticket = by_name["SlipstreamLatencyBurnRateSlow"]["expr"]
    for window, factor in (("1d", "3"), ("2h", "3"), ("3d", "1"), ("6h", "1")):
        assert f'ratio_rate{window}{{slo="latency"}} > ({factor} * 0.05)' in ticket


def run_tests(directory: Path, *names: str) -> subprocess.Popen[str]:
    command = [PROMTOOL, "test", "rules", *(f"tests/{name}.test.yml" for name in names)]
    return subprocess.Popen(command, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_promtool_unit_tests_pass_for_the_shipped_values_and_for_others(tmp_path: Path) -> None:
    """The committed tests, and those rendered for other objectives, windows and thresholds, three promtool processes
    at a time (the burn-rate files take longest)."""
    other = GrafanaValues(
        selector='job="shop",env=~"prod|staging"',
        availability_objective=0.999,
        latency_threshold=0.25,
        latency_objective=0.99,
        error_ratio=0.05,
        cache_hit_ratio=0.5,
        pool_usage=0.9,
        memory_limit=512 * 1024**2,
        latency_regression=0.5,
        n_plus_one_share=0.3,
        upstream_error_ratio=0.25,
        llm_budget_per_hour=0.5,
        burn_windows=(BurnWindow("page", "1h", "5m", 14.4), BurnWindow("ticket", "1d", "2h", 3)),
    )
    write(other, tmp_path)
    if shutil.which(PROMTOOL) is None:
        pytest.fail(f"{PROMTOOL} is missing: run scripts/install-system-deps.sh (Debian's prometheus package)")
    everything = ("alerts", "regression", "slo-page", "slo-ticket")
    assert sorted(p.name for p in (GRAFANA / "tests").iterdir()) == sorted(f"{name}.test.yml" for name in everything)
    runs = {
        "shipped page burn rates": (run_tests(GRAFANA, "slo-page"), 1),
        "shipped ticket burn rates": (run_tests(GRAFANA, "slo-ticket"), 1),
        "shipped alerts": (run_tests(GRAFANA, "alerts", "regression"), 2),
        "other values": (run_tests(tmp_path, *everything), 4),
    }
    for name, (run, files) in runs.items():
        output, _ = run.communicate(timeout=TIMEOUT)
        assert run.returncode == 0, f"{name}:\n{output}"
        assert output.count("SUCCESS") == files, output


def test_the_unit_tests_fail_when_the_alerts_do(tmp_path: Path) -> None:
    """Alerts that never fire fail every test that expects one; alerts that always fire (without the expected
    labels) fail them all, the healthy ones included."""
    shutil.copytree(GRAFANA, tmp_path / "grafana")
    alerts_file = tmp_path / "grafana/rules/slipstream-alerts.rules.yml"
    original = yaml.safe_load(alerts_file.read_text())
    tests = yaml.safe_load((GRAFANA / "tests/alerts.test.yml").read_text())["tests"]
    expecting = sum(1 for test in tests if test["alert_rule_test"][0]["exp_alerts"])
    assert 0 < expecting < len(tests)
    for expr, failing in (("vector(1) > 2", expecting), ("vector(1)", len(tests))):
        for rule in original["groups"][0]["rules"]:
            rule["expr"] = expr
        alerts_file.write_text(yaml.safe_dump(original))
        run = promtool("test", "rules", "tests/alerts.test.yml", cwd=tmp_path / "grafana")
        assert run.returncode == 1
        output = run.stdout + run.stderr
        assert output.count("alertname:") == failing, output
