"""bench_conformance.py's counting and report: each test's outcome classified as the suite classifies it, the same
counts for slipstream and for every published result file over the same test ids, and what slipstream fails."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from conformance_proxy import HOP_BY_HOP
from conformance_suite import SUITE, SUITE_COMMIT, Results, published_results
from harness import report_heading, source_revision, table_row, verdict

PACKAGES = "slipstream starlette uvicorn h11 httpx".split()
COUNTED_KINDS = ("required", "optimal")
NOT_PASSED = ("fail", "setup", "retry", "error", "untested")
MESSAGE_LENGTH = 140
# The RFC 9111 sections the suite's areas name by anchor (spec/rfc9111.xml of the suite's repository). The two areas
# without anchors are CDN-Cache-Control (RFC 9213) and interim responses (RFC 9110 §15.2).
SECTIONS = {
    "response.cacheability": "3",
    "storing.fields": "3.1",
    "combining.responses": "3.4",
    "caching.authenticated.responses": "3.5",
    "caching.negotiated.responses": "4.1",
    "expiration.model": "4.2",
    "heuristic.freshness": "4.2.2",
    "serving.stale.responses": "4.2.4",
    "validation.model": "4.3",
    "freshening.responses": "4.3.4",
    "head.effects": "4.3.5",
    "invalidation": "4.4",
    "field.age": "5.1",
    "field.cache-control": "5.2",
    "cache-request-directive": "5.2.1",
    "cache-response-directive": "5.2.2",
    "field.expires": "5.3",
    "field.pragma": "5.4",
}
AREA_SECTIONS = {"cdn-cache-control": "RFC 9213", "interim": "RFC 9110 §15.2"}


INSTALL_DIFFERENCES = (
    "The suite tells a reused response by the origin's Server-Request-Count field in it. Under install, the "
    "ConditionalMiddleware gives every response an ETag and the cache revalidates a stale entry with it; the "
    "middleware answers the origin's unchanged 200 with a 304 inside the stack, and that 304, made for a cache, "
    "repeats every field of the 200, so the refreshed entry carries the origin's new count (when that 304 carried "
    "only the validator and freshness fields, the suite saw a reuse there and install passed 121 required tests). "
    "Compression changes nothing here: the suite's bodies "
    "(36 bytes at most) are under `compression_minimum_size` (500)."
)


@dataclass(frozen=True)
class Configuration:
    """One run of the suite against slipstream."""

    name: str
    description: str
    results: Results
    seconds: float
    proxy_exceptions: int
    gateway_errors: Counter[str]


@dataclass(frozen=True)
class Test:
    id: str
    kind: str
    name: str
    area: str
    sections: str


def outcome(result: Any) -> str:
    """One result as the suite's results page shows it (test-engine/lib/results.mjs, dependencies not honoured):
    pass; fail (an assertion: ⛔️ for a required test, ⚠️ for an optimal one); setup (🔹, a step the test relies on
    went wrong); retry (↻, the cache sent a request twice); error (the request itself failed: "fetch failed", a
    timeout); untested."""
    if result is True:
        return "pass"
    if not isinstance(result, list) or not result:
        return "untested"
    if result[0] == "Setup":
        return "retry" if result[1:] == ["retry"] else "setup"
    return "fail" if result[0] == "Assertion" else "error"


def area_sections(area: dict[str, Any]) -> str:
    """An area's anchors as section numbers: "RFC 9111 §4.2, §5.2.2"."""
    numbers = [f"§{SECTIONS[anchor]}" for anchor in area["spec_anchors"] if anchor in SECTIONS]
    return f"RFC 9111 {', '.join(numbers)}" if numbers else AREA_SECTIONS.get(area["id"], "")


def suite_tests(suite: dict[str, Any]) -> dict[str, Test]:
    """Every test the CLI runs against a reverse proxy (browser-only ones left out, as its runner does)."""
    return {
        test["id"]: Test(test["id"], test["kind"], test["name"], area["name"], area_sections(area))
        for area in suite["areas"]
        for test in area["tests"]
        if not test["browser_only"]
    }


def counts(tests: dict[str, Test], results: Results) -> Counter[tuple[str, str]]:
    """(kind, outcome) counts over ``tests``: results for other ids are ignored, missing ones are untested."""
    return Counter((test.kind, outcome(results.get(test_id))) for test_id, test in tests.items())


def message(result: Any) -> str:
    text = " ".join(str(result[1]).split()) if isinstance(result, list) and len(result) > 1 else ""
    text = text if len(text) <= MESSAGE_LENGTH else text[: MESSAGE_LENGTH - 1] + "…"
    return text.replace("|", "\\|")


def cell(name: str) -> str:
    return name.replace("|", "\\|")


def count_cells(counted: Counter[tuple[str, str]], totals: Counter[str]) -> list[str]:
    cells = [f"{counted[kind, 'pass']} / {totals[kind]}" for kind in COUNTED_KINDS]
    for kind in COUNTED_KINDS:
        cells.append(" / ".join(str(counted[kind, result]) for result in NOT_PASSED[:4]))
    return cells


