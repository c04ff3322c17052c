"""Offline validation: PromQL, Grafana rule constraints, variables, duplicates, promtool mapping."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures_render import EXAMPLE, config, write

from platform_obs.provisioning import validate
from platform_obs.provisioning.model import (
    PrometheusRuleFile,
    Rendered,
    RuleGroup,
    ValidationFailed,
)
from platform_obs.provisioning.pipeline import build, render_all
from platform_obs.provisioning.spec import load_specs
from platform_obs.provisioning.templates import load_templates


def test_macros_and_variables_are_substituted_before_parsing() -> None:
    expr = (
        'sum(rate(http_server_request_duration_seconds_count{service_name="$service", '
        'deployment_environment_name=~"${env:regex}"}[$__rate_interval])) / $__range_s'
    )
    assert validate.check_promql(expr, strict_names=True) == []


@pytest.mark.parametrize(
    ("expr", "strict", "words"),
    [
        ("sum(rate(http_server_request_duration_seconds_count[5m])", True, "invalid PromQL"),
        ("rate(http_server_request_duration_seconds_count)", True, "expected type matrix"),
        ("sum(rate(http_requests_total[5m]))", True, "not in the conventions"),
        (
            'sum(rate(http_server_request_duration_seconds_count{http_rout="/"}[5m]))',
            True,
            "did you mean 'http_route'",
        ),
    ],
)
def test_check_promql_finds_problems(expr: str, strict: bool, words: str) -> None:
    problems = validate.check_promql(expr, strict_names=strict)
    assert problems and words in problems[0][0] + problems[0][2]


def test_custom_expressions_only_need_valid_syntax() -> None:
    assert validate.check_promql("sum(rate(my_own_metric_total[5m])) > 1", strict_names=False) == []
    assert validate.check_promql("1", strict_names=False, alert=True)


def test_custom_alert_with_bad_promql_names_file_path_and_line(tmp_path: Path) -> None:
    customs = [
        {"name": "Fine", "expr": "sum(my_metric_total) > 1", "summary": "ok"},
        {"name": "Broken", "expr": "sum(rate(my_metric_total[5m]) > 1", "summary": "broken"},
    ]
    file = write(tmp_path, config(custom_alerts=customs))
    with pytest.raises(ValidationFailed) as info:
        build([file], run_promtool=False)
    [problem] = info.value.problems
    assert problem.file == str(file) and problem.path == "custom_alerts[1].expr"
    assert problem.line is not None and "invalid PromQL" in problem.message
    assert problem.value == "sum(rate(my_metric_total[5m]) > 1"


def _group(**changes: object) -> RuleGroup:
    rule = {
        "uid": "ok-uid",
        "title": "A rule",
        "condition": "C",
        "folderUID": "f",
        "ruleGroup": "g",
        "for": "5m",
        "data": [{"refId": "A"}, {"refId": "B"}, {"refId": "C"}],
        "noDataState": "NoData",
        "execErrState": "Error",
        "annotations": {},
    }
    bad = {**rule, **changes}
    return RuleGroup(service="s", folder_uid="f", title="g", interval_seconds=60, rules=(rule, bad))


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"uid": "has space"}, "invalid rule uid"),
        ({"uid": "x" * 41}, "invalid rule uid"),
        ({"title": ""}, "1-190"),
        ({"title": "t" * 191}, "1-190"),
        ({"condition": "D"}, "condition names no query"),
        ({"noDataState": "Silence"}, "noDataState"),
        ({"execErrState": "NoData"}, "execErrState"),
        ({"annotations": {"__dashboardUid__": "d"}}, "go together"),
        ({"for": "five"}, "for duration"),
    ],
)
def test_rule_group_constraints(changes: dict, words: str) -> None:
    problems = validate.check_rule_group(_group(**changes), "svc.yaml")
    assert [words in p.message for p in problems] == [True], problems


def test_rule_group_interval_and_name() -> None:
    group = dataclasses.replace(_group(), interval_seconds=15, title="")
    messages = [p.message for p in validate.check_rule_group(group, "svc.yaml")]
    assert any("multiple of 10" in m for m in messages) and any("1-190" in m for m in messages)


def test_all_rule_problems_at_once() -> None:
    group = _group(uid="bad uid", condition="Z", noDataState="x", execErrState="y")
    assert len(validate.check_rule_group(group, "svc.yaml")) == 4


def test_rendered_dashboard_checks(tmp_path: Path) -> None:
    specs = load_specs([EXAMPLE])
    result = render_all(specs, load_templates())
    board = result.rendered.dashboards[0]
    target = board.model["panels"][1]["targets"][0]
    target["expr"] = target["expr"].replace("$service", "$servcie") + ")"
    board.model["uid"] = "not a uid"
    problems = validate.check_rendered(
        result.rendered, result.definitions, specs, run_promtool=False
    )
    messages = " | ".join(p.message for p in problems)
    assert "unknown dashboard variable" in messages and "invalid PromQL" in messages
    assert "invalid dashboard uid" in messages
    variable = next(p for p in problems if "unknown dashboard variable" in p.message)
    assert variable.file == "dashboards/overview.yaml" and variable.path.startswith(
        "rows[0].panels[0]"
    )


def test_duplicates_across_services() -> None:
    specs = load_specs([EXAMPLE])
    result = render_all(specs, load_templates())
    rendered = result.rendered
    twice = Rendered(
        services=rendered.services,
        folders=rendered.folders,
        dashboards=rendered.dashboards + rendered.dashboards[:1],
        rule_groups=[
            *rendered.rule_groups,
            dataclasses.replace(rendered.rule_groups[0], rules=rendered.rule_groups[0].rules[:1]),
        ],
    )
    messages = [
        p.message
        for p in validate.check_rendered(twice, result.definitions, specs, run_promtool=False)
    ]
    assert any("dashboard uid is used twice" in m for m in messages)
    assert any("rule uid is used twice" in m for m in messages)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_errors_map_back_to_the_service_file(tmp_path: Path) -> None:
    customs = [{"name": "Dup", "expr": "up == 0", "summary": "s", "labels": {"a": "b"}}]
    file = write(tmp_path, config(custom_alerts=customs))
    specs = load_specs([file])
    result = render_all(specs, load_templates())
    # promtool rejects an invalid label template that the PromQL parser cannot see
    doc = result.rendered.prometheus_rules[0].document
    doc["groups"][0]["rules"][-1]["annotations"]["summary"] = "{{ $labels.x "
    result.rendered.prometheus_rules[0] = PrometheusRuleFile("checkout", doc)
    problems = validate.promtool_check(
        result.rendered, result.definitions, {s.name: s for s in specs}
    )
    assert problems, "promtool found nothing"
    [problem] = problems
    assert (
        problem.file == str(file)
        and problem.path == "custom_alerts[0]"
        and problem.line is not None
    )
    assert "promtool" in problem.message and problem.value == "Dup"


def test_build_runs_promtool_on_good_output() -> None:
    assert build([EXAMPLE]).prometheus_rules


def test_problems_of_every_file_and_stage_come_back_in_one_round(tmp_path: Path) -> None:
    """A schema error in one file does not hide another file's PromQL error (render stage)."""
    write(tmp_path, config(service="Billing"), "billing.yaml")
    bad_promql = config(
        service="ledger",
        custom_alerts=[{"name": "LedgerLag", "summary": "lag", "expr": "sum(rate(foo[5m]) >"}],
    )
    write(tmp_path, bad_promql, "ledger.yaml")
    write(tmp_path, config(service="orders"), "orders.yaml")  # clean: no problems of its own
    with pytest.raises(ValidationFailed) as err:
        build([tmp_path], run_promtool=False)
    by_file = {Path(p.file).name: p for p in err.value.problems}
    assert set(by_file) == {"billing.yaml", "ledger.yaml"}
    assert by_file["billing.yaml"].path == "service"
    assert by_file["ledger.yaml"].path == "custom_alerts[0].expr"
    assert "invalid PromQL" in by_file["ledger.yaml"].message


