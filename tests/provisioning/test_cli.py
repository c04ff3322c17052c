"""The platform-obs CLI: commands, exit codes, secrecy, against the Grafana double."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from factories import rendered, service_folder_uid
from grafana_double import GrafanaDouble

from platform_obs import cli as cli_module
from platform_obs.provisioning import grafana as grafana_module
from platform_obs.provisioning.grafana import RetryPolicy
from platform_obs.provisioning.model import Problem, Rendered, ValidationFailed

SECRET = "glsa_cli-SECRET-3b8e0f-never-print"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "service.yaml"
    path.write_text("service: placeholder\n")
    return path


class FakeBuild:
    """Stands in for the render pipeline so CLI tests control what is rendered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.result: Rendered | Exception = rendered(["a", "b"])
        monkeypatch.setattr(cli_module, "_build", self)

    def __call__(self, paths: Any, templates_dir: Any, promtool: bool) -> Rendered:
        if isinstance(self.result, Exception):
            try:
                raise self.result
            except ValidationFailed as exc:  # same handling as the real _build
                for p in exc.problems:
                    print(f"error: {p}", file=sys.stderr)
                sys.exit(cli_module.EXIT_INVALID)
        return self.result


@pytest.fixture
def build(monkeypatch: pytest.MonkeyPatch) -> FakeBuild:
    return FakeBuild(monkeypatch)


def invoke(
    grafana: GrafanaDouble | None, *args: str, token: str | None = None, **env: str
) -> Result:
    environ = {"GRAFANA_URL": "", "GRAFANA_TOKEN": "", "GITHUB_SHA": "", "GITHUB_RUN_ID": ""}
    if grafana is not None:
        environ |= {"GRAFANA_URL": grafana.url, "GRAFANA_TOKEN": token or grafana.token}
    environ |= env
    return CliRunner().invoke(cli_module.cli, list(args), env=environ, catch_exceptions=False)


def test_help_documents_exit_codes() -> None:
    result = invoke(None, "--help")
    assert result.exit_code == 0
    for line in (
        "0  success",
        "1  invalid",
        "2  plan --detailed-exitcode",
        "3  Grafana",
        "4  apply",
    ):
        assert line in result.output
    for cmd in ("validate", "render", "plan", "apply"):
        assert cmd in result.output
    assert "--detailed-exitcode" in invoke(None, "plan", "--help").output


def test_usage_error_exits_1_not_2() -> None:
    assert invoke(None, "plan", "--no-such-option", "x").exit_code == 1
    assert invoke(None, "plan", "/no/such/file.yaml").exit_code == 1


def test_missing_grafana_env_is_a_usage_error(config: Path, build: FakeBuild) -> None:
    result = invoke(None, "plan", str(config))
    assert result.exit_code == 1
    assert "GRAFANA_URL is not set" in result.output


