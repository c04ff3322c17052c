"""Every alert template passes `promtool check rules`, and its own generated `promtool test rules`
cases show it fires on synthetic bad series and stays silent on healthy ones."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures_render import config, templates, write

from platform_obs.provisioning.pipeline import build
from platform_obs.provisioning.render.definitions import template_alerts
from platform_obs.provisioning.render.prometheus_rules import prometheus_rule
from platform_obs.provisioning.rule_tests import build_cases, run_case, synthetic_spec

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")
TEMPLATE_IDS = sorted(templates().alerts)
CASES = [(tid, i) for tid in TEMPLATE_IDS for i in range(len(templates().alerts[tid].tests))]


def test_there_are_templates_and_cases() -> None:
    assert {
        "high-error-ratio",
        "high-latency",
        "slo-availability-burn-rate",
        "traffic-drop",
        "saturation",
    } <= set(TEMPLATE_IDS)
    assert len(CASES) >= 2 * len(TEMPLATE_IDS)


@pytest.mark.parametrize("template_id", TEMPLATE_IDS)
def test_template_has_a_firing_and_a_silent_case(template_id: str) -> None:
    tests = templates().alerts[template_id].tests
    assert any(case.get("firing") for case in tests), f"{template_id}: no case that fires"
    assert any(not case.get("firing") for case in tests), (
        f"{template_id}: no case that stays silent"
    )
    fired = {
        f["rule"] if isinstance(f, dict) else f for case in tests for f in case.get("firing") or []
    }
    assert fired == {r.id for r in templates().alerts[template_id].rules}, (
        "every rule must be shown to fire"
    )


@needs_promtool
@pytest.mark.parametrize("template_id", TEMPLATE_IDS)
def test_promtool_check_rules(template_id: str, tmp_path: Path) -> None:
    template = templates().alerts[template_id]
    spec = synthetic_spec(template, {})
    rules = [prometheus_rule(d) for d in template_alerts(spec, template, templates())]
    assert rules
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": template_id, "rules": rules}]}))
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


@needs_promtool
@pytest.mark.parametrize(("template_id", "index"), CASES, ids=[f"{t}-{i}" for t, i in CASES])
def test_promtool_unit_case(template_id: str, index: int) -> None:
    case = build_cases(templates().alerts[template_id], templates())[index]
    ok, output = run_case(case, PROMTOOL or "promtool")
    assert ok, f"{template_id}: {case.name}\n{output}"


@needs_promtool
@pytest.mark.parametrize("template_id", TEMPLATE_IDS)
def test_generated_cases_can_fail(template_id: str) -> None:
    """Flip each firing expectation to silence: promtool must now report a failure."""
    for case in build_cases(templates().alerts[template_id], templates()):
        if not case.firing:
            continue
        flipped = copy.deepcopy(case)
        for check in flipped.test["tests"][0]["alert_rule_test"]:
            check["exp_alerts"] = []
        ok, _ = run_case(flipped, PROMTOOL or "promtool")
        assert not ok, f"{template_id}: {case.name} passes even when expecting silence"


# --- per environment: severity, absence and the recordings, on the rendered rule files -----------

TWO_ENVS = {
    "environments": ["production", "staging"],
    "slos": {
        "window": "30d",
        "availability": {"objective": 99.9},
        "latency": {"threshold": "500ms", "objective": 99},
    },
}
COUNT = "http_server_request_duration_seconds_count"


def _series(env: str, code: str, values: str) -> dict[str, str]:
    labels = f'service_name="checkout", deployment_environment_name="{env}"'
    return {"series": f'{COUNT}{{{labels}, http_response_status_code="{code}"}}', "values": values}


def _promtool_test(
    tmp_path: Path, series: list[dict[str, str]], checks: list[dict[str, Any]], **extra: Any
) -> tuple[bool, str]:
    rendered = build([write(tmp_path, config(**{**TWO_ENVS, **extra}))], run_promtool=False)
    files = []
    for rules in rendered.prometheus_rules:
        for group in rules.document["groups"]:
            for rule in group["rules"]:
                rule.pop("annotations", None)  # text: checked by `promtool check rules`
        (tmp_path / rules.file_name).write_text(yaml.safe_dump(rules.document), encoding="utf-8")
        files.append(rules.file_name)
    test = {
        "rule_files": sorted(files, key=lambda f: ".slo." not in f),  # recordings first
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, **check} for check in checks],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test), encoding="utf-8")
    result = subprocess.run(
        [PROMTOOL or "promtool", "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0, result.stdout + result.stderr


def _labels(alert: str, env: str, severity: str, **extra: str) -> dict[str, str]:
    return {
        "alertname": alert,
        "service_name": "checkout",
        "deployment_environment_name": env,
        "service": "checkout",
        "team": "payments",
        "managed_by": "platform-obs",
        "receiver": "payments-oncall",
        "severity": severity,
        **extra,
    }


@needs_promtool
def test_staging_burns_its_budget_without_paging(tmp_path: Path) -> None:
    series = [
        _series("production", "200", "0+100x120"),
        _series("staging", "200", "0+80x120"),
        _series("staging", "500", "0+20x120"),
    ]
    page = {"slo": "availability", "tier": "page"}
    checks = [
        {
            "alert_rule_test": [
                {
                    "eval_time": "100m",
                    "alertname": "AvailabilityErrorBudgetBurnPage",
                    # staging is not a paging environment: the page tier arrives as a warning
                    "exp_alerts": [
                        {
                            "exp_labels": _labels(
                                "AvailabilityErrorBudgetBurnPage", "staging", "warning", **page
                            )
                        }
                    ],
                },
                {
                    "eval_time": "100m",
                    "alertname": "HighErrorRatio",
                    "exp_alerts": [{"exp_labels": _labels("HighErrorRatio", "staging", "warning")}],
                },
            ],
            # the recorded SLI per environment: 0 (not empty) where nothing fails
            "promql_expr_test": [
                {
                    "expr": 'slo:sli_error:ratio_rate1h{slo="availability"}',
                    "eval_time": "100m",
                    "exp_samples": [
                        {
                            "labels": 'slo:sli_error:ratio_rate1h{service_name="checkout", '
                            'deployment_environment_name="production", slo="availability"}',
                            "value": 0,
                        },
                        {
                            "labels": 'slo:sli_error:ratio_rate1h{service_name="checkout", '
                            'deployment_environment_name="staging", slo="availability"}',
                            "value": 0.2,
                        },
                    ],
                }
            ],
        }
    ]
    ok, output = _promtool_test(tmp_path, series, checks)
    assert ok, output


@needs_promtool
def test_production_pages_and_paging_environments_are_configurable(tmp_path: Path) -> None:
    series = [_series("production", "200", "0+80x120"), _series("production", "500", "0+20x120")]
    page = {"slo": "availability", "tier": "page"}
    alert = "AvailabilityErrorBudgetBurnPage"
    checks = [
        {
            "alert_rule_test": [
                {
                    "eval_time": "100m",
                    "alertname": alert,
                    "exp_alerts": [
                        {"exp_labels": _labels(alert, "production", "critical", **page)}
                    ],
                }
            ]
        }
    ]
    (tmp_path / "a").mkdir()
    ok, output = _promtool_test(tmp_path / "a", series, checks)
    assert ok, output
    # nothing pages when paging_environments is empty
    checks[0]["alert_rule_test"][0]["exp_alerts"][0]["exp_labels"]["severity"] = "warning"
    (tmp_path / "b").mkdir()
    ok, output = _promtool_test(tmp_path / "b", series, checks, paging_environments=[])
    assert ok, output


@needs_promtool
def test_one_environment_going_dark_fires_absence_for_it_alone(tmp_path: Path) -> None:
    series = [_series("production", "200", "0+60x40"), _series("staging", "200", "0+60x10")]
    checks = [
        {
            "alert_rule_test": [
                {
                    "eval_time": "30m",
                    "alertname": "RequestMetricsAbsent",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                **_labels("RequestMetricsAbsent", "staging", "warning"),
                            }
                        }
                    ],
                }
            ]
        }
    ]
    ok, output = _promtool_test(tmp_path, series, checks)
    assert ok, output
