"""The golden path, end to end: the example service set up by ``init()`` alone, scraped by a real
Prometheus, with the provisioner's dashboards and alert rules for it.

* every PromQL query of every rendered panel returns data (variables and macros substituted as
  Grafana would), unless the template marks it ``expect_data: false``; numbers are checked against
  the injected faults;
* the rendered Prometheus rules fire for the faulty environment and reach Alertmanager, and stay
  silent for the healthy one;
* logs carry the trace ids of received spans, and the LogQL / TraceQL of the dashboards use names
  the SDK writes.

See docs/golden-path.md. Set-up and processes: conftest.py.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from golden_run import (
    FAIL_RATIO,
    FAULTY,
    HEALTHY,
    PULL,
    SERVICE,
    SLOW_MS,
    SLOW_RATIO,
    TEAM,
    GoldenPath,
)
from prometheus_servers import wait_for

from platform_obs import conventions
from platform_obs.conventions import DURATION_BUCKETS_SECONDS, LOG_FIELDS, prom_label
from platform_obs.provisioning import doctor
from platform_obs.provisioning.spec import load_specs

pytestmark = pytest.mark.e2e

#: What Grafana would put in for ``$__rate_interval`` with a 1s scrape interval (at least four
#: scrapes; a little more so a window always spans several batches of traffic).
RATE_INTERVAL_S = 15
MACROS = {
    "__rate_interval": f"{RATE_INTERVAL_S}s",
    "__rate_interval_ms": str(RATE_INTERVAL_S * 1000),
    "__interval": "5s",
    "__interval_ms": "5000",
    "__auto": f"{RATE_INTERVAL_S}s",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
#: ``$env`` as Grafana formats it: the "All" option (allValue) or one environment.
ENV_CHOICES = {"All": ".*", FAULTY: FAULTY, HEALTHY: HEALTHY}
ROUTES = {"/orders/<int:order_id>", "/orders"}
#: Tolerance on ratios measured over one rate window (the faults are drawn at random per request).
RATIO_TOLERANCE = 0.08
#: The histogram bucket holding the injected slow requests: where p99 must land.
SLOW_BUCKET = (
    max(b for b in DURATION_BUCKETS_SECONDS if b < SLOW_MS / 1000),
    min(b for b in DURATION_BUCKETS_SECONDS if b >= SLOW_MS / 1000),
)
#: Log events the example writes while handling a request (examples/flask_service/app.py).
REQUEST_EVENTS = {"order fetched", "placing order", "order placed", "request failed"}
_GRAFANA_VAR = re.compile(
    r"\$\{([A-Za-z_][A-Za-z0-9_.]*)(?::([A-Za-z]+))?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[(\w+)\]\]"
)


# --- dashboards as Grafana sees them -------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    dashboard: str
    template: str
    path: str
    panel_key: str
    panel_title: str
    datasource: str
    query: str
    legend: str
    expect_data: bool
    reason: str
    variables: dict[str, str]


def _panels(node: Any) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    if isinstance(node, dict):
        if "targets" in node or node.get("type") == "row":
            yield node
        for child in node.get("panels", []):
            yield from _panels(child)
    elif isinstance(node, list):
        for child in node:
            yield from _panels(child)


def _panel_key(templates_dir: Path, template: str, path: str) -> str:
    """The template's panel key for a rendered target's ``rows[i].panels[j]...`` path."""
    doc = yaml.safe_load((templates_dir / template).read_text(encoding="utf-8"))
    m = re.match(r"rows\[(\d+)\]\.panels\[(\d+)\]", path)
    assert m, path
    return str(doc["rows"][int(m[1])]["panels"][int(m[2])]["key"])


def _variables(model: dict[str, Any]) -> dict[str, str]:
    """Dashboard variables with the value Grafana uses for "All" / the constant."""
    values = {}
    for var in model.get("templating", {}).get("list", []):
        name = var["name"]
        if var["type"] == "constant":
            values[name] = var["query"]
        elif var["type"] == "custom":
            options = [o.strip() for o in var["query"].split(",")]
            values[name] = var.get("allValue") or "(" + "|".join(options) + ")"
        elif var["type"] == "datasource":
            values[name] = var["current"]["value"]
        else:
            values[name] = var.get("allValue") or ""
    return values


def substitute(text: str, variables: dict[str, str]) -> str:
    """Grafana's interpolation of ``$var``, ``${var}``, ``${var:fmt}``, ``[[var]]`` and macros."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3) or match.group(4)
        if name in MACROS:
            return MACROS[name]
        if name not in variables:
            raise KeyError(f"unknown Grafana variable ${name} in {text!r}")
        return variables[name]

    return _GRAFANA_VAR.sub(sub, text)


