"""The CI examples: they parse, gate plan/apply on the right events, use only real CLI options, and
their shell steps map platform-obs exit codes as docs/cli.md says (run with a stand-in binary)."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures_render import REPO

from platform_obs import cli as cli_module

CI = REPO / "examples" / "ci"
GITHUB = CI / "github-actions.yml"
AZURE = CI / "azure-pipelines.yml"


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def github_steps(job: str) -> list[dict[str, Any]]:
    return list(load(GITHUB)["jobs"][job]["steps"])


def azure_stage(name: str) -> dict[str, Any]:
    return next(s for s in load(AZURE)["stages"] if s["stage"] == name)


def azure_steps(name: str) -> list[dict[str, Any]]:
    job = azure_stage(name)["jobs"][0]
    if "steps" in job:
        return list(job["steps"])
    return list(job["strategy"]["runOnce"]["deploy"]["steps"])


def step(steps: list[dict[str, Any]], title: str) -> str:
    found = [s for s in steps if title in (s.get("name"), s.get("displayName"))]
    assert len(found) == 1, f"no single step {title!r}"
    return str(found[0].get("run") or found[0].get("script"))


def test_github_workflow_shape() -> None:
    wf = load(GITHUB)
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(on) == {"pull_request", "push"} and on["push"]["branches"] == ["main"]
    assert "pull_request" in wf["jobs"]["plan"]["if"]
    assert "refs/heads/main" in wf["jobs"]["apply"]["if"]
    assert wf["jobs"]["plan"]["permissions"]["pull-requests"] == "write"
    assert wf["jobs"]["apply"]["concurrency"]["cancel-in-progress"] is False
    plan = step(github_steps("plan"), "Plan")
    assert "--output markdown" in plan and "--detailed-exitcode" in plan
    assert "GITHUB_STEP_SUMMARY" in plan
    assert "--body-file plan.md" in step(
        github_steps("plan"), "Comment the plan on the pull request"
    )


def test_azure_pipeline_shape() -> None:
    pipeline = load(AZURE)
    assert pipeline["trigger"]["branches"]["include"] == ["main"]
    assert pipeline["pr"]["branches"]["include"] == ["main"]
    assert "PullRequest" in azure_stage("plan")["condition"]
    assert "refs/heads/main" in azure_stage("apply")["condition"]
    plan_step = next(s for s in azure_steps("plan") if s.get("displayName") == "Plan")
    # Secret variables are not in a script's environment unless mapped.
    assert plan_step["env"] == {
        "GRAFANA_URL": "$(GRAFANA_URL)",
        "GRAFANA_TOKEN": "$(GRAFANA_TOKEN)",
    }
    assert "task.uploadsummary" in plan_step["script"]
    apply_steps = azure_steps("apply")
    assert apply_steps[0] == {"checkout": "self"}  # deployment jobs do not check out by themselves
    assert "platform-obs apply" in step(apply_steps, "Apply")


def _scripts(node: Any) -> list[str]:
    """Every shell script in a workflow/pipeline (values of `run:` and `script:`)."""
    if isinstance(node, dict):
        found = [str(v) for k, v in node.items() if k in ("run", "script")]
        return found + [s for v in node.values() for s in _scripts(v)]
    if isinstance(node, list):
        return [s for v in node for s in _scripts(v)]
    return []


def _commands(data: dict[str, Any]) -> list[list[str]]:
    """Every `platform-obs ...` command line in the scripts (shell words, variables expanded)."""
    out = []
    for line in "\n".join(_scripts(data)).splitlines():
        line = line.strip()
        if line.startswith("platform-obs "):
            line = line.split(">")[0].replace('"$SERVICES"', "services/")
            line = line.replace('"$BUILD_ARTIFACTSTAGINGDIRECTORY/rendered"', "rendered/")
            out.append(shlex.split(line)[1:])
    return out


@pytest.mark.parametrize("path", [GITHUB, AZURE], ids=["github", "azure"])
def test_every_command_uses_real_options(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "services").mkdir()
    commands = _commands(load(path))
    assert {c[0] for c in commands} == {"validate", "render", "plan", "apply"}
    for args in commands:
        command = cli_module.cli.commands[args[0]]
        command.make_context(args[0], args[1:])  # raises on an unknown option or missing value


FAKE = """#!/bin/sh
echo "### platform-obs $1"
exit "$FAKE_CODE"
"""


def run_step(script: str, code: int, tmp_path: Path) -> tuple[int, str, str]:
    """Run one CI shell step the way the runners do, with platform-obs exiting ``code``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "platform-obs"
    fake.write_text(FAKE)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    summary, outputs, staging = tmp_path / "summary.md", tmp_path / "outputs", tmp_path / "stage"
    staging.mkdir(exist_ok=True)
    for f in (summary, outputs):
        f.write_text("")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_CODE": str(code),
        "SERVICES": "services/",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(outputs),
        "BUILD_ARTIFACTSTAGINGDIRECTORY": str(staging),
    }
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    shown = summary.read_text() + "".join(
        p.read_text() for p in staging.glob("*.md") if p.name != "plan.md"
    )
    if "task.uploadsummary" in proc.stdout:
        shown += (staging / "plan.md").read_text() if (staging / "plan.md").exists() else ""
    return proc.returncode, proc.stdout + proc.stderr, shown + outputs.read_text()


# (platform-obs exit code, job exit code): only "changes present" (2) is success besides 0.
PLAN_CODES = [(0, 0), (2, 0), (1, 1), (3, 3)]


@pytest.mark.parametrize(("code", "expected"), PLAN_CODES)
@pytest.mark.parametrize("ci", ["github", "azure"])
def test_plan_step_exit_codes_and_summary(
    ci: str, code: int, expected: int, tmp_path: Path
) -> None:
    script = step(github_steps("plan") if ci == "github" else azure_steps("plan"), "Plan")
    rc, output, shown = run_step(script, code, tmp_path)
    assert rc == expected, output
    if expected == 0:
        assert "### platform-obs plan" in shown  # the Markdown plan reaches the summary
    if ci == "github" and code in (0, 2):
        assert f"changes={'true' if code == 2 else 'false'}" in shown
    if code == 2:
        assert "updates Grafana" in output
    if expected:
        assert f"exit code {code}" in output


@pytest.mark.parametrize("code", [0, 3, 4])
@pytest.mark.parametrize("ci", ["github", "azure"])
def test_apply_step_fails_on_grafana_errors_and_partial_applies(
    ci: str, code: int, tmp_path: Path
) -> None:
    script = step(github_steps("apply") if ci == "github" else azure_steps("apply"), "Apply")
    rc, output, shown = run_step(script, code, tmp_path)
    assert rc == code, output
    assert "### platform-obs apply" in output and "### platform-obs apply" in shown
