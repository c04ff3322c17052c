"""Platform policy: the packaged rules pass a compliant config, and each rule fails with its id,
description, file, key, line and fix; policy files are checked; other policy files are picked."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from fixtures_render import EXAMPLE, REPO, SLOS, config, write

from platform_obs import cli as cli_module
from platform_obs.provisioning import policy
from platform_obs.provisioning.model import Problem, ValidationFailed
from platform_obs.provisioning.pipeline import build

PACKAGED = yaml.safe_load((REPO / "policies" / "platform.yaml").read_text())
RULES = {r["id"]: r for r in PACKAGED["rules"]}
RUNBOOKS = "https://runbooks.acme.test/payments"


def compliant(**overrides: Any) -> dict[str, Any]:
    return config(**{"tier": 1, "slos": SLOS, "runbook_base_url": RUNBOOKS, **overrides})


def problems(path: Path, **kwargs: Any) -> list[Problem]:
    with pytest.raises(ValidationFailed) as info:
        build([path], run_promtool=False, **kwargs)
    return info.value.problems


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_packaged_policy_is_the_shipped_file() -> None:
    assert policy.packaged_policy().read_text() == (REPO / "policies" / "platform.yaml").read_text()
    loaded, found = policy.load_policy(policy.packaged_policy())
    assert found == []
    assert [r.id for r in loaded.rules] == list(RULES)


@pytest.mark.parametrize("data", [compliant(), compliant(tier=2), compliant(tier=3, slos=None)])
def test_compliant_configs_pass_without_warnings(tmp_path: Path, data: dict[str, Any]) -> None:
    warnings: list[Problem] = []
    rendered = build([write(tmp_path, data)], run_promtool=False, warnings=warnings)
    assert rendered.services == ["checkout"]
    assert warnings == []


def test_the_example_config_passes() -> None:
    warnings: list[Problem] = []
    build([EXAMPLE], run_promtool=False, warnings=warnings)
    assert warnings == []


SLO_98 = {"window": "30d", "availability": {"objective": 98}}
# rule id -> (config, key path the message names, text on the line it must point at)
VIOLATIONS: dict[str, tuple[dict[str, Any], str, str]] = {
    "service-name": (compliant(service="check_out"), "service", "service: check_out"),
    "ownership": (compliant(receiver="TODO"), "receiver", "receiver: TODO"),
    "tier1-availability-slo": (
        compliant(slos={"window": "30d", "latency": SLOS["latency"]}),
        "slos.availability.objective",
        "slos:",
    ),
    "tier1-paging": (
        compliant(alerts={"slo-availability-burn-rate": {"page": False}}),
        "alerts.slo-availability-burn-rate.page",
        "page: false",
    ),
    "tier1-min-objective": (
        compliant(slos={**SLOS, "availability": {"objective": 99.5}}),
        "slos.availability.objective",
        "objective: 99.5",
    ),
    "tier2-min-objective": (compliant(tier=2, slos=SLO_98), "slos.availability.objective", "98"),
}


def test_every_packaged_rule_has_a_violation_case() -> None:
    assert set(VIOLATIONS) | {"runbooks"} == set(RULES)


@pytest.mark.parametrize("rule_id", sorted(VIOLATIONS))
def test_each_rule_fails_with_id_file_key_line_and_fix(tmp_path: Path, rule_id: str) -> None:
    data, key, line_text = VIOLATIONS[rule_id]
    path = write(tmp_path, data)
    found = [p for p in problems(path) if f"policy rule {rule_id!r}" in p.message]
    assert len(found) == 1, problems(path)
    [problem] = found
    rule = RULES[rule_id]
    assert problem.file == str(path)
    assert problem.path == key
    assert problem.line == line_of(path, line_text)
    assert rule["description"] in problem.message
    assert f"Fix: {rule['fix']}" in problem.message
    text = str(problem)
    assert text.startswith(f"{path}:{problem.line}: {key}: error from policy rule {rule_id!r}")


def test_only_the_broken_rule_fires(tmp_path: Path) -> None:
    path = write(tmp_path, compliant(tier=2, slos=SLO_98))
    fired = {p.message.split("'")[1] for p in problems(path)}
    assert fired == {"tier2-min-objective"}


def test_tier1_without_availability_slo_also_loses_paging(tmp_path: Path) -> None:
    """The burn-rate template needs the SLO, so it is off, and the message says so."""
    path = write(tmp_path, compliant(slos=None))
    by_rule = {p.message.split("'")[1]: p for p in problems(path)}
    assert set(by_rule) == {"tier1-availability-slo", "tier1-paging"}
    paging = by_rule["tier1-paging"].message
    assert "alerts.slo-availability-burn-rate is off" in paging
    # Nothing in the file to point at but the key that made the rule apply.
    assert by_rule["tier1-paging"].line == line_of(path, "tier: 1")


def test_ownership_team_placeholder(tmp_path: Path) -> None:
    path = write(tmp_path, compliant(team="tbd"))
    [problem] = problems(path)
    assert problem.path == "team" and "'tbd', which is not allowed" in problem.message


def test_warning_rule_does_not_fail(tmp_path: Path) -> None:
    path = write(tmp_path, compliant(runbook_base_url=None))
    warnings: list[Problem] = []
    build([path], run_promtool=False, warnings=warnings)
    [warning] = warnings
    assert "warning from policy rule 'runbooks'" in warning.message
    assert warning.path == "runbook_base_url" and warning.line is None


def test_cli_validate_prints_policy_errors_and_warnings(tmp_path: Path) -> None:
    bad = write(tmp_path, compliant(service="check_out", runbook_base_url=None), "bad.yaml")
    result = CliRunner().invoke(cli_module.cli, ["validate", str(bad), "--no-promtool"])
    assert result.exit_code == 1
    assert f"error: {bad}:3: service: error from policy rule 'service-name'" in result.output
    assert "warning: " in result.output and "policy rule 'runbooks'" in result.output


# --- other policy files ---------------------------------------------------------------------------

TEAMS_POLICY = """\
apiVersion: platform-obs/v1
kind: Policy
rules:
  - id: known-team
    description: The owning team is one the platform knows
    require:
      team: {in: [search, platform]}
    fix: Use a registered team name.