def dashboard_targets(golden: GoldenPath) -> list[Target]:
    targets = []
    for board in golden.rendered.dashboards:
        variables = _variables(board.model)
        for panel in _panels(board.model.get("panels", [])):
            for target in panel.get("targets", []):
                meta = target["platformObs"]
                targets.append(
                    Target(
                        dashboard=board.uid,
                        template=meta["template"],
                        path=meta["path"],
                        panel_key=_panel_key(golden.templates_dir, meta["template"], meta["path"]),
                        panel_title=panel["title"],
                        datasource=target["datasource"]["type"],
                        query=target.get("expr") or target.get("query") or "",
                        legend=target.get("legendFormat", ""),
                        expect_data=meta["expect_data"],
                        reason=meta.get("reason", ""),
                        variables=variables,
                    )
                )
    return targets


def explore_queries(golden: GoldenPath) -> list[tuple[str, str, str]]:
    """(dashboard, link title, query) of every panel link that opens Explore."""
    out = []
    for board in golden.rendered.dashboards:
        for panel in _panels(board.model.get("panels", [])):
            for link in panel.get("fieldConfig", {}).get("defaults", {}).get("links", []):
                url = link.get("url", "")
                if "panes=" not in url:
                    continue
                panes = json.loads(urllib.parse.unquote(url.split("panes=", 1)[1]))
                for pane in panes.values():
                    for query in pane["queries"]:
                        text = query.get("query") or query.get("expr") or ""
                        out.append((board.uid, link["title"], text))
    return out


# --- checks of values, per template panel ---------------------------------------------------------


def _values(result: list[dict[str, Any]]) -> list[float]:
    return [float(s["value"][1]) for s in result]


def _close(value: float, expected: float, tolerance: float) -> bool:
    return abs(value - expected) <= tolerance


def _labels(result: list[dict[str, Any]], label: str) -> set[str]:
    return {s["metric"].get(label, "") for s in result}


Check = Callable[[list[dict[str, Any]], str], str | None]


def _check_latency(result: list[dict[str, Any]], legend: str) -> str | None:
    (value,) = _values(result)  # one environment: one line per quantile
    if legend.endswith("p50") and not value < SLOW_BUCKET[0]:
        return f"p50 {value}s is not below the slow bucket {SLOW_BUCKET}"
    if legend.endswith("HighLatency") and not SLOW_BUCKET[0] <= value <= SLOW_BUCKET[1]:
        return f"p99 {value}s is not in the bucket of the injected {SLOW_MS}ms {SLOW_BUCKET}"
    return None


def _one_per_environment(result: list[dict[str, Any]], _legend: str) -> str | None:
    envs = [s["metric"].get(prom_label(conventions.DEPLOYMENT_ENVIRONMENT)) for s in result]
    return None if sorted(envs) == sorted({FAULTY, HEALTHY}) else f"lines per environment: {envs}"


def _check_each(pred: Callable[[float], bool], what: str) -> Check:
    def check(result: list[dict[str, Any]], _legend: str) -> str | None:
        bad = [v for v in _values(result) if not pred(v)]
        return f"{what}: {bad}" if bad else None

    return check


