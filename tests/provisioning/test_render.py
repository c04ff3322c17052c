"""Rendering: dashboards through foundation-sdk, Grafana rules and Prometheus rules from one model."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from fixtures_render import EXAMPLE, SLOS, config, templates, write
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard as DashboardModel

from platform_obs import conventions
from platform_obs.provisioning import model
from platform_obs.provisioning.model import Rendered, ValidationFailed
from platform_obs.provisioning.outputs import render_files, write_all
from platform_obs.provisioning.pipeline import build
from platform_obs.provisioning.placeholders import RECORDED_PREFIXES, known_labels, known_series
from platform_obs.provisioning.render.dashboards import TARGET_META_KEY

register_default_plugins()
REQUEST_COUNT = conventions.HTTP_SERVER_REQUEST_DURATION.series("count")


@pytest.fixture(scope="module")
def example() -> Rendered:
    return build([EXAMPLE], run_promtool=False)


def render(tmp_path: Path, **overrides: Any) -> Rendered:
    return build([write(tmp_path, config(**overrides))], run_promtool=False)


def board(rendered: Rendered, template_id: str) -> dict[str, Any]:
    return next(
        d.model for d in rendered.dashboards if d.uid == model.stable_uid("checkout", template_id)
    )


def panel(dash: dict[str, Any], title_part: str) -> dict[str, Any]:
    return next(p for p in dash["panels"] if title_part in p.get("title", ""))


def exprs(dash: dict[str, Any]) -> list[str]:
    return [t.get("expr") or t.get("query") for p in dash["panels"] for t in p.get("targets", [])]


def strip_meta(data: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    for p in data["panels"]:
        for t in p.get("targets", []):
            t.pop(TARGET_META_KEY, None)
    return data


def test_folders_uids_and_tags(example: Rendered) -> None:
    team, service = example.folders
    assert (team.uid, team.title, team.parent_uid) == ("po-team-payments", "payments", None)
    assert (service.uid, service.title, service.parent_uid) == ("po-checkout", "checkout", team.uid)
    assert example.services == ["checkout"]
    assert [d.uid for d in example.dashboards] == [
        model.stable_uid("checkout", t) for t in ("overview", "runtime", "logs", "slo")
    ]
    for dash in example.dashboards:
        assert dash.folder_uid == service.uid
        assert {model.MANAGER, "service:checkout", "payments"} <= set(dash.model["tags"])


def test_dashboards_round_trip_through_foundation_sdk_models(example: Rendered) -> None:
    for dash in example.dashboards:
        data = strip_meta(dash.model)
        decoded = DashboardModel.from_json(data)
        again = json.loads(json.dumps(decoded, cls=JSONEncoder, sort_keys=True))
        assert again == data, dash.uid


def test_variables(example: Rendered) -> None:
    for dash in example.dashboards:
        variables = {v["name"]: v for v in dash.model["templating"]["list"]}
        for kind in ("prometheus", "loki", "tempo"):
            assert variables[kind]["type"] == "datasource" and variables[kind]["query"] == kind
            assert variables[kind]["current"]["value"] == kind
        env = variables["env"]
        assert env["type"] == "query" and "deployment_environment_name" in env["query"]
        # One environment at a time, the first configured one by default; All stays offered.
        assert not env["multi"] and env["includeAll"] and env["allValue"] == ".*"
        assert env["current"]["value"] == "production"
        service = variables["service"]
        assert (
            service["type"] == "constant"
            and service["query"] == "checkout"
            and service["hide"] == 2
        )


def test_overview_panels(example: Rendered) -> None:
    dash = board(example, "overview")
    titles = [p["title"] for p in dash["panels"]]
    for needed in (
        "Requests per second",
        "Error ratio",
        "Latency p50 / p90 / p99",
        "status code",
        "in flight",
    ):
        assert any(needed in t for t in titles), needed
    latency = panel(dash, "Latency p50")
    env = "{{deployment_environment_name}}"
    assert [t["legendFormat"] for t in latency["targets"]] == [
        f"{env} p50",
        f"{env} p90",
        f"{env} HighLatency",
    ]
    assert all(
        "histogram_quantile" in t["expr"] and "http_route" not in t["expr"]
        for t in latency["targets"]
    )
    # Every aggregation keeps the environment: "All" splits, never sums.
    assert all("deployment_environment_name" in t["expr"] for t in latency["targets"])
    rate = panel(dash, "Requests per second by route")["targets"][0]["expr"]
    assert (
        f"{REQUEST_COUNT}{{" in rate
        and "by (service_name, deployment_environment_name, http_route)" in rate
        and "[$__rate_interval]" in rate
    )
    assert 'service_name="$service"' in rate and 'deployment_environment_name=~"$env"' in rate
    # latency -> traces in Tempo, via Explore with a TraceQL query on the service attribute
    [link] = latency["fieldConfig"]["defaults"]["links"]
    assert link["url"].startswith("/explore?") and "${tempo}" in link["url"]
    assert conventions.TEMPO_SERVICE_ATTRIBUTE in link["url"] and "traceql" in link["url"]
    traces = panel(dash, "Slowest recent traces")
    assert traces["datasource"] == {"type": "tempo", "uid": "${tempo}"}
    assert traces["targets"][0]["queryType"] == "traceql"


def test_runtime_dashboard_uses_the_sdk_metrics(example: Rendered) -> None:
    queries = " ".join(exprs(board(example, "runtime")))
    for metric in (
        conventions.PROCESS_CPU_TIME,
        conventions.PROCESS_MEMORY_USAGE,
        conventions.CPYTHON_GC_COLLECTIONS,
        conventions.PROCESS_THREAD_COUNT,
    ):
        assert metric.series() + "{" in queries, metric.name


def test_logs_dashboard_queries_loki_by_service_and_level(example: Rendered) -> None:
    dash = board(example, "logs")
    stream = panel(dash, "Log stream")
    assert stream["type"] == "logs" and stream["datasource"] == {"type": "loki", "uid": "${loki}"}
    expr = stream["targets"][0]["expr"]
    assert expr.startswith(f'{{{conventions.LOKI_SERVICE_LABEL}="$service"}} | json')
    assert f'{conventions.LOG_FIELDS.level}=~"$level"' in expr
    level = next(v for v in dash["templating"]["list"] if v["name"] == "level")
    assert level["type"] == "custom" and level["query"] == ",".join(conventions.LOG_FIELDS.levels)


def test_every_prometheus_query_uses_conventions_names(example: Rendered) -> None:
    series, labels = known_series(), known_labels()
    seen = 0
    for dash in example.dashboards:
        for p in dash.model["panels"]:
            if p.get("datasource", {}).get("type") != "prometheus":
                continue
            for t in p["targets"]:
                text = re.sub(r"\$\{?__\w+\}?", "5m", t["expr"])
                text = re.sub(r"\$\{?(\w+)\}?", "x", text)
                seen += 1

                def visit(node: Any) -> None:
                    if isinstance(node, promql_parser.VectorSelector):
                        assert node.name in series or node.name.startswith(RECORDED_PREFIXES)
                        assert {m.name for m in node.matchers.matchers} <= labels

                promql_parser.walk(promql_parser.parse(text), visit)
    assert seen > 20


def test_expect_data_metadata_is_exposed(example: Rendered) -> None:
    metas = [
        t[TARGET_META_KEY]
        for d in example.dashboards
        for p in d.model["panels"]
        for t in p.get("targets", [])
    ]
    assert all(m["template"].startswith("dashboards/") for m in metas)
    silent = [m for m in metas if not m["expect_data"]]
    assert silent and all(m["reason"] for m in silent)
    # Zero, not "No data", while the SDK dropped nothing.
    dropped = panel(board(example, "runtime"), "Telemetry dropped")["targets"][0]
    assert dropped[TARGET_META_KEY]["expect_data"] is True and " or 0 * " in dropped["expr"]


def test_slo_dashboard_only_with_slos(tmp_path: Path) -> None:
    plain = render(tmp_path)
    assert [d.uid for d in plain.dashboards] == [
        "checkout-overview",
        "checkout-runtime",
        "checkout-logs",
    ]
    latency_only = render(tmp_path, slos={"latency": {"threshold": "500ms", "objective": 99}})
    slo = board(latency_only, "slo")
    titles = [p["title"] for p in slo["panels"]]
    assert not any("Availability" in t for t in titles) and any("Latency" in t for t in titles)
    assert "slo:sli_error:ratio_rate30d" in " ".join(exprs(slo))
    (recordings,) = [r for r in latency_only.prometheus_rules if r.kind == "slo"]
    assert 'le="0.5"' in str(recordings.document)


def test_dashboard_selection(tmp_path: Path) -> None:
    rendered = render(tmp_path, dashboards=["logs"])
    assert [d.uid for d in rendered.dashboards] == ["checkout-logs"]
    # alerts pointing at a dashboard the service does not get carry neither annotation
    for rule in rendered.rule_groups[0].rules:
        assert (
            "__dashboardUid__" not in rule["annotations"]
            and "__panelId__" not in rule["annotations"]
        )


def rules_by_title(rendered: Rendered) -> dict[str, dict[str, Any]]:
    return {r["title"]: r for r in rendered.rule_groups[0].rules}


def prom_rules(rendered: Rendered) -> list[dict[str, Any]]:
    return rendered.prometheus_rules[0].document["groups"][0]["rules"]


def test_grafana_rule_shape(example: Rendered) -> None:
    [group] = example.rule_groups
    assert (group.title, group.folder_uid, group.interval_seconds) == (
        "checkout",
        "po-checkout",
        60,
    )
    rule = rules_by_title(example)["HighErrorRatio"]
    assert [d["refId"] for d in rule["data"]] == ["A", "B", "C"] and rule["condition"] == "C"
    assert rule["data"][0]["datasourceUid"] == "prometheus" and rule["data"][0]["model"]["instant"]
    assert [d["datasourceUid"] for d in rule["data"][1:]] == ["__expr__", "__expr__"]
    assert rule["data"][1]["model"]["type"] == "reduce"
    assert rule["data"][2]["model"]["conditions"][0]["evaluator"] == {
        "type": "gt",
        "params": [0.02],
    }
    assert (
        rule["for"] == "10m"
        and rule["folderUID"] == "po-checkout"
        and rule["ruleGroup"] == "checkout"
    )
    # With an availability SLO the burn-rate page tier pages; this one is a ticket.
    assert rule["labels"] == {
        "managed_by": "platform-obs",
        "service": "checkout",
        "severity": "warning",
        "team": "payments",
    }
    assert rule["notification_settings"] == {
        "receiver": "payments-oncall",
        "group_by": ["alertname", "grafana_folder", "deployment_environment_name"],
    }
    overview = board(example, "overview")
    assert rule["annotations"]["__dashboardUid__"] == overview["uid"]
    assert panel(overview, "Error ratio")["id"] == int(rule["annotations"]["__panelId__"])
    assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
    assert (
        rule["annotations"]["runbook_url"]
        == "https://runbooks.example.com/payments/high-error-ratio"
    )
    saturation = rules_by_title(example)["HighMemoryUsage"]
    assert saturation["notification_settings"]["receiver"] == "payments-infra"


def test_datasource_uid_comes_from_the_config(tmp_path: Path) -> None:
    rendered = render(tmp_path, datasources={"prometheus": "mimir-prod"})
    for rule in rendered.rule_groups[0].rules:
        assert rule["data"][0]["datasourceUid"] == "mimir-prod"


def test_grafana_and_prometheus_rules_come_from_one_definition(example: Rendered) -> None:
    grafana = example.rule_groups[0].rules
    prom = prom_rules(example)
    assert len(grafana) == len(prom) == 10
    for g, p in zip(grafana, prom, strict=True):
        assert p["labels"] == {**g["labels"], "receiver": g["notification_settings"]["receiver"]}
        assert (
            p["expr"].startswith(f"({g['data'][0]['model']['expr']})")
            or p["expr"] == g["data"][0]["model"]["expr"]
        )
        assert p["annotations"]["summary"] == g["annotations"]["summary"]


def _burn_rules(rendered: Rendered, slo: str) -> dict[str, dict[str, Any]]:
    return {r["labels"]["tier"]: r for r in prom_rules(rendered) if r["labels"].get("slo") == slo}


@pytest.mark.parametrize(
    ("window", "limits"),
    [
        (
            "30d",
            {
                "page": [("1h", "5m", "0.0144"), ("6h", "30m", "0.006")],
                "ticket": [("1d", "2h", "0.003"), ("3d", "6h", "0.001")],
            },
        ),
        (
            "28d",
            {
                "page": [("1h", "5m", "0.01344"), ("6h", "30m", "0.0056")],
                "ticket": [("1d", "2h", "0.0028"), ("3d", "6h", "0.000933")],
            },
        ),
    ],
)
def test_burn_rate_windows_and_factors(tmp_path: Path, window: str, limits: dict) -> None:
    rendered = render(tmp_path, slos={**SLOS, "window": window})
    rules = _burn_rules(rendered, "availability")
    assert set(rules) == {"page", "ticket"}
    for tier, pairs in limits.items():
        expr = rules[tier]["expr"]
        clauses = expr.split(" or ")
        assert len(clauses) == len(pairs)
        for clause, (long_, short, limit) in zip(clauses, pairs, strict=True):
            # recorded ratios: the long window, then the short one, against the same limit
            found = re.findall(r"slo:sli_error:ratio_rate(\w+)\{[^}]*\} > ([0-9.]+)", clause)
            assert found == [(long_, limit), (short, limit)], clause
            assert " and " in clause
        assert rules[tier]["labels"]["tier"] == tier
    assert (
        rules["page"]["labels"]["severity"] == "critical"
        and rules["ticket"]["labels"]["severity"] == "warning"
    )
    assert rules["page"]["alert"] == "AvailabilityErrorBudgetBurnPage"


def test_burn_rate_tiers_can_be_disabled(tmp_path: Path) -> None:
    rendered = render(
        tmp_path,
        slos=SLOS,
        alerts={
            "slo-availability-burn-rate": {"ticket": False},
            "slo-latency-burn-rate": {"page": False},
        },
    )
    assert set(_burn_rules(rendered, "availability")) == {"page"}
    assert set(_burn_rules(rendered, "latency")) == {"ticket"}


def test_tier_3_defaults(tmp_path: Path) -> None:
    rendered = render(tmp_path, tier=3, slos=SLOS)
    assert set(_burn_rules(rendered, "availability")) == {
        "ticket"
    }  # no paging for best-effort services
    assert rules_by_title(rendered)["HighErrorRatio"]["labels"]["severity"] == "warning"


def test_templates_can_be_switched_off_and_custom_alerts_pass_through(tmp_path: Path) -> None:
    custom = {
        "name": "QueueBacklog",
        "expr": 'sum(queue_depth{queue="orders"}) > 100',
        "summary": "backlog",
        "receiver": "ops",
        "labels": {"component": "queue"},
    }
    rendered = render(
        tmp_path, alerts={"saturation": False, "traffic-drop": False}, custom_alerts=[custom]
    )
    titles = set(rules_by_title(rendered))
    assert titles == {"HighErrorRatio", "HighLatency", "QueueBacklog"}
    rule = rules_by_title(rendered)["QueueBacklog"]
    assert rule["data"][0]["model"]["expr"] == custom["expr"]
    assert rule["data"][2]["model"]["type"] == "math" and rule["noDataState"] == "OK"
    assert (
        rule["notification_settings"]["receiver"] == "ops"
        and rule["labels"]["component"] == "queue"
    )
    assert prom_rules(rendered)[-1]["expr"] == custom["expr"]


def test_environments_and_namespace_in_alert_selectors(tmp_path: Path) -> None:
    rendered = render(tmp_path, environments=["prod-eu", "prod.us"], namespace="shop")
    expr = prom_rules(rendered)[0]["expr"]
    assert 'deployment_environment_name=~"prod-eu|prod\\\\.us"' in expr
    assert 'service_namespace="shop"' in expr and 'service_name="checkout"' in expr
    assert "$" not in expr


def test_outputs_are_complete_and_deterministic(example: Rendered, tmp_path: Path) -> None:
    example.extra_files["catalog/checkout.yaml"] = "x: 1\n"
    first = {
        p.relative_to(tmp_path / "a"): p.read_bytes() for p in write_all(example, tmp_path / "a")
    }
    again = build([EXAMPLE], run_promtool=False)
    again.extra_files["catalog/checkout.yaml"] = "x: 1\n"
    second = {
        p.relative_to(tmp_path / "b"): p.read_bytes() for p in write_all(again, tmp_path / "b")
    }
    assert first == second
    names = sorted(str(p) for p in first)
    assert names == [
        "catalog/checkout.yaml",
        "dashboards/po-checkout/checkout-logs.json",
        "dashboards/po-checkout/checkout-overview.json",
        "dashboards/po-checkout/checkout-runtime.json",
        "dashboards/po-checkout/checkout-slo.json",
        "prometheus/checkout.rules.yaml",
        "prometheus/checkout.slo.rules.yaml",
        "provisioning/alerting/checkout.yaml",
        "provisioning/dashboards/platform-obs.yaml",
    ]
    providers = yaml.safe_load(first[Path("provisioning/dashboards/platform-obs.yaml")])
    assert providers["apiVersion"] == 1
    [provider] = providers["providers"]
    assert (
        provider["type"] == "file"
        and provider["folderUid"] == "po-checkout"
        and provider["options"]["path"]
    )
    alerting = yaml.safe_load(first[Path("provisioning/alerting/checkout.yaml")])
    [group] = alerting["groups"]
    assert (group["orgId"], group["name"], group["folder"], group["interval"]) == (
        1,
        "checkout",
        "checkout",
        "1m",
    )
    assert len(group["rules"]) == 10 and all(
        "uid" in r and "folderUID" not in r for r in group["rules"]
    )
    dash = json.loads(first[Path("dashboards/po-checkout/checkout-overview.json")])
    assert dash["uid"] == "checkout-overview"


def test_render_files_is_pure(example: Rendered) -> None:
    assert render_files(example) == render_files(example)


def test_a_new_template_file_adds_a_dashboard(tmp_path: Path) -> None:
    tdir = tmp_path / "templates"
    shutil.copytree(Path(templates().source), tdir)
    (tdir / "dashboards" / "http-methods.yaml").write_text(
        "title: '${service_name} · Methods'\nrows:\n  - title: Methods\n    panels:\n"
        "      - key: methods\n        title: By method\n        targets:\n"
        "          - expr: sum by (${label:http.request.method}) "
        "(rate(${metric:http.server.request.duration:count}{${selector}}[$__rate_interval]))\n"
    )
    cfg = write(tmp_path, config())
    rendered = build([cfg], tdir, run_promtool=False)
    extra = next(d for d in rendered.dashboards if d.uid == "checkout-http-methods")
    assert "sum by (http_request_method)" in extra.model["panels"][1]["targets"][0]["expr"]


def test_unknown_names_in_a_template_name_the_file(tmp_path: Path) -> None:
    tdir = tmp_path / "templates"
    shutil.copytree(Path(templates().source), tdir)
    (tdir / "dashboards" / "broken.yaml").write_text(
        "title: x\nrows:\n  - title: r\n    panels:\n      - key: p\n        title: p\n        targets:\n"
        "          - expr: rate(${metric:http.server.request.durations:count}[5m]) by (${label:http.rout})\n"
    )
    with pytest.raises(ValidationFailed) as info:
        build([write(tmp_path, config())], tdir, run_promtool=False)
    metric, label = info.value.problems
    for problem in (metric, label):
        assert (
            problem.file.endswith("broken.yaml")
            and problem.path == "rows[0].panels[0].targets[0].expr"
        )
        assert problem.line == 8
    assert "did you mean 'http.server.request.duration'" in metric.message
    assert label.value == "${label:http.rout}" and "did you mean 'http.route'" in label.message


def test_plain_json_matches_the_foundation_sdk_encoder(tmp_path: Path) -> None:
    from platform_obs.provisioning.render import dashboards as render_dashboards
    from platform_obs.provisioning.spec import load_specs

    [spec] = load_specs([EXAMPLE])
    captured: list[Any] = []
    original = render_dashboards.to_json

    def capture(built: Any) -> Any:
        captured.append(built)
        return original(built)

    render_dashboards.to_json = capture  # type: ignore[assignment]
    try:
        render_dashboards.render_dashboards(spec, templates())
    finally:
        render_dashboards.to_json = original  # type: ignore[assignment]
    assert captured
    for built in captured:
        assert original(built) == json.loads(render_dashboards.encode(built))
