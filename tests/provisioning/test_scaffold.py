"""``platform-obs scaffold``: writes a config that validates, never clobbers, asks or fails clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from platform_obs import cli as cli_module
from platform_obs.provisioning.pipeline import build
from platform_obs.provisioning.templates import load_templates

FLAGS = ["--team", "payments", "--tier", "1", "--receiver", "payments-oncall"]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh service repository with a pyproject.toml, as the working directory."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "Checkout_API"\nversion = "1"\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def scaffold(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli_module.cli, ["scaffold", *args], input=input)


def validate(path: Path) -> Result:
    return CliRunner().invoke(cli_module.cli, ["validate", str(path), "--no-promtool"])


@pytest.mark.parametrize("tier", ["1", "2", "3"])
def test_fresh_repo_gets_a_config_that_validates(repo: Path, tier: str) -> None:
    result = scaffold("--team", "payments", "--tier", tier, "--receiver", "payments-oncall")
    assert result.exit_code == 0, result.output
    path = repo / "platform-obs.yaml"
    data = yaml.safe_load(path.read_text())
    # Name from [project].name, normalised like a distribution name.
    assert data["service"] == "checkout-api"
    assert (data["team"], data["tier"], data["receiver"]) == (
        "payments",
        int(tier),
        "payments-oncall",
    )
    assert data["slos"]["availability"]["objective"] >= 99
    assert validate(path).exit_code == 0
    assert 'platform_obs.init(service_name="checkout-api")' in result.output
    for step in ("platform-obs validate", "platform-obs plan", "platform-obs apply", "doctor"):
        assert step in result.output


def test_comments_show_this_tiers_alert_defaults_from_the_templates(repo: Path) -> None:
    assert scaffold("--team", "payments", "--tier", "3", "--receiver", "r-oncall").exit_code == 0
    text = (repo / "platform-obs.yaml").read_text()
    burn = load_templates().alerts["slo-availability-burn-rate"].parameters["page"]
    assert burn.default_for(3) is False
    assert "#   slo-availability-burn-rate: {page: false," in text
    assert "#   high-error-ratio: {threshold: 0.05, window: 5m, for: 5m, severity: warning}" in text
    # Uncommenting the alerts block as documented gives a valid config with the same defaults.
    head, _, block = text.partition("# alerts:\n")
    uncommented = head + "alerts:\n" + block.replace("#   ", "  ")
    (repo / "edited.yaml").write_text(uncommented)
    assert build([repo / "edited.yaml"], run_promtool=False).services == ["checkout-api"]


def test_never_overwrites_without_force(repo: Path) -> None:
    path = repo / "platform-obs.yaml"
    path.write_text("mine\n")
    result = scaffold(*FLAGS)
    assert result.exit_code == 1
    assert "platform-obs.yaml already exists" in result.output and "--force" in result.output
    assert path.read_text() == "mine\n"

    forced = scaffold(*FLAGS, "--force")
    assert forced.exit_code == 0, forced.output
    assert yaml.safe_load(path.read_text())["team"] == "payments"


def test_non_interactive_names_every_missing_flag(repo: Path) -> None:
    result = scaffold("--yes", "--team", "payments")
    assert result.exit_code == 1
    assert "missing --tier, --receiver (--non-interactive" in result.output
    assert not (repo / "platform-obs.yaml").exists()


def test_stdin_not_a_terminal_means_non_interactive(tmp_path: Path) -> None:
    """The real console script with stdin from /dev/null: no prompt, a clear error."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "platform-obs"), "scaffold", "--team", "payments"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "missing --service, --tier, --receiver (stdin is not a terminal" in result.stderr
    assert result.stdout == ""


def test_without_pyproject_the_service_flag_is_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert "missing --service" in scaffold(*FLAGS).output
    result = scaffold(*FLAGS, "--service", "orders", "svc/orders.yaml")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((tmp_path / "svc/orders.yaml").read_text())["service"] == "orders"


def test_invalid_names_are_refused(repo: Path) -> None:
    result = scaffold(*FLAGS, "--service", "Check_Out")
    assert result.exit_code == 1
    assert "--service 'Check_Out' is not a valid name" in result.output
    assert not (repo / "platform-obs.yaml").exists()


def test_interactive_prompts_with_defaults_and_retries(repo: Path) -> None:
    # service: accept the pyproject default; team: a bad name first; tier 1; receiver: default.
    answers = "\nBad Team\npayments\n1\n\n"
    result = scaffold("--interactive", "--runbook-base-url", "https://rb.acme.test", input=answers)
    assert result.exit_code == 0, result.output
    assert "Service name [checkout-api]:" in result.output
    assert "'Bad Team': expected lower-case letters" in result.output
    assert "Grafana contact point for alerts [payments-oncall]:" in result.output
    data = yaml.safe_load((repo / "platform-obs.yaml").read_text())
    assert (data["service"], data["team"], data["tier"], data["receiver"]) == (
        "checkout-api",
        "payments",
        1,
        "payments-oncall",
    )
    assert data["runbook_base_url"] == "https://rb.acme.test"


def test_a_policy_the_generated_file_breaks_stops_the_write(repo: Path) -> None:
    strict = repo / "strict.yaml"
    strict.write_text(
        "apiVersion: platform-obs/v1\nkind: Policy\nrules:\n"
        "  - id: known-team\n    description: Known teams only\n"
        "    require: {team: {in: [search]}}\n    fix: Use a registered team.\n"
    )
    result = scaffold(*FLAGS, "--policy", str(strict))
    assert result.exit_code == 1
    assert "policy rule 'known-team'" in result.output and "nothing was written" in result.output
    assert not (repo / "platform-obs.yaml").exists()