_CORES = os.cpu_count() or 1
#: (template file, panel key) -> check of the faulty environment's result; None when fine.
FAULTY_CHECKS: dict[tuple[str, str], Check] = {
    ("overview", "request-rate"): _check_each(lambda v: v > 1, "req/s of the environment"),
    ("overview", "request-rate-by-route"): lambda r, _: (
        None
        if _labels(r, "http_route") <= ROUTES and sum(_values(r)) > 1
        else f"routes {_labels(r, 'http_route')}, total {sum(_values(r))} req/s"
    ),
    ("overview", "error-ratio"): lambda r, _: (
        None
        if _close(_values(r)[0], FAIL_RATIO, RATIO_TOLERANCE)
        else f"error ratio {_values(r)} is not the injected {FAIL_RATIO}"
    ),
    ("overview", "status-codes"): lambda r, _: (
        None
        if "500" in _labels(r, "http_response_status_code")
        and _labels(r, "http_response_status_code") <= {"200", "201", "500"}
        else f"status codes {_labels(r, 'http_response_status_code')}"
    ),
    ("overview", "server-errors-by-route"): lambda r, _: (
        None
        if _labels(r, "http_route") <= ROUTES and sum(_values(r)) > 0
        else f"5xx series {[(s['metric'], s['value']) for s in r]}"
    ),
    ("overview", "active-requests"): _check_each(lambda v: 0 <= v <= 64, "requests in flight"),
    ("overview", "latency"): _check_latency,
    ("overview", "latency-by-route"): _check_each(
        lambda v: SLOW_BUCKET[0] <= v <= SLOW_BUCKET[1], f"p99 by route outside {SLOW_BUCKET}"
    ),
    ("runtime", "cpu"): _check_each(lambda v: 0 <= v <= _CORES, "CPU cores of the busiest"),
    ("runtime", "cpu-by-instance"): _check_each(lambda v: 0 <= v <= _CORES, "CPU cores"),
    ("runtime", "memory"): _check_each(lambda v: 10 * 2**20 < v < 2**30, "resident bytes"),
    ("runtime", "memory-by-instance"): _check_each(
        lambda v: 10 * 2**20 < v < 2**30, "resident bytes"
    ),
    ("runtime", "gc"): _check_each(lambda v: v >= 0, "collections per second"),
    ("runtime", "threads"): _check_each(lambda v: 1 <= v <= 200, "threads"),
    ("slo", "availability"): lambda r, _: (
        None
        if _close(_values(r)[0], 1 - FAIL_RATIO, RATIO_TOLERANCE)
        else f"availability {_values(r)} is not 1 - {FAIL_RATIO}"
    ),
    # 20% errors against a 1% budget: spent many times over.
    ("slo", "availability-budget"): _check_each(lambda v: v < 0, "budget remaining"),
    ("slo", "availability-sli"): _check_each(
        lambda v: _close(v, 1 - FAIL_RATIO, 2 * RATIO_TOLERANCE), "availability (short window)"
    ),
    ("slo", "availability-burn-rate-page"): _check_each(
        lambda v: _close(v, FAIL_RATIO / 0.01, 2 * RATIO_TOLERANCE / 0.01), "burn rate (~20)"
    ),
    ("slo", "availability-burn-rate-ticket"): _check_each(
        lambda v: _close(v, FAIL_RATIO / 0.01, RATIO_TOLERANCE / 0.01), "burn rate (~20)"
    ),
    ("slo", "latency-sli"): lambda r, _: (
        None
        if _close(_values(r)[0], 1 - SLOW_RATIO, RATIO_TOLERANCE)
        else f"share of fast requests {_values(r)} is not 1 - {SLOW_RATIO}"
    ),
    ("slo", "latency-budget"): _check_each(lambda v: v < 0, "latency budget remaining"),
    ("slo", "latency-sli-short"): _check_each(
        lambda v: _close(v, 1 - SLOW_RATIO, 2 * RATIO_TOLERANCE), "fast requests (short window)"
    ),
    ("slo", "latency-burn-rate-page"): _check_each(
        lambda v: _close(v, SLOW_RATIO / 0.01, 2 * RATIO_TOLERANCE / 0.01),
        "latency burn rate (~10)",
    ),
    ("slo", "latency-burn-rate-ticket"): _check_each(
        lambda v: _close(v, SLOW_RATIO / 0.01, RATIO_TOLERANCE / 0.01), "latency burn rate (~10)"
    ),
}
#: The healthy environment's own numbers on the same panels: zero where the faulty one fails.
HEALTHY_CHECKS: dict[tuple[str, str], Check] = {
    ("slo", "availability"): _check_each(lambda v: v == 1, "availability without errors"),
    ("slo", "availability-budget"): _check_each(lambda v: v == 1, "untouched budget"),
    ("slo", "availability-burn-rate-page"): _check_each(lambda v: v == 0, "burn rate"),
    ("slo", "availability-burn-rate-ticket"): _check_each(lambda v: v == 0, "burn rate"),
    ("slo", "latency-sli"): _check_each(lambda v: v > 0.99, "fast requests"),
    # zero, not "No data", where zero is the truth
    ("overview", "error-ratio"): _check_each(lambda v: v == 0, "5xx ratio without errors"),
    ("overview", "server-errors-by-route"): _check_each(lambda v: v == 0, "5xx without errors"),
    ("overview", "request-rate"): _check_each(lambda v: v > 1, "req/s of the environment"),
}
#: With "All", panels split by environment: one line (per other label) per environment.
ALL_CHECKS: dict[tuple[str, str], Check] = {
    ("overview", "request-rate"): _one_per_environment,
    ("overview", "error-ratio"): _one_per_environment,
    ("runtime", "memory"): _one_per_environment,
    ("slo", "availability"): _one_per_environment,
    ("slo", "availability-budget"): _one_per_environment,
}