# --- fleet scale: each distinct thing checked once ----------------------------------------------


def _fleet(tmp_path: Path, n: int) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        data = config(service=f"svc-{i:02d}", team=f"team-{i % 3}", receiver=f"team-{i % 3}-oncall")
        write(tmp_path, data, f"svc-{i:02d}.yaml")
    return tmp_path


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_one_promtool_process_per_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A promtool on PATH that logs each start, then runs the real one."""
    bin_dir, log = tmp_path / "bin", tmp_path / "promtool.log"
    bin_dir.mkdir()
    wrapper = bin_dir / "promtool"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {shutil.which("promtool")} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    configs = _fleet(tmp_path / "services", 12)
    assert build([configs]).prometheus_rules
    runs = log.read_text().splitlines()
    assert len(runs) == 1, runs
    assert runs[0].startswith("check rules")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_parses_each_distinct_label_and_annotation_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """promtool's time is its template parsing, per label and annotation: rules that differ
    only in a threshold share theirs, which are checked once, apart from the rules."""
    bin_dir, copy = tmp_path / "bin", tmp_path / "input.json"
    bin_dir.mkdir()
    wrapper = bin_dir / "promtool"
    real = shutil.which("promtool")
    wrapper.write_text(
        f'#!/bin/sh\nfor a; do last="$a"; done\ncp "$last" {copy}\nexec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    configs = tmp_path / "services"
    configs.mkdir()
    for i in range(6):
        alerts = {"high-error-ratio": {"threshold": 0.01 * (1 + i % 3)}}
        data = config(service=f"svc-{i}", team="payments", receiver="r", tier=2, alerts=alerts)
        write(configs, data, f"svc-{i}.yaml")
    rendered = build([configs])
    rules = [r for g in json.loads(copy.read_text())["groups"] for r in g["rules"]]
    texts = [r for r in rules if r.get("alert") == "Text"]
    alerting = [r for r in rules if "alert" in r and r not in texts]
    assert alerting and not any("labels" in r or "annotations" in r for r in alerting)
    pairs = [
        (kind, *item)
        for r in texts
        for kind in ("labels", "annotations")
        for item in r.get(kind, {}).items()
    ]
    assert len(pairs) == len(texts) == len(set(pairs)), "one label or annotation per rule, once"
    in_files = sum(
        len(r.get("labels", {})) + len(r.get("annotations", {}))
        for f in rendered.prometheus_rules
        if f.kind == "alerts"
        for r in f.document["groups"][0]["rules"]
    )
    assert len(texts) < in_files / 5


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_a_template_rule_promtool_rejects_is_reported_for_every_service(tmp_path: Path) -> None:
    specs = load_specs([_fleet(tmp_path, 3)])
    result = render_all(specs, load_templates())
    for rule_file in result.rendered.prometheus_rules:  # the same template text in every service
        rule_file.document["groups"][0]["rules"][0]["annotations"]["summary"] += " {{ $labels.x "
    problems = validate.promtool_check(
        result.rendered, result.definitions, {s.name: s for s in specs}
    )
    services = sorted(re.search(r"service (\S+)\)", p.message)[1] for p in problems)
    assert services == ["svc-00", "svc-01", "svc-02"]
    assert all(p.file.endswith(".yaml") and "promtool" in p.message for p in problems)


def test_promql_is_parsed_once_per_distinct_expression_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = load_specs([_fleet(tmp_path, 10)])
    result = render_all(specs, load_templates())
    parsed: list[str] = []
    real = validate.promql_parser.parse
    monkeypatch.setattr(validate.promql_parser, "parse", lambda t: parsed.append(t) or real(t))
    validate._check_promql.cache_clear()
    assert (
        validate.check_rendered(result.rendered, result.definitions, specs, run_promtool=False)
        == []
    )
    assert len(parsed) == len(set(parsed))  # never the same text twice
    per_service = len([d for d in result.definitions if d.service == "svc-00"])
    expressions = len(result.definitions) + sum(
        len(p.get("targets", [])) for b in result.rendered.dashboards for p in b.model["panels"]
    )
    # ten services of one shape cost what one does, not ten times as much
    assert len(parsed) < expressions / 5 and len(parsed) <= per_service + expressions / 10


def test_the_c_loader_keeps_line_numbers(tmp_path: Path) -> None:
    from platform_obs.provisioning import yamlsrc

    if yaml.__with_libyaml__:
        assert issubclass(yamlsrc._Loader, yaml.CSafeLoader)
    doc = yamlsrc.parse("a: 1\nb:\n  c: [1, 2]\n  d: x\n", "f.yaml")
    assert doc.lines["b.d"] == 4 and doc.lines["b.c"] == 3


# --- configs that can never work are refused, each with its message ------------------------------

REFUSALS = [
    # one unit convention: latencies carry their unit
    (
        {"alerts": {"high-latency": {"threshold": 250}}},
        "alerts.high-latency.threshold",
        "invalid value for latency parameter (got 250, expected a latency with its unit, "
        "e.g. 250ms or 0.8s)",
    ),
    (
        {"slos": {"latency": {"threshold": 0.25, "objective": 99}}},
        "slos.latency.threshold",
        "wrong type (got 0.25, expected a string matching",
    ),
    # a quantile never exceeds the largest finite bucket
    (
        {"alerts": {"high-latency": {"threshold": "12s"}}},
        "alerts.high-latency.threshold",
        "high-latency can never fire: http.server.request.duration's largest bucket is 10s",
    ),
    (
        {"slos": {"latency": {"threshold": "300ms", "objective": 99}}},
        "slos.latency.threshold",
        "latency threshold must be a histogram bucket boundary (for an exact SLI) (got '300ms', "
        "expected one of 5ms, 10ms",
    ),
    # 14.4 x (1 - 0.90) = 1.44: a ratio of 0..1 never exceeds it
    (
        {"slos": {"latency": {"threshold": "250ms", "objective": 90}}},
        "slos.latency.objective",
        "the page tier of slo-latency-burn-rate can never fire: its threshold 14.4 x budget 0.1 "
        "= 1.44 is not below 1, and an error ratio never exceeds 1 (got 90.0, expected an "
        "objective above 93.06%, or alerts.slo-latency-burn-rate.page: false)",
    ),
    (
        {"slos": {"window": "28d", "availability": {"objective": 92}}},
        "slos.availability.objective",
        "the page tier of slo-availability-burn-rate can never fire: its threshold 13.44 x "
        "budget 0.08 = 1.08",
    ),
    (
        {"alerts": {"high-error-ratio": {"threshold": 5}}},
        "alerts.high-error-ratio.threshold",
        "(got 5, expected a ratio between 0 and 1 (0.02), or a percentage (2%))",
    ),
    (
        {"alerts": {"high-error-ratio": {"threshold": "2 percent"}}},
        "alerts.high-error-ratio.threshold",
        "expected a ratio like 0.02 or a percentage like 2%",
    ),
    (
        {"alerts": {"saturation": {"memory_bytes": "2 gigs"}}},
        "alerts.saturation.memory_bytes",
        "expected bytes, or a size with its unit like 512MiB or 2GiB",
    ),
    (
        {"environments": ["production"], "paging_environments": ["prod"]},
        "paging_environments[0]",
        "not one of the service's environments (got 'prod', expected one of production)",
    ),
]


@pytest.mark.parametrize(("overrides", "path", "message"), REFUSALS)
def test_configs_that_cannot_work_are_refused(
    tmp_path: Path, overrides: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(ValidationFailed) as failed:
        build([write(tmp_path, config(**overrides))], run_promtool=False)
    texts = [str(p) for p in failed.value.problems if p.path == path]
    assert any(message in t for t in texts), [str(p) for p in failed.value.problems]


def test_the_page_tier_switched_off_is_not_refused(tmp_path: Path) -> None:
    slos = {"latency": {"threshold": "250ms", "objective": 90}}
    alerts = {"slo-latency-burn-rate": {"page": False}}
    rendered = build([write(tmp_path, config(slos=slos, alerts=alerts))], run_promtool=False)
    assert rendered.rule_groups


def test_units_are_accepted_and_normalised(tmp_path: Path) -> None:
    alerts = {
        "high-error-ratio": {"threshold": "2%"},
        "high-latency": {"threshold": "750ms"},
        "saturation": {"memory_bytes": "512MiB"},
    }
    rendered = build([write(tmp_path, config(alerts=alerts))], run_promtool=False)
    exprs = {
        r["alert"]: r["expr"] for r in rendered.prometheus_rules[0].document["groups"][0]["rules"]
    }
    assert exprs["HighErrorRatio"].endswith(") > 0.02")
    assert exprs["HighLatency"].endswith(") > 0.75")
    assert exprs["HighMemoryUsage"].endswith(f") > {512 * 2**20}")


def test_latency_between_bucket_boundaries_warns(tmp_path: Path) -> None:
    warnings: list[Any] = []
    alerts = {"high-latency": {"threshold": "300ms"}}
    build([write(tmp_path, config(alerts=alerts))], run_promtool=False, warnings=warnings)
    [warning] = [w for w in warnings if w.path == "alerts.high-latency.threshold"]
    assert "interpolated between 250ms and 500ms" in warning.message
