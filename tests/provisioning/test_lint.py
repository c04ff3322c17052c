"""The lint (Grafana dashboard-linter rules, pint's offline checks, the platform's own) over every
template rendered for several service configs; exclusions only with a written reason."""

from __future__ import annotations

import copy
import itertools
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fixtures_render import REPO, config, templates, write

from platform_obs.provisioning import lint
from platform_obs.provisioning.model import Rendered
from platform_obs.provisioning.pipeline import RenderResult, render_all
from platform_obs.provisioning.spec import load_specs

EXCLUSIONS = lint.load_exclusions([REPO / "dashboards" / ".lint", REPO / "alerts" / ".lint"])
SLOS = {
    "availability": {"objective": 99.9},
    "latency": {"threshold": "250ms", "objective": 99},
}
#: Tiers 1-3, 28d and 30d SLO periods, one and several environments, with and without a
#: namespace; plus services without SLOs and with a latency SLO only.
MATRIX = [
    {
        "tier": tier,
        "slos": {**SLOS, "window": window},
        "environments": envs,
        **({"namespace": "shop"} if len(envs) > 1 else {}),
    }
    for tier, window, envs in itertools.product(
        (1, 2, 3), ("28d", "30d"), (["production"], ["production", "staging", "canary"])
    )
] + [
    {"tier": 2},
    {"tier": 3, "environments": ["staging"]},
    {"slos": {"latency": {"threshold": "500ms", "objective": 99.5}}},
]


def panel_keys() -> dict[str, dict[int, str]]:
    return {
        tid: {pid: key for key, pid in t.panel_ids().items()}
        for tid, t in templates().dashboards.items()
    }


@cache
def _rendered(index: int, tmp: str) -> RenderResult:
    path = write(Path(tmp), config(**MATRIX[index]), name=f"svc-{index}.yaml")
    return render_all(load_specs([path]), templates())


@pytest.mark.parametrize("index", range(len(MATRIX)), ids=[str(m) for m in MATRIX])
def test_every_template_passes_the_lint(index: int, tmp_path: Path) -> None:
    result = _rendered(index, str(tmp_path))
    assert result.rendered.dashboards and result.rendered.rule_groups
    violations = lint.lint_all(result.rendered, result.definitions, panel_keys())
    left = lint.unexcluded(violations, EXCLUSIONS)
    assert not left, "\n".join(map(str, left))


def test_every_template_alert_is_checked_against_its_panel(tmp_path: Path) -> None:
    result = _rendered(MATRIX.index({"tier": 2}), str(tmp_path))  # no SLOs
    full = _rendered(0, str(tmp_path))
    checked = [
        d
        for r in (result, full)
        for d in r.definitions
        if d.template and (d.op is not None or "slo:sli_error" in d.expr)
    ]
    # every rule with a value or a burn rate links to a panel; absence has none to plot
    assert {d.alert for d in checked} >= {
        "HighErrorRatio",
        "HighLatency",
        "HighMemoryUsage",
        "HighCpuUsage",
        "TrafficDrop",
        "AvailabilityErrorBudgetBurnPage",
        "AvailabilityErrorBudgetBurnTicket",
        "LatencyErrorBudgetBurnPage",
        "LatencyErrorBudgetBurnTicket",
    }
    assert all(d.dashboard_uid and d.panel_id for d in checked)


def test_exclusions_need_a_reason_and_a_known_rule(tmp_path: Path) -> None:
    assert EXCLUSIONS and all(e.reason for e in EXCLUSIONS)
    silent = write(tmp_path, "exclusions:\n  panel-units-rule: {}\n", name=".lint")
    with pytest.raises(ValueError, match="needs a written reason"):
        lint.load_exclusions([silent])
    unknown = write(tmp_path, "exclusions:\n  no-such-rule: {reason: x}\n", name=".lint")
    with pytest.raises(ValueError, match="unknown lint rule"):
        lint.load_exclusions([unknown])


# --- the lint catches what the issue saw ----------------------------------------------------------


def _example(tmp_path: Path) -> RenderResult:
    return _rendered(1, str(tmp_path))  # tier 1, 28d, three environments


def _rules(result: RenderResult, *names: str) -> list[str]:
    return sorted(
        v.rule
        for v in lint.lint_all(result.rendered, result.definitions, panel_keys())
        if v.rule in names
    )


def _panel(rendered: Rendered, template: str, key: str) -> dict[str, Any]:
    pid = templates().dashboards[template].panel_ids()[key]
    board = next(b for b in rendered.dashboards if b.uid.endswith(f"-{template}"))
    return next(p for p in board.model["panels"] if p.get("id") == pid)