@dataclass
class Row:
    target: Target
    env: str
    status: str  # ok | empty | expected-empty
    series: int
    value: str
    problem: str | None


def _summary(rows: list[Row]) -> str:
    lines = [
        f"{'template':<24} {'panel':<24} {'legend':<8} {'$env':<8} {'result':<15} value",
        "-" * 100,
    ]
    for row in rows:
        t = row.target
        lines.append(
            f"{Path(t.template).name:<24} {t.panel_key:<24} {t.legend[:8]:<8} {row.env:<8} "
            f"{row.status + (' (' + str(row.series) + ')' if row.series > 1 else ''):<15} "
            f"{row.value}"
        )
    queries = {(r.target.dashboard, r.target.path) for r in rows}
    with_data = {(r.target.dashboard, r.target.path) for r in rows if r.status == "ok"}
    expected_empty = {(r.target.dashboard, r.target.path) for r in rows if not r.target.expect_data}
    lines.append(
        f"{len(queries)} PromQL panel queries x {len(ENV_CHOICES)} $env choices = {len(rows)} "
        f"instant queries; {len(with_data)} queries returned data, {len(expected_empty)} are "
        f"marked expect_data: false; "
        f"{sum(r.status == 'expected-empty' for r in rows)} results expected-empty"
    )
    return "\n".join(lines)


# --- tests ----------------------------------------------------------------------------------------


def test_every_series_carries_the_promoted_resource_labels(golden: GoldenPath) -> None:
    prom = golden.prometheus
    promoted = [prom_label(a) for a in conventions.PROMOTED_RESOURCE_ATTRIBUTES]
    job = f'{{job="{golden.job}"}}'
    wait_for(
        lambda: prom.query(conventions.HTTP_SERVER_REQUEST_DURATION.series("count") + job),
        30,
        what="request metrics",
    )
    if not golden.promoted:
        # Nothing promoted: the series have job/instance only, target_info the rest - the
        # label scheme the platform's `metric_labels: target_info` setting renders for.
        assert prom.api(f"label/{prom_label(conventions.SERVICE_NAME)}/values") == []
        env_label = prom_label(conventions.DEPLOYMENT_ENVIRONMENT)
        info = prom.query(f"target_info{job}")
        assert sorted(s["metric"][env_label] for s in info) == sorted([FAULTY, HEALTHY])
        assert {s["metric"][prom_label(conventions.TEAM)] for s in info} == {TEAM}
        return
    # Every conventions series the services expose, with any promoted label missing.
    names = "|".join(sorted(m.prom_name for m in conventions.METRICS.values()))
    for label in promoted:
        missing = prom.query(f'group by (__name__) ({{__name__=~"({names}).*", {label}=""}})')
        assert missing == [], f"series without {label}: {missing}"
    values = {label: prom.api(f"label/{label}/values", {"match[]": job}) for label in promoted}
    assert values == {
        "service_name": [SERVICE],
        "service_namespace": ["shop"],
        "deployment_environment_name": sorted([FAULTY, HEALTHY]),
        "platform_team": [TEAM],
    }
    # The dashboards' $env variable query (label_values) finds both environments.
    envs = prom.api(
        "label/deployment_environment_name/values", {"match[]": f'{{service_name="{SERVICE}"}}'}
    )
    assert envs == sorted([FAULTY, HEALTHY])


