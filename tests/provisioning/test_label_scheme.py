"""The platform's label scheme (``platform.metric_labels`` in the policy): promoted or target_info.

The end-to-end proof on a real Prometheus 3 without promotion is the golden path's
``prometheus3-target-info`` run (tests/e2e); these tests pin the rendering and the setting.
"""

from __future__ import annotations

from pathlib import Path

import promql_parser
import pytest
import yaml

from platform_obs import conventions
from platform_obs.provisioning.model import ValidationFailed
from platform_obs.provisioning.pipeline import build
from platform_obs.provisioning.render import label_scheme

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "service-config"
ENV = conventions.prom_label(conventions.DEPLOYMENT_ENVIRONMENT)
SERVICE = conventions.prom_label(conventions.SERVICE_NAME)
JOIN = label_scheme.Join('job="shop/checkout"', f'{ENV}=~"production"')


def _policy(tmp_path: Path, scheme: object) -> Path:
    doc = yaml.safe_load((ROOT / "policies" / "platform.yaml").read_text(encoding="utf-8"))
    doc["platform"] = {"metric_labels": scheme}
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _exprs(tmp_path: Path, scheme: str) -> list[str]:
    rendered = build([EXAMPLE], policy_file=_policy(tmp_path, scheme))
    rules = [
        r["expr"]
        for f in rendered.prometheus_rules
        for g in f.document["groups"]
        for r in g["rules"]
    ]
    panels = [
        t["expr"]
        for board in rendered.dashboards
        for panel in board.model["panels"]
        for t in panel.get("targets", [])
        if t.get("datasource", {}).get("type") == "prometheus"
    ]
    return rules + panels


def test_range_functions_and_instant_selectors_are_joined_with_target_info() -> None:
    expr = (
        'sum by (le) (rate(x_bucket{job="shop/checkout", le="0.25"}[5m]))'
        ' / sum(y{job="shop/checkout"})'
    )
    got = label_scheme.apply(expr, JOIN)
    clause = JOIN.clause()
    assert got == (
        f'sum by (le) ((rate(x_bucket{{job="shop/checkout", le="0.25"}}[5m]) {clause}))'
        f' / sum((y{{job="shop/checkout"}} {clause}))'
    )
    promql_parser.parse(got)  # still PromQL


def test_absent_and_strings_are_left_alone() -> None:
    expr = 'absent_over_time(x{job="shop/checkout"}[10m]) or label_replace(vector(1), "a", "{job=\\"shop/checkout\\"}", "", "")'
    assert label_scheme.apply(expr, JOIN) == expr


def test_default_scheme_renders_promoted_labels_and_no_join(tmp_path: Path) -> None:
    exprs = _exprs(tmp_path, "promoted")
    service_exprs = [e for e in exprs if "http_server" in e or "process_" in e]
    assert service_exprs and all(f'{SERVICE}="' in e or SERVICE in e for e in service_exprs)
    assert not any("target_info" in e for e in exprs)


def test_target_info_scheme_selects_by_job_and_joins_for_the_environment(tmp_path: Path) -> None:
    exprs = _exprs(tmp_path, "target_info")
    ours = [e for e in exprs if "payment_provider" not in e]  # custom alerts are the owner's PromQL
    assert ours
    for expr in ours:
        assert f"{SERVICE}=" not in expr, expr  # no promoted label is selected on
        # Recorded series (slo:...) were joined by their recording rule; absent* cannot join.
        if "absent" not in expr and "slo:" not in expr:
            assert "group_left" in expr and "target_info{" in expr, expr
        promql_parser.parse(
            expr.replace("$__rate_interval", "5m").replace("$service", "x").replace("$env", "y")
        )
    # build() ran promtool check rules on the joined rule file already; the job is the OTLP one.
    assert any('job="checkout"' in e for e in ours)


def test_unknown_scheme_is_a_policy_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as exc:
        build([EXAMPLE], policy_file=_policy(tmp_path, "resource_to_telemetry"))
    text = str(exc.value)
    assert "platform.metric_labels" in text and "resource_to_telemetry" in text
    assert "promoted or target_info" in text