def count_table(tests: dict[str, Test], runs: list[Configuration], published: list[dict[str, Any]]) -> list[str]:
    totals = Counter(test.kind for test in tests.values())
    rows = [(f"**slipstream, {run.name}**", "this commit", counts(tests, run.results)) for run in runs]
    others = [(entry["name"], entry["version"], counts(tests, published_results(entry["file"]))) for entry in published]
    others.sort(key=lambda row: (-row[2]["required", "pass"], -row[2]["optimal", "pass"]))
    lines = [
        "| cache | version | required passed / total | optimal passed / total | required not passed: failed / setup / "
        "retry / error | optimal not passed: failed / setup / retry / error |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [table_row([name, version, *count_cells(counted, totals)]) for name, version, counted in rows + others]
    if runs and others:
        best = {kind: max(others, key=lambda row: row[2][kind, "pass"]) for kind in COUNTED_KINDS}
        ours = rows[0][2]
        lines.append("")
        for kind in COUNTED_KINDS:
            name, _, theirs = best[kind]
            met = ours[kind, "pass"] > theirs[kind, "pass"]
            lines.append(
                f"- More {kind} tests passed than every shared cache (issue 11), {runs[0].name}: {verdict(met)} "
                f"({ours[kind, 'pass']} against {theirs[kind, 'pass']}, {name})"
            )
    return lines


def failures(tests: dict[str, Test], run: Configuration) -> list[str]:
    """Required and optimal tests ``run`` does not pass, grouped by the suite's areas (its spec sections)."""
    lines: list[str] = []
    area = ""
    for test in tests.values():
        result = run.results.get(test.id)
        if test.kind not in COUNTED_KINDS or outcome(result) == "pass":
            continue
        if test.area != area:
            area = test.area
            lines += [
                "",
                f"#### {area}{f' ({test.sections})' if test.sections else ''}",
                "",
                "| test | kind | result | name | message |",
                "| --- | --- | --- | --- | --- |",
            ]
        lines.append(table_row([f"`{test.id}`", test.kind, outcome(result), cell(test.name), message(result)]))
    return lines or ["", "None."]


def differences(tests: dict[str, Test], first: Configuration, second: Configuration) -> list[str]:
    """Tests whose outcome differs between two runs (checks included: their answer may change too)."""
    lines = [f"| test | kind | {first.name} | {second.name} | name | {second.name}'s message |"]
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for test in tests.values():
        a, b = first.results.get(test.id), second.results.get(test.id)
        if outcome(a) != outcome(b):
            row = [f"`{test.id}`", test.kind, outcome(a), outcome(b), cell(test.name), message(b)]
            lines.append(table_row(row))
    return lines if len(lines) > 2 else ["None."]


def gateway_reasons(reasons: Counter[str]) -> str:
    """Why the forwarder answered with a 502 or 504: the suite's origin closes the connection on purpose in eight
    serving-stale tests, sends a Transfer-Encoding no client can read in one, and answers 999 to a request that
    should have been conditional."""
    listed = "; ".join(f"{count} times {reason}" for reason, count in reasons.most_common())
    return f" ({listed})" if listed else ""


def report(suite: dict[str, Any], runs: list[Configuration], command: str, node: str, elapsed: float) -> str:
    tests = suite_tests(suite)
    kinds = Counter(test.kind for test in tests.values())
    vendored = {path.name for path in (SUITE / "cache-tests" / "results").iterdir()}
    published = [entry for entry in suite["published"] if entry["file"] in vendored]
    title, revision = "HTTP cache conformance (cache-tests)", source_revision()
    lines = report_heading(title, command, revision, PACKAGES, f"node {node}")
    hop_by_hop = ", ".join(sorted("TE" if name == b"te" else name.decode().title() for name in HOP_BY_HOP))
    lines += [
        f"- Suite: http-tests/cache-tests at commit {SUITE_COMMIT[:12]}, vendored in `bench/conformance/cache-tests/` "
        "with the published results of that commit (its npm release, 0.4.5, is much older: see "
        f"`bench/conformance/README.md`). {len(tests)} tests run against a reverse proxy: {kinds['required']} "
        f"required, {kinds['optimal']} optimal, {kinds['check']} checks (questions about behaviour with no right "
        "answer, not counted); the browser-only ones are left out, as the suite's CLI leaves them out",
        "- Counting: a test passes when the client's result is `true`; a test counts whatever the tests it depends on "
        "did (the results page greys such tests out; issue 11's figures, Apache httpd 141 required and Traffic "
        "Server 74 optimal, are counted this way). Not passed, as the suite's symbols split it: failed (an "
        "assertion), setup (a step the test relies on went wrong: often a setup response not stored), retry (the "
        "cache sent a request twice), error (the request failed: a closed connection, a timeout). Every published "
        "cache is counted over the same test ids as slipstream",
        "- Proxy under test: a real uvicorn (h11, its own Date and Server fields off) on a loopback port serving "
        "`bench/conformance_proxy.py`: every request forwarded with httpx to the suite's origin server on another "
        f"loopback port (method, path and query, body, header fields less {hop_by_hop} and those Connection names, "
        "as RFC 9110 §7.6.1 has any intermediary do, so those tests measure the forwarder too), the answer streamed "
        "back as the origin encoded it; a status outside 100-599 (the origin's 999 when it expected a conditional "
        "request it did not get) becomes a 502, as RFC 9110 §15 has a client read it. Interim (1xx) responses never "
        "reach an ASGI app",
    ]
    for run in runs:
        lines.append(
            f"- *{run.name}*: {run.description}; the suite ran in {run.seconds:.0f} s; the app raised on "
            f"{run.proxy_exceptions} requests; the forwarder answered {run.gateway_errors.total()} with a 502 or 504"
            f"{gateway_reasons(run.gateway_errors)}"
        )
    lines += [f"- Whole run, installs and servers included: {elapsed:.0f} s\n", "### Counts\n"]
    lines += count_table(tests, runs, published)
    if runs:
        lines += ["", f"### Required and optimal tests slipstream ({runs[0].name}) does not pass"]
        lines += failures(tests, runs[0])
    for run in runs[1:]:
        lines += ["", f"### Tests whose outcome under {run.name} differs from {runs[0].name}'s", ""]
        if run.name == "install":
            lines += [INSTALL_DIFFERENCES, ""]
        lines += differences(tests, runs[0], run)
    return "\n".join(lines)