def test_every_dashboard_query_returns_data(golden: GoldenPath) -> None:
    prom = golden.prometheus
    targets = [t for t in dashboard_targets(golden) if t.datasource == "prometheus"]
    assert {Path(t.template).stem for t in targets} >= {"overview", "runtime", "slo"}
    # The rate windows must span traffic before a query can show the injected numbers.
    wait_for(
        lambda: all(load.running_for > RATE_INTERVAL_S + 3 for load in golden.loads.values()),
        60,
        what="traffic over a whole rate window",
    )
    assert [load.errors for load in golden.loads.values()] == [[], []]  # traffic kept flowing
    rows: list[Row] = []
    for target in targets:
        for env_name, env_value in ENV_CHOICES.items():
            expr = substitute(target.query, {**target.variables, "env": env_value})
            assert "$" not in expr, expr
            result = prom.query(expr)
            status = "ok" if result else ("empty" if target.expect_data else "expected-empty")
            values = _values(result)
            shown = ", ".join(f"{v:.4g}" for v in values[:4]) + (" ..." if len(values) > 4 else "")
            checks = {FAULTY: FAULTY_CHECKS, HEALTHY: HEALTHY_CHECKS, "All": ALL_CHECKS}[env_name]
            check = checks.get((Path(target.template).stem, target.panel_key))
            problem = None
            if any(math.isnan(v) for v in values):
                problem = f"NaN in {values}"
            elif check is not None and (result or not target.expect_data):
                problem = check(result, target.legend)
            rows.append(Row(target, env_name, status, len(result), shown, problem))
    print("\n" + _summary(rows))
    empty = [
        f"{r.target.template} {r.target.path} $env={r.env}" for r in rows if r.status == "empty"
    ]
    assert not empty, "panel queries without data:\n" + "\n".join(empty)
    wrong = [
        f"{r.target.template} {r.target.panel_key} {r.target.legend} $env={r.env}: {r.problem}"
        for r in rows
        if r.problem
    ]
    assert not wrong, "values that do not match the injected faults:\n" + "\n".join(wrong)
    checked = {(Path(r.target.template).stem, r.target.panel_key) for r in rows}
    stale = (set(FAULTY_CHECKS) | set(HEALTHY_CHECKS) | set(ALL_CHECKS)) - checked
    assert not stale, stale
    # The faulty environment's 5xx show up in the queries that are empty without errors.
    assert all(r.status == "ok" for r in rows if r.env == FAULTY and '"5.."' in r.target.query)


def _firing(alerts: list[dict[str, Any]], env: str) -> set[tuple[str, str]]:
    return {
        (a["labels"]["alertname"], a["labels"].get("tier", ""))
        for a in alerts
        if a["labels"].get("deployment_environment_name") == env
        and a.get("status", {}).get("state", a.get("state")) in ("active", "firing")
    }


def test_alerts_fire_for_the_faulty_environment_and_reach_alertmanager(
    golden: GoldenPath,
) -> None:
    prom, am = golden.prometheus, golden.alertmanager
    rules = prom.rules()
    docs = [yaml.safe_load(f.read_text(encoding="utf-8")) for f in golden.rule_files]
    assert len(rules) == sum(len(g["rules"]) for d in docs for g in d["groups"])
    # The burn-rate alerts read the recorded SLIs: both are loaded and evaluate cleanly.
    assert {r["name"] for r in rules if r["type"] == "recording"} >= {
        "slo:sli_error:ratio_rate5s",
        "slo:sli_error:ratio_rate30d",
    }
    assert prom.alertmanagers() == [f"{am.url}/api/v2/alerts"]
    required = {("HighErrorRatio", ""), ("AvailabilityErrorBudgetBurnPage", "page")}
    in_am = wait_for(
        lambda: (got := _firing(am.alerts(service=SERVICE), FAULTY)) >= required and got,
        90,
        what=f"{required} in Alertmanager",
    )
    # Each rule evaluates cleanly (a broken expression would be "err", never fire, never page).
    assert [r["name"] for r in prom.rules() if r["health"] != "ok"] == []
    # The alerts carry the routing labels the rule file promises.
    for alert in am.alerts(service=SERVICE):
        labels = alert["labels"]
        assert labels["team"] == TEAM and labels["managed_by"] == "platform-obs", labels
        assert alert["annotations"]["runbook_url"].startswith("https://"), alert["annotations"]
    print(f"\nfiring in Alertmanager for {FAULTY}: {sorted(in_am)}")
    # 10% of requests at 300ms against a 250ms / 99% latency SLO and a 250ms p99 threshold.
    assert {("HighLatency", ""), ("LatencyErrorBudgetBurnTicket", "ticket")} <= in_am
    # The primary environment pages: the severity label template resolved per environment,
    # and the coarse error-ratio alert steps down to a ticket beside the availability SLO.
    severities = {
        a["labels"]["alertname"]: a["labels"]["severity"]
        for a in am.alerts(service=SERVICE, deployment_environment_name=FAULTY)
    }
    assert severities["AvailabilityErrorBudgetBurnPage"] == "critical", severities
    assert severities["HighErrorRatio"] == "warning", severities


