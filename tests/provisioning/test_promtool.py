"""Every alert template passes `promtool check rules`, and its own generated `promtool test rules`
cases show it fires on synthetic bad series and stays silent on healthy ones."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from fixtures_render import templates

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
