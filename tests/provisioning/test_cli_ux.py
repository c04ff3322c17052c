"""The CLI as people meet it in a pull request and on a terminal (issue 12 findings).

Real pipeline on real config files, the Grafana double over HTTP, the real CLI in a subprocess
where a terminal matters (a pseudo-terminal from ``pty``).
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from factories import rendered
from fixtures_render import EXAMPLE
from grafana_double import GrafanaDouble
from test_apply import connect, run

from platform_obs import cli as cli_module
from platform_obs.provisioning.plan import build_plan
from platform_obs.provisioning.plan_view import MARKDOWN_BUDGET, render_markdown

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SCRIPT = Path(sys.executable).with_name("platform-obs")


def _configs(tmp_path: Path) -> tuple[Path, str, str]:
    """The example config as it was applied (old) and as changed in a pull request (new)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    old = text.replace(
        "threshold: 0.02        # 2% instead of the default 5%\n    for: 10m",
        "threshold: 0.02\n    for: 5m",
    )
    old = old[: old.index("custom_alerts:")]
    new = text.replace("threshold: 0.02        # 2% instead of the default 5%", "threshold: 0.03")
    assert old != text and new != text
    return tmp_path / "platform-obs.yaml", old, new


def invoke(grafana: GrafanaDouble | None, *args: str, input: str | None = None) -> Result:
    env = {"GRAFANA_URL": "", "GRAFANA_TOKEN": "", "NO_COLOR": ""}
    if grafana is not None:
        env |= {"GRAFANA_URL": grafana.url, "GRAFANA_TOKEN": grafana.token}
    return CliRunner().invoke(cli_module.cli, list(args), env=env, input=input)


@pytest.fixture
def changed(tmp_path: Path, grafana: GrafanaDouble) -> Path:
    """Grafana holds the old config; the file now holds the new one."""
    path, old, new = _configs(tmp_path)
    path.write_text(old, encoding="utf-8")
    result = invoke(grafana, "apply", str(path), "--yes", "--no-promtool")
    assert result.exit_code == 0, result.output
    path.write_text(new, encoding="utf-8")
    grafana.reset_requests()
    return path


# --- the plan reads in the config's terms -------------------------------------------------------


def test_plan_names_rules_and_fields_in_config_terms(grafana: GrafanaDouble, changed: Path) -> None:
    result = invoke(grafana, "plan", str(changed), "--no-promtool")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith("checkout\n") and "  ~ rule group po-checkout/checkout\n" in text
    assert '      ~ alert "HighErrorRatio"\n' in text
    assert "          ~ threshold line[1]: 0.02 → 0.03\n" in text  # the line on the panel
    assert "          ~ for: 5m → 10m\n" in text
    assert "          ~ threshold: 0.02 → 0.03\n" in text
    assert '      + alert "CheckoutPaymentProviderErrors"\n' in text
    assert "          + severity:" in text
    # the raw JSON of what Grafana stores only behind --diff
    for raw in ("relativeTimeRange", "$B == $B", '"for": 300', "rendered/rule_group"):
        assert raw not in text
    with_json = invoke(grafana, "plan", str(changed), "--no-promtool", "--diff").stdout
    assert "rendered/rule_group/po-checkout/checkout" in with_json
    assert "~ for: 5m → 10m" in with_json
    assert grafana.writes() == []


def test_markdown_plan_for_a_pull_request(grafana: GrafanaDouble, changed: Path) -> None:
    md = invoke(grafana, "plan", str(changed), "--no-promtool", "-o", "markdown").stdout
    summary = md.index("**Plan: 0 to create, 2 to update, 0 to delete")
    table = md.index("| checkout | 0 | 2 | 0 | ~ dashboard `checkout-overview`; ~ rule group (1 ")
    assert "~ rule group (1 alert(s) added, 1 alert(s) changed) |" in md
    folded = md.index("<details><summary><b>checkout</b>: 2 to update</summary>")
    assert summary < table < folded
    assert "~         for: 5m → 10m" in md  # symbol first: GitHub colours the diff block
    assert "\x1b[" not in md