def test_healthy_environment_stays_silent(golden: GoldenPath) -> None:
    prom, am = golden.prometheus, golden.alertmanager
    # Silence only means something once the faulty side has had time to fire.
    wait_for(
        lambda: _firing(prom.alerts(), FAULTY) >= {("AvailabilityErrorBudgetBurnPage", "page")},
        90,
        what="the faulty environment firing",
    )
    time.sleep(2)  # a few more evaluations of the healthy side, with its windows full of traffic
    healthy = [
        a
        for a in prom.alerts()
        if a["labels"].get(prom_label(conventions.DEPLOYMENT_ENVIRONMENT)) == HEALTHY
    ]
    assert healthy == [], healthy
    assert [a for a in am.alerts(deployment_environment_name=HEALTHY)] == []
    assert golden.loads[HEALTHY].counts[500] == 0


def _server_spans(golden: GoldenPath) -> dict[str, Any]:
    return {s.trace_id: s for s in golden.receiver.spans() if s.kind == "server"}


def test_request_logs_carry_the_trace_id_of_a_received_span(golden: GoldenPath) -> None:
    lines = [
        line
        for service in golden.services.values()
        for line in service.json_lines()
        if line.get(LOG_FIELDS.event) in REQUEST_EVENTS
    ]
    assert {line[LOG_FIELDS.event] for line in lines} == REQUEST_EVENTS
    missing = [line for line in lines if LOG_FIELDS.trace_id not in line]
    assert not missing, missing[:3]
    wanted = {line[LOG_FIELDS.trace_id] for line in lines}
    # Spans are exported in batches: wait until the receiver has the traces of these lines.
    wait_for(lambda: wanted <= set(_server_spans(golden)), 30, what="spans of the logged traces")
    spans = {(s.trace_id, s.span_id) for s in golden.receiver.spans()}
    assert all((line["trace_id"], line["span_id"]) in spans for line in lines)
    failed = [line for line in lines if line[LOG_FIELDS.event] == "request failed"]
    server = _server_spans(golden)
    assert failed and all(server[line["trace_id"]].status_code == "error" for line in failed)
    assert {line[LOG_FIELDS.environment] for line in failed} == {FAULTY}