def test_plan_detailed_exitcode(grafana: GrafanaDouble, config: Path, build: FakeBuild) -> None:
    assert invoke(grafana, "plan", str(config)).exit_code == 0
    result = invoke(grafana, "plan", str(config), "--detailed-exitcode")
    assert result.exit_code == 2
    assert "Plan: 7 to create" in result.stdout
    assert grafana.writes() == []

    assert invoke(grafana, "apply", str(config), "--no-progress").exit_code == 0
    result = invoke(grafana, "plan", str(config), "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "No changes." in result.stdout


def test_plan_json_is_pure_json_on_stdout(
    grafana: GrafanaDouble, config: Path, build: FakeBuild
) -> None:
    result = invoke(grafana, "plan", str(config), "-o", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["summary"]["create"] == 7


def test_plan_markdown(grafana: GrafanaDouble, config: Path, build: FakeBuild) -> None:
    result = invoke(grafana, "plan", str(config), "--output", "markdown")
    assert result.stdout.startswith("### platform-obs plan")


def test_apply_twice_and_message_from_ci_env(
    grafana: GrafanaDouble, config: Path, build: FakeBuild
) -> None:
    first = invoke(grafana, "apply", str(config), GITHUB_SHA="cafe1234beef5678", GITHUB_RUN_ID="7")
    assert first.exit_code == 0, first.output
    assert "Apply: 7 created" in first.stdout
    assert "commit cafe1234beef, run 7" in grafana.dashboards["a-red"]["message"]

    grafana.reset_requests()
    second = invoke(grafana, "apply", str(config))
    assert second.exit_code == 0
    assert grafana.writes() == []
    assert "No changes." in second.stdout


def test_explicit_message(grafana: GrafanaDouble, config: Path, build: FakeBuild) -> None:
    assert invoke(grafana, "apply", str(config), "-m", "rollout 12").exit_code == 0
    assert grafana.dashboards["a-red"]["message"] == "rollout 12"


def test_dry_run_writes_nothing(grafana: GrafanaDouble, config: Path, build: FakeBuild) -> None:
    result = invoke(grafana, "apply", str(config), "--dry-run")
    assert result.exit_code == 0
    assert "Plan: 7 to create" in result.stdout
    assert grafana.writes() == []


def test_validation_failure_writes_nothing(
    grafana: GrafanaDouble, config: Path, build: FakeBuild
) -> None:
    build.result = ValidationFailed(
        [Problem(str(config), "alerts[0].threshold", "must be a number", "high", "a number", 3)]
    )
    result = invoke(grafana, "apply", str(config))
    assert result.exit_code == 1
    assert "service.yaml:3: alerts[0].threshold: must be a number" in result.output
    assert grafana.requests == []  # Grafana is not even contacted


def test_prune_over_limit_refuses_then_force(
    grafana: GrafanaDouble, config: Path, build: FakeBuild
) -> None:
    build.result = rendered(["a"], extra_dashboards={"a": ["x", "y"]})
    assert invoke(grafana, "apply", str(config)).exit_code == 0
    build.result = rendered(["a"])
    grafana.reset_requests()

    refused = invoke(grafana, "apply", str(config), "--prune", "--max-deletes", "1")
    assert refused.exit_code == 1
    assert "--max-deletes=1" in refused.output
    assert grafana.writes() == []

    forced = invoke(grafana, "apply", str(config), "--prune", "--max-deletes", "1", "--force")
    assert forced.exit_code == 0
    assert "2 deleted" in forced.stdout
    assert {"a-x", "a-y"}.isdisjoint(grafana.dashboards)


def test_partial_failure_exits_4(grafana: GrafanaDouble, config: Path, build: FakeBuild) -> None:
    grafana.inject(
        status=400,
        times=1,
        method="PUT",
        path_prefix=f"/api/v1/provisioning/folder/{service_folder_uid('a')}",
    )
    result = invoke(grafana, "apply", str(config))
    assert result.exit_code == 4
    assert "failed: rule_group po-svc-a/a-alerts" in result.output
    assert (service_folder_uid("b"), "b-alerts") in grafana.rule_groups


def test_401_exits_3_and_never_prints_the_token(
    grafana: GrafanaDouble, config: Path, build: FakeBuild
) -> None:
    for command in ("plan", "apply"):
        result = invoke(grafana, command, str(config), token=SECRET)
        assert result.exit_code == 3
        assert "GRAFANA_TOKEN" in result.output
        assert SECRET not in result.output
    assert grafana.writes() == []


def test_grafana_unreachable_exits_3(
    config: Path, build: FakeBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(grafana_module, "DEFAULT_RETRY", RetryPolicy(sleep=sleeps.append))
    with GrafanaDouble() as g:
        url = g.url  # stopped: nothing listens there any more
    env = {"GRAFANA_URL": url, "GRAFANA_TOKEN": SECRET, "GRAFANA_TIMEOUT": "0.5"}
    result = CliRunner().invoke(cli_module.cli, ["plan", str(config)], env=env)
    assert result.exit_code == 3
    assert "unreachable" in result.output
    assert SECRET not in result.output
    assert len(sleeps) == 4


def test_forbidden_exits_3_with_role_hint(config: Path, build: FakeBuild) -> None:
    with GrafanaDouble(viewer_token="viewer-token") as g:
        result = invoke(g, "apply", str(config), token="viewer-token")
    assert result.exit_code == 3
    assert "Editor or Admin" in result.output
    assert "1 failed" in result.output and "not attempted" in result.output


def test_importing_the_package_does_not_import_the_cli() -> None:
    code = (
        "import sys, platform_obs; "
        "bad = [m for m in ('click', 'platform_obs.cli', 'grafana_client', 'yaml') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "[]"


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "service-config" / "platform-obs.yaml"


def test_invalid_config_file_writes_nothing(grafana: GrafanaDouble, tmp_path: Path) -> None:
    bad = tmp_path / "platform-obs.yaml"
    bad.write_text(EXAMPLE.read_text().replace("threshold: 0.02", "threshold: lots"))
    validated = invoke(None, "validate", str(bad), "--no-promtool")
    assert validated.exit_code == 1
    assert "platform-obs.yaml" in validated.output and "lots" in validated.output

    applied = invoke(grafana, "apply", str(bad), "--no-promtool")
    assert applied.exit_code == 1
    assert grafana.requests == []


def test_real_config_apply_then_threshold_change(grafana: GrafanaDouble, tmp_path: Path) -> None:
    config = tmp_path / "platform-obs.yaml"
    config.write_text(EXAMPLE.read_text())
    first = invoke(grafana, "apply", str(config), "--no-promtool")
    assert first.exit_code == 0, first.output
    assert invoke(grafana, "plan", str(config), "--detailed-exitcode").exit_code == 0

    config.write_text(EXAMPLE.read_text().replace("threshold: 0.02", "threshold: 0.03"))
    assert invoke(grafana, "plan", str(config), "--detailed-exitcode").exit_code == 2
    grafana.reset_requests()
    second = invoke(grafana, "apply", str(config), "--no-promtool")
    assert second.exit_code == 0, second.output
    # The rule group, and the overview dashboard whose error-ratio panel draws the threshold.
    assert sorted((w.method, w.path) for w in grafana.writes()) == [
        ("POST", "/api/dashboards/db"),
        ("PUT", "/api/v1/provisioning/folder/po-checkout/rule-groups/checkout"),
    ]


def test_render_writes_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(None, "render", str(EXAMPLE), "--out", str(out), "--no-promtool")
    assert result.exit_code == 0, result.output
    assert any(out.rglob("*.json"))


def test_progress_bar_on_request(grafana: GrafanaDouble, config: Path, build: FakeBuild) -> None:
    build.result = rendered(5)
    result = invoke(grafana, "apply", str(config), "--progress")
    assert result.exit_code == 0, result.output
    assert "Apply: 16 created" in result.stdout


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_receiver_grafana_does_not_have_is_refused(command: str) -> None:
    # A fresh Grafana: only the default contact point. Grafana would accept the rules, and
    # their notifications would go nowhere.
    with GrafanaDouble() as g:
        result = invoke(g, command, str(EXAMPLE), "--no-promtool")
        assert result.exit_code == 1, result.output
        assert g.writes() == []
    assert "'payments-oncall'" in result.output and "'payments-infra'" in result.output
    assert "contact point does not exist in Grafana" in result.output
    assert "expected an existing contact point: grafana-default-email" in result.output
    assert "nothing was written" in result.output


def test_plan_parallelism_bounds_its_reads(config: Path, build: FakeBuild) -> None:
    """``--deep`` reads every dashboard: no more of them in flight than --parallelism."""
    build.result = rendered([f"svc{i}" for i in range(6)])
    with GrafanaDouble(latency=0.02) as g:
        assert invoke(g, "apply", str(config), "--no-progress").exit_code == 0
        in_flight = {}
        for parallelism in ("1", "3"):
            g.max_in_flight = 0
            result = invoke(g, "plan", str(config), "--deep", "--parallelism", parallelism)
            assert result.exit_code == 0, result.output
            in_flight[parallelism] = g.max_in_flight
        assert in_flight["1"] == 1, "one request at a time"
        assert in_flight["3"] in (2, 3), "reads run concurrently, never more than 3"
    assert invoke(None, "plan", str(config), "--parallelism", "0").exit_code == 1