def test_markdown_stays_readable_for_200_services(grafana: GrafanaDouble) -> None:
    names = [f"svc{i:03d}" for i in range(200)]
    assert run(grafana, rendered(names)).ok
    plan = build_plan(rendered(names, thresholds={n: 0.1 for n in names}), connect(grafana))
    md = render_markdown(plan)
    first_details = md.index("<details>")
    assert md.index("**Plan: 0 to create, 200 to update") < first_details
    rows = [line for line in md[:first_details].splitlines() if line.startswith("| svc")]
    assert len(rows) == 200  # one table row per changed service, before any details
    assert md.count("<details>") == md.count("</details>") == 200
    assert len(md) < 65_536  # fits a GitHub comment
    small = render_markdown(plan, budget=5_000)
    assert len(small) < 5_000 + 500
    assert "more service(s) left out to fit a comment" in small
    assert re.search(r"^\| \*\d+ more service\(s\)\* \|", small, re.M)
    assert small.count("<details>") < 200 and MARKDOWN_BUDGET > 5_000


# --- colour: on a terminal, never in CI logs ----------------------------------------------------


def _pty_run(args: list[str], env: dict[str, str], answer: str | None = None) -> tuple[int, str]:
    """Run the real CLI with stdin/stdout/stderr on a pseudo-terminal."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    output = b""
    answered = answer is None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"[y/N]" in output:
                os.write(leader, answer.encode() + b"\n")  # type: ignore[union-attr]
                answered = True
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=30)
    os.close(leader)
    return code, output.decode("utf-8", "replace")


def _env(grafana: GrafanaDouble, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    return env | {"GRAFANA_URL": grafana.url, "GRAFANA_TOKEN": grafana.token} | extra


@pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed")
def test_colour_on_a_terminal_and_not_in_logs(grafana: GrafanaDouble, changed: Path) -> None:
    args = [str(SCRIPT), "plan", str(changed), "--no-promtool"]
    code, on_tty = _pty_run(args, _env(grafana))
    assert code == 0, on_tty
    assert "\x1b[33m" in on_tty and "\x1b[32m" in on_tty  # ~ yellow, + green
    assert "~ for: 5m → 10m" in ANSI.sub("", on_tty)

    piped = subprocess.run(args, env=_env(grafana), capture_output=True, text=True, check=False)
    assert piped.returncode == 0 and "~ for: 5m → 10m" in piped.stdout
    assert "\x1b[" not in piped.stdout + piped.stderr

    code, no_color = _pty_run(args, _env(grafana, NO_COLOR="1"))
    assert code == 0 and "\x1b[" not in no_color and "~ for: 5m → 10m" in no_color


def test_color_flags_override_detection(grafana: GrafanaDouble, changed: Path) -> None:
    forced = invoke(grafana, "plan", str(changed), "--no-promtool", "--color").stdout
    assert click.unstyle(forced) != forced
    assert "\x1b[" not in invoke(grafana, "plan", str(changed), "--no-promtool").stdout


# --- apply asks on a terminal -------------------------------------------------------------------


@pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed")
def test_apply_on_a_terminal_shows_the_plan_and_asks(grafana: GrafanaDouble, changed: Path) -> None:
    args = [str(SCRIPT), "apply", str(changed), "--no-promtool", "--no-progress"]
    code, output = _pty_run(args, _env(grafana), answer="n")
    text = ANSI.sub("", output)
    assert code == 1, text
    assert text.index("~ for: 5m → 10m") < text.index("Apply 2 changes to ")
    assert "[y/N]" in text and "Apply cancelled; nothing was written." in text
    assert grafana.writes() == []

    code, output = _pty_run(args, _env(grafana), answer="y")
    assert code == 0, output
    assert "Apply: 0 created, 2 updated" in ANSI.sub("", output)
    assert len(grafana.writes()) == 2


def test_apply_without_a_terminal_or_with_yes_does_not_ask(
    grafana: GrafanaDouble, changed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = invoke(grafana, "apply", str(changed), "--no-promtool")  # stdin is not a terminal
    assert result.exit_code == 0, result.output
    assert "[y/N]" not in result.output and len(grafana.writes()) == 2


def test_yes_skips_the_question_on_a_terminal(
    grafana: GrafanaDouble, changed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_module, "_stdin_is_terminal", lambda: True)
    asked = invoke(grafana, "apply", str(changed), "--no-promtool", input="n\n")
    assert asked.exit_code == 1 and "[y/N]" in asked.output and grafana.writes() == []
    result = invoke(grafana, "apply", str(changed), "--no-promtool", "-y")
    assert result.exit_code == 0, result.output
    assert "[y/N]" not in result.output and len(grafana.writes()) == 2


# --- one PATH argument, one default, one meaning per option -------------------------------------


def _params(name: str) -> dict[str, click.Parameter]:
    command = cli_module.cli.commands[name]
    return {p.name or "": p for p in command.params}


def test_every_command_takes_the_same_path_argument() -> None:
    for name in cli_module.WORKFLOW:
        param = _params(name)["paths"]
        assert isinstance(param, click.Argument), name
        assert (param.nargs, param.required, param.metavar) == (-1, False, "[PATH]..."), name
        help_text = invoke(None, name, "--help").output
        assert "PATH:" in help_text and "platform-obs.yaml" in help_text, name


@pytest.mark.parametrize("command", ["validate", "render", "plan", "apply", "doctor"])
def test_the_default_path_is_platform_obs_yaml(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    extra = ["--out", "out"] if command == "render" else []
    missing = invoke(None, command, *extra)
    assert missing.exit_code == 1
    if command != "doctor":  # doctor reports it as its failed config check
        assert "platform-obs.yaml: no such file or directory (the default" in missing.output
    (tmp_path / "platform-obs.yaml").write_text(EXAMPLE.read_text(encoding="utf-8"))
    found = invoke(None, command, *extra, "--no-promtool" if command != "doctor" else "--help")
    if command in ("validate", "render"):
        assert found.exit_code == 0, found.output
    elif command in ("plan", "apply"):  # read and validated, then it needs Grafana
        assert found.exit_code == 1 and "GRAFANA_URL is not set" in found.output


def test_dash_o_means_the_output_format_wherever_it_is_offered() -> None:
    for name in cli_module.WORKFLOW:
        for param in cli_module.cli.commands[name].params:
            if "-o" in getattr(param, "opts", []) and not getattr(param, "hidden", False):
                assert param.name == "output" and isinstance(param.type, click.Choice), name
    assert "-o" in _params("plan")["output"].opts


def test_scaffold_takes_path_and_keeps_dash_o_as_a_deprecated_alias(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    flags = ["--service", "orders", "--team", "payments", "--tier", "2", "--receiver", "r"]
    (tmp_path / "svc").mkdir()
    assert invoke(None, "scaffold", *flags, "svc").exit_code == 0
    assert (tmp_path / "svc" / "platform-obs.yaml").is_file()  # a directory gets the default name
    old = invoke(None, "scaffold", *flags, "-o", "old.yaml")
    assert old.exit_code == 0, old.output
    assert "-o/--output FILE is deprecated" in old.stderr and (tmp_path / "old.yaml").is_file()
    assert not re.search(r"-o\b|--output", invoke(None, "scaffold", "--help").output)


# --- help: workflow order, exit codes per command -----------------------------------------------


def test_commands_are_listed_in_workflow_order() -> None:
    text = invoke(None, "--help").output
    listed = re.findall(r"^  (\w+)  ", text[text.index("Commands:") :], re.M)
    assert listed == ["scaffold", "validate", "render", "plan", "apply", "doctor"]


@pytest.mark.parametrize(
    ("command", "codes"),
    [
        ("scaffold", {0, 1}),
        ("validate", {0, 1}),
        ("render", {0, 1}),
        ("plan", {0, 1, 2, 3}),
        ("apply", {0, 1, 3, 4}),
        ("doctor", {0, 1}),
    ],
)
def test_help_shows_only_the_exit_codes_of_the_command(command: str, codes: set[int]) -> None:
    text = invoke(None, command, "--help").output
    section = text[text.index("Exit codes:") :]
    assert {int(c) for c in re.findall(r"^\s+(\d)  ", section, re.M)} == codes