def test_alert_linked_to_a_panel_that_shows_something_else(tmp_path: Path) -> None:
    result = copy.deepcopy(_example(tmp_path))
    memory = _panel(result.rendered, "runtime", "memory")
    # what the memory panel used to plot: the sum of all processes, not the alert's max
    memory["targets"][0]["expr"] = memory["targets"][0]["expr"].replace("max by", "sum by")
    error = _panel(result.rendered, "overview", "error-ratio")
    error["fieldConfig"]["defaults"].pop("thresholds")
    burn = _panel(result.rendered, "slo", "availability-burn-rate-page")
    burn["targets"] = burn["targets"][:1]
    violations = [
        v for v in lint.lint_alerts(result.rendered, result.definitions) if v.rule == "alert-panel"
    ]
    messages = "\n".join(map(str, violations))
    assert "HighMemoryUsage" in messages or "saturation" in messages
    assert "does not plot the alert's expression" in messages
    assert "does not draw the threshold" in messages
    assert "does not plot ['slo:sli_error:ratio_rate" in messages
    assert len(violations) == 3


def test_grafana_title_differing_from_the_alert_name(tmp_path: Path) -> None:
    result = copy.deepcopy(_example(tmp_path))
    rule = result.rendered.rule_groups[0].rules[0]
    rule["title"] = "High error ratio"
    [violation] = [
        v for v in lint.lint_alerts(result.rendered, result.definitions) if v.rule == "alert-names"
    ]
    assert "'High error ratio' is not the alert name 'HighErrorRatio'" in violation.message


def _rule_doc(expr: str, **labels: str) -> dict[str, Any]:
    return {
        "groups": [
            {
                "name": "g",
                "rules": [
                    {
                        "alert": "A",
                        "expr": expr,
                        "labels": {"severity": "warning", "team": "t", "service": "s", **labels},
                        "annotations": {
                            "summary": "in {{ $labels.deployment_environment_name }}",
                            "description": "d",
                            "runbook_url": "https://x",
                        },
                    }
                ],
            }
        ]
    }


@pytest.mark.parametrize(
    ("expr", "rule"),
    [
        # a single environment rendered as a regex
        ('rate(x_total{deployment_environment_name=~"production"}[5m]) > 1', "promql/regexp"),
        # environments blended: the summary's label is gone
        ("sum(rate(x_total[5m])) > 1", "alerts/template"),
        # no comparison: fires on every series, 0 included
        ("sum by (deployment_environment_name) (rate(x_total[5m]))", "alerts/comparison"),
        # rate of a gauge
        ("rate(process_memory_usage_bytes[5m]) > 1", "promql/rate"),
        # a counter compared raw
        ("http_server_request_duration_seconds_count > 1", "promql/counter"),
        # 30 days of raw samples
        ("sum by (deployment_environment_name) (rate(x_total[30d])) > 1", "promql/range_query"),
        # per-route errors divided by per-environment totals never match
        (
            "sum by (deployment_environment_name, http_route) (rate(x_total[5m]))"
            " / sum by (deployment_environment_name) (rate(y_total[5m])) > 0.1",
            "promql/vector_matching",
        ),
    ],
)
def test_pint_checks_catch(expr: str, rule: str) -> None:
    assert rule in {v.rule for v in lint.lint_rule_file("s", _rule_doc(expr))}


def test_rule_labels_and_names() -> None:
    doc = _rule_doc("sum by (deployment_environment_name) (rate(x_total[5m])) > 1", severity="page")
    doc["groups"][0]["rules"].append({"record": "errors_ratio", "expr": "vector(1)"})
    found = {v.rule for v in lint.lint_rule_file("s", doc)}
    assert {"rule/label", "rule/name"} <= found


def test_dashboard_rules_catch(tmp_path: Path) -> None:
    result = copy.deepcopy(_example(tmp_path))
    board = next(b for b in result.rendered.dashboards if b.uid.endswith("-slo")).model
    stat = _panel(result.rendered, "slo", "availability-budget")
    stat["fieldConfig"]["defaults"].pop("thresholds")  # an exhausted budget would show green
    stat.pop("description")
    rate = _panel(result.rendered, "overview", "request-rate-by-route")
    rate["targets"][0]["expr"] = (
        'sum(rate(http_server_request_duration_seconds_count{service_name="$service"}[5m]))'
    )
    rate["fieldConfig"]["defaults"]["unit"] = "widgets"
    overview = next(b for b in result.rendered.dashboards if b.uid.endswith("-overview")).model
    overview["graphTooltip"] = 0
    found = {
        v.rule
        for b, t in ((board, "slo"), (overview, "overview"))
        for v in lint.lint_dashboard(b, t, panel_keys()[t])
    }
    assert {
        "panel-stat-thresholds-rule",
        "panel-title-description-rule",
        "target-environment-split-rule",
        "target-rate-interval-rule",
        "panel-units-rule",
        "dashboard-shared-crosshair-rule",
    } <= found