"""


def test_policy_option_replaces_the_packaged_policy(tmp_path: Path) -> None:
    policy_file = tmp_path / "teams.yaml"
    policy_file.write_text(TEAMS_POLICY)
    cfg = write(tmp_path, config(tier=1))  # breaks tier-1 rules of the packaged policy only
    result = CliRunner().invoke(
        cli_module.cli, ["validate", str(cfg), "--policy", str(policy_file), "--no-promtool"]
    )
    assert result.exit_code == 1
    assert "policy rule 'known-team' (The owning team is one the platform knows)" in result.output
    assert "'payments', must be one of 'search', 'platform'" in result.output
    assert "Fix: Use a registered team name." in result.output
    assert "tier1" not in result.output


def test_templates_dir_policy_is_used(tmp_path: Path) -> None:
    tdir = tmp_path / "platform"
    for kind in ("dashboards", "alerts"):
        shutil.copytree(REPO / kind, tdir / kind)
    cfg = write(tmp_path, config(tier=1))
    # Without a policies/ folder the packaged policy still applies: guardrails are not lost.
    assert {p.message.split("'")[1] for p in problems(cfg, templates_dir=tdir)} == {
        "tier1-availability-slo",
        "tier1-paging",
    }
    (tdir / "policies").mkdir()
    (tdir / "policies" / "platform.yaml").write_text(
        "apiVersion: platform-obs/v1\nkind: Policy\nrules: []\n"
    )
    assert build([cfg], tdir, run_promtool=False).services == ["checkout"]


BAD_POLICIES = [
    ("  - id: a\n    description: d\n    require: {team: {like: x}}\n    fix: f\n", "like", 6),
    (
        "  - id: a\n    description: d\n    require: {team: {matches: '('}}\n    fix: f\n",
        "regular",
        6,
    ),
    (
        "  - id: a\n    description: d\n    require: {tier: {min: high}}\n    fix: f\n",
        "wrong type",
        6,
    ),
    ("  - id: a\n    description: d\n    require: {team: x}\n", "fix", 4),
    ("  - id: a\n    description: d\n    fix: f\n", "require", 4),
    (
        "  - {id: a, description: d, require: {team: x}, fix: f}\n"
        "  - {id: a, description: e, require: {team: y}, fix: f}\n",
        "duplicate rule id",
        5,
    ),
    (
        "  - id: a\n    description: d\n    require: {team: x}\n    fix: f\n    level: 1\n",
        "level",
        8,
    ),
]


@pytest.mark.parametrize(("rules", "words", "line"), BAD_POLICIES)
def test_policy_file_mistakes_name_file_key_and_line(
    tmp_path: Path, rules: str, words: str, line: int
) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(f"apiVersion: platform-obs/v1\nkind: Policy\nrules:\n{rules}")
    found = problems(write(tmp_path, compliant()), policy_file=policy_file)
    assert found, "a broken policy must fail validation"
    assert all(p.file == str(policy_file) for p in found)
    assert any(words in str(p) and p.line == line for p in found), [str(p) for p in found]


# --- the condition language -----------------------------------------------------------------------

DOC = {"tier": 1, "team": "payments", "slos": {"availability": {"objective": 99.9}}, "on": True}
CONDITIONS = [
    ("tier", {"equals": 1}, True),
    ("tier", 2, False),
    ("on", {"equals": 1}, False),  # YAML true is not 1
    ("team", {"not_equals": "payments"}, False),
    ("team", {"in": ["search", "payments"]}, True),
    ("team", {"not_in": ["payments"]}, False),
    ("team", {"matches": "^pay"}, True),
    ("team", {"not_matches": "^pay"}, False),
    ("slos.availability.objective", {"min": 99.9, "max": 99.99}, True),
    ("slos.availability.objective", {"min": 99.95}, False),
    ("slos.availability.objective", {"max": 99}, False),
    ("team", {"min": 1}, False),
    ("slos.latency", {"exists": False}, True),
    ("slos.latency.objective", {"min": 1}, False),
    ("tier", {"exists": False}, False),
]


@pytest.mark.parametrize(("path", "ops", "holds"), CONDITIONS)
def test_conditions(path: str, ops: Any, holds: bool) -> None:
    doc = policy.parse(
        yaml.safe_dump(
            {
                "apiVersion": "platform-obs/v1",
                "kind": "Policy",
                "rules": [{"id": "r", "description": "d", "fix": "f", "require": {path: ops}}],
            }
        ),
        "p.yaml",
    )
    parsed, found = policy.parse_policy(doc)
    assert found == []
    [cond] = parsed.rules[0].require
    assert (cond.failure(policy.lookup(DOC, path)) is None) is holds


def test_policies_ship_in_the_package_like_the_templates() -> None:
    link = REPO / "platform_obs" / "templates" / "policies"
    assert link.is_symlink() and link.resolve() == (REPO / "policies").resolve()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"templates/**/*"' in pyproject  # package-data glob that takes the symlinked folder