_LOGQL_SELECTOR = re.compile(r"\{([^{}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def _logql_pipeline(query: str) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """(stream matchers, pipeline stages) of a log query, also inside a metric query."""
    selector = _LOGQL_SELECTOR.search(query)
    assert selector, query
    stream = {m[1]: (m[2], m[3]) for m in _MATCHER.finditer(selector[1])}
    rest = query[selector.end() :]
    rest = re.split(r"\s\[[^\]]+\]\)*", rest)[0]  # strip a metric query's range and parentheses
    # Split on the pipes between stages, not those inside quoted regexes.
    stages = [s.strip() for s in re.split(r'\|(?=(?:[^"]*"[^"]*")*[^"]*$)', rest) if s.strip()]
    return stream, stages


def _match(op: str, pattern: str, value: str) -> bool:
    if op in ("=~", "!~"):
        hit = re.fullmatch(pattern, value) is not None
        return hit if op == "=~" else not hit
    return (value == pattern) if op == "=" else (value != pattern)


def _run_logql(query: str, streams: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Evaluate the LogQL subset the templates use (stream selector, ``json``, field filters)
    over JSON lines grouped by ``service_name`` stream; fields filtered on must exist."""
    matchers, stages = _logql_pipeline(query)
    assert set(matchers) == {conventions.LOKI_SERVICE_LABEL}, matchers
    op, pattern = matchers[conventions.LOKI_SERVICE_LABEL]
    lines = [line for name, ls in streams.items() if _match(op, pattern, name) for line in ls]
    assert stages and stages[0] == "json", f"the dashboards parse the JSON line first: {query}"
    for stage in stages[1:]:
        m = _MATCHER.fullmatch(stage)
        assert m, f"unsupported LogQL stage {stage!r} in {query}"
        name, op, pattern = m.groups()
        absent = [line for line in lines if name not in line]
        assert not absent, f"field {name!r} of {query!r} missing in lines like {absent[:1]}"
        lines = [line for line in lines if _match(op, pattern, str(line[name]))]
    return lines


def test_logql_uses_fields_and_labels_the_sdk_writes(golden: GoldenPath) -> None:
    targets = [t for t in dashboard_targets(golden) if t.datasource == "loki"]
    assert targets
    # The service's stream, as Loki derives it from the OTLP resource (service.name -> service_name).
    records = (golden.loki or golden.receiver).logs()
    assert records and {r.resource.get(conventions.SERVICE_NAME) for r in records} == {SERVICE}
    assert prom_label(conventions.SERVICE_NAME) == conventions.LOKI_SERVICE_LABEL
    assert all(r.resource.get(conventions.DEPLOYMENT_ENVIRONMENT) for r in records)
    assert {r.severity_text.lower() for r in records} <= set(LOG_FIELDS.levels)
    lines = [line for s in golden.services.values() for line in s.json_lines()]
    # Loki's line (on the collector path: what the reference config really sends) must equal
    # the stdout line in every field the panels use.
    wait_for(lambda: len(golden.loki_streams()) > 10, 30, what="log records towards Loki")
    loki = golden.loki_streams()
    assert {labels[conventions.LOKI_SERVICE_LABEL] for labels, _ in loki} == {SERVICE}
    streams = {SERVICE: [line for _, line in loki]}
    by_context = {(ln.get("trace_id"), ln.get("span_id"), ln["event"]): ln for ln in lines}
    used = (
        LOG_FIELDS.event,
        LOG_FIELDS.level,
        LOG_FIELDS.environment,
        LOG_FIELDS.trace_id,
        LOG_FIELDS.span_id,
        LOG_FIELDS.service,
    )
    compared = 0
    for _, loki_line in loki:
        key = (loki_line.get("trace_id"), loki_line.get("span_id"), loki_line.get("event"))
        line = by_context.get(key)
        if line is None or not key[0]:
            continue
        assert {k: loki_line.get(k) for k in used} == {k: line.get(k) for k in used}
        # The event's own fields too (order_id, logger ...): the panels show the whole line.
        # Not compared: the timestamp (Loki keeps the record's own) and the structured
        # exception (OTLP attributes carry no null: a None inside it arrives as "None").
        # The record's semantic-convention exception.* attributes come on top.
        skip = (LOG_FIELDS.timestamp, LOG_FIELDS.exception)
        assert {k: v for k, v in line.items() if k not in skip} == {
            k: v for k, v in loki_line.items() if k in line and k not in skip
        }
        extra = set(loki_line) - set(line)
        assert {k for k in extra if not k.startswith("exception.")} == set(), extra
        compared += 1
    assert compared > 10
    assert {line[LOG_FIELDS.level] for line in lines} <= set(LOG_FIELDS.levels)
    for target in targets:
        for env_name, env_value in ENV_CHOICES.items():
            query = substitute(target.query, {**target.variables, "env": env_value})
            got = _run_logql(query, streams)
            where = f"{target.template} {target.panel_key} $env={env_name}"
            if target.panel_key == "errors":  # only the faulty process logs failures
                assert {line[LOG_FIELDS.level] for line in got} <= {"error", "critical"}, where
                expected = set() if env_name == HEALTHY else {FAULTY}
                assert {line[LOG_FIELDS.environment] for line in got} == expected, where
            else:
                assert got, f"{where}: no lines"
                envs = {line[LOG_FIELDS.environment] for line in got}
                assert envs == ({FAULTY, HEALTHY} if env_name == "All" else {env_name}), where


def _traceql_attributes(query: str) -> list[tuple[str, str]]:
    return re.findall(r"\b(resource|span)\.([A-Za-z0-9_.]+?)\s*(?:=~|!=|>=|<=|=|>|<)", query)


def test_traceql_uses_attributes_the_spans_have(golden: GoldenPath) -> None:
    queries = [
        (t.dashboard, t.panel_key, t.query)
        for t in dashboard_targets(golden)
        if t.datasource == "tempo"
    ] + explore_queries(golden)
    assert queries
    spans = list(_server_spans(golden).values())
    assert spans
    route_label = prom_label(conventions.HTTP_ROUTE)
    trace_links = [q for q in queries if re.fullmatch(r"\$\{__data\.fields\.\w+\}", q[2])]
    for dashboard, where, query in trace_links:  # logs -> traces: the line's own trace id field
        field = query[len("${__data.fields.") : -1]
        assert field == LOG_FIELDS.trace_id, (dashboard, where, query)
        lines = [ln for s in golden.services.values() for ln in s.json_lines() if field in ln]
        assert set(ln[field] for ln in lines) & set(_server_spans(golden)), "no trace to jump to"
    queries = [q for q in queries if q not in trace_links]
    for dashboard, where, query in queries:
        attrs = _traceql_attributes(query)
        assert attrs, query
        for scope, name in attrs:
            have = [s.resource if scope == "resource" else s.attributes for s in spans]
            assert all(name in h for h in have), (
                f"{dashboard} {where}: {scope}.{name} is not on the server spans "
                f"(they have {sorted(set().union(*have))})"
            )
        assert "kind=server" in query.replace(" ", "")
        # A link's ${__field.labels.x} must be a label of the panel's Prometheus series.
        for label in re.findall(r"\$\{__field\.labels\.([A-Za-z0-9_]+)\}", query):
            assert label == route_label, query
            assert {s.attributes.get(conventions.HTTP_ROUTE) for s in spans} <= ROUTES
    assert {s.resource[conventions.SERVICE_NAME] for s in spans} == {SERVICE}


def test_runtime_metrics_come_from_one_source(golden: GoldenPath) -> None:
    prom = golden.prometheus
    for metric in (
        conventions.PROCESS_MEMORY_USAGE,
        conventions.PROCESS_THREAD_COUNT,
        conventions.PROCESS_CPU_TIME,
        conventions.CPYTHON_GC_COLLECTIONS,
    ):
        selected = golden.select(metric.prom_name, FAULTY)
        scopes = prom.query(f"count by (otel_scope_name) ({selected})")
        assert [s["metric"]["otel_scope_name"] for s in scopes] == ["platform_obs"], metric.name
    # The memory panel shows the process's resident memory, not a multiple of it.
    pid = golden.services[FAULTY].process.pid
    rss = (
        int(
            next(
                line.split()[1]
                for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("VmRSS:")
            )
        )
        * 1024
    )
    (value,) = prom.query_values(
        f"sum({golden.select(conventions.PROCESS_MEMORY_USAGE.prom_name, FAULTY)})"
    )
    assert 0.5 * rss < value < 1.5 * rss, (value, rss)


def test_exemplars_lead_from_the_latency_histogram_to_received_traces(golden: GoldenPath) -> None:
    if golden.metric_path == PULL:
        pytest.skip("the SDK's pull endpoint (Prometheus text format) carries no exemplars")
    bucket = conventions.HTTP_SERVER_REQUEST_DURATION.series("bucket")
    now = time.time()

    def exemplars() -> list[dict[str, Any]]:
        data = golden.prometheus.api(
            "query_exemplars",
            {
                "query": f'{bucket}{{job="{golden.job}"}}',
                "start": f"{now - 600}",
                "end": f"{now + 600}",
            },
        )
        return [e for series in data for e in series["exemplars"]]

    found = wait_for(exemplars, 30, what="exemplars of the latency histogram")
    trace_ids = {e["labels"].get("trace_id") for e in found}
    assert None not in trace_ids, found[:3]
    # Spans are exported in batches: the exemplars' traces arrive at the trace receiver.
    wait_for(
        lambda: (
            len(trace_ids & {s.trace_id for s in golden.receiver.spans()}) >= len(trace_ids) / 2
        ),
        30,
        what="the exemplars' traces at the trace receiver",
    )
    server = _server_spans(golden)
    linked = [e for e in found if e["labels"]["trace_id"] in server]
    assert linked, "no exemplar names a server span the trace receiver got"
    # The exemplar is the request's own duration: the span's, within the bucket it sits in.
    for e in linked[:20]:
        span = server[e["labels"]["trace_id"]]
        assert abs(float(e["value"]) - span.duration_s) < 0.05, (e, span.duration_s)


def test_doctor_recognises_the_backends_label_scheme(golden: GoldenPath) -> None:
    (spec,) = load_specs([golden.templates_dir.parent / "config"])
    fits = "promoted" if golden.promoted else "target_info"
    other = "target_info" if golden.promoted else "promoted"
    results = {
        r.name: r
        for r in doctor.check_prometheus(
            golden.prometheus.url, spec, timeout=10, metric_labels=fits
        )
    }
    scheme = results.pop("label scheme")
    assert scheme.status == "ok" and f"platform.metric_labels: {fits} fits" in scheme.detail
    # With the scheme known, the series checks find every environment of the service.
    for name, result in results.items():
        if name.startswith("series ") and name != f"series {conventions.TELEMETRY_DROPPED.name}":
            assert result.status == "ok" and FAULTY in result.detail and HEALTHY in result.detail, (
                result
            )
    wrong, _ = doctor.check_label_scheme(golden.prometheus.url, spec, other, 10)
    assert wrong.status == "fail", wrong
    assert f"metric_labels: {fits}" in wrong.hint and f"metric_labels: {other}" in wrong.detail
