"""The last checks of a fleet run in a forked second process; nothing is written unless they pass.

A fork is taken only by a single-threaded process, so these tests run the code in a fresh
interpreter (pytest itself may have threads).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures_render import REPO, config, write

from platform_obs.provisioning import outputs, side_process
from platform_obs.provisioning.pipeline import SIDE_PROCESS_FROM, build

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or side_process.cores() < 2,
    reason="a second process pays off only with fork and a second core",
)


def _python(
    code: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        env=env,
    )


PRIMITIVES = """
import json, os, threading
from platform_obs.provisioning import side_process

parent = os.getpid()
with side_process.start(os.getpid) as pending:
    child = pending.result()

def fails_in_the_child():
    if os.getpid() != parent:
        raise RuntimeError("only in the child")
    return "run here"

with side_process.start(fails_in_the_child) as pending:
    again = pending.result()

with side_process.start(fails_in_the_child, lambda: "fallback") as pending:
    fallback = pending.result()

with side_process.start(lambda: __import__("time").sleep(600)) as pending:
    sleeper = pending._pid  # left unread: stopped and reaped on leaving the block
try:
    os.kill(sleeper, 0)
    stopped = False
except ProcessLookupError:
    stopped = True

release = threading.Event()
thread = threading.Thread(target=release.wait)
thread.start()
threaded = side_process.start(os.getpid)
release.set()
thread.join()
print(json.dumps({"parent": parent, "child": child, "again": again, "fallback": fallback,
                  "stopped": stopped, "threaded": threaded is None}))
"""


def test_a_function_runs_in_a_child_and_every_failure_falls_back_here() -> None:
    run = _python(PRIMITIVES)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["child"] != seen["parent"], "the result comes from another process"
    assert seen["again"] == "run here", "a child that failed means running the function here"
    assert seen["fallback"] == "fallback", "... or the fallback given for it"
    assert seen["stopped"], "a child whose result is not read is stopped and reaped"
    assert seen["threaded"], "no fork while another thread is alive"


#: Runs the CLI in this fresh process, recording whether the checks went to a second process and
#: which processes rendered the fleet (in the file named by ``RENDERS_LOG``).
CLI = """
import json, os, sys
from platform_obs.provisioning import pipeline

forked = []
real_start = pipeline.start
def start(fn, fallback=None):
    pending = real_start(fn, fallback)
    forked.append(pending is not None)
    return pending
pipeline.start = start
real_render_all = pipeline.render_all
def render_all(*args, **kwargs):
    with open(os.environ["RENDERS_LOG"], "a") as log:
        verify = sorted(kwargs.get("verify", ["all"]))
        log.write(f"{os.getpid()}:{'+'.join(verify) if len(verify) < 3 else 'all'} ")
    return real_render_all(*args, **kwargs)
pipeline.render_all = render_all
DRIFT = os.environ.get("SHAPES_DRIFT")  # shapes of a kind give other text than direct rendering
if DRIFT:
    from platform_obs.provisioning.render import service
    real_real = service._real
    kinds = {"dashboards": ['"panels"'], "alerting": ['"alert"'], "both": ['"panels"', '"alert"']}
    def drifting(text, spec):
        made = real_real(text, spec)
        if not any(kind in text for kind in kinds[DRIFT]):
            return made
        return made.replace("overview", "0verview").replace('"severity"', '"sev3rity"')
    service._real = drifting
from platform_obs.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"forked": forked, "code": code, "pid": os.getpid()}), file=sys.stderr)
"""


def _cli(*args: str, renders: Path, drift: str = "") -> tuple[dict[str, Any], str]:
    env = {**os.environ, "RENDERS_LOG": str(renders)}
    if drift:
        env["SHAPES_DRIFT"] = drift
    run = _python(CLI, *args, env=env)
    *lines, last = run.stderr.strip().splitlines()
    return json.loads(last), "\n".join(lines)


def _fleet(directory: Path, n: int = SIDE_PROCESS_FROM + 6) -> Path:
    directory.mkdir()
    for i in range(n):
        team = f"team-{i % 3}"
        data = config(service=f"svc-{i:03d}", team=team, receiver=f"{team}-oncall")
        write(directory, data, f"svc-{i:03d}.yaml")
    return directory


def test_a_fleet_renders_the_same_files_with_its_checks_in_a_second_process(
    tmp_path: Path,
) -> None:
    configs = _fleet(tmp_path / "services")
    out = tmp_path / "out"
    renders = tmp_path / "renders.log"
    seen, errors = _cli("render", str(configs), "--out", str(out), "--no-promtool", renders=renders)
    assert (seen["forked"], seen["code"]) == ([True], 0), errors
    renders_by = dict(r.split(":") for r in renders.read_text().split())
    assert len(renders_by) == 2, "two processes render"
    # each checks some kinds of shapes and trusts the others, which the other one checks
    assert renders_by.pop(str(seen["pid"])) == "dashboards"
    assert list(renders_by.values()) == ["alerting+recording"]
    expected = outputs.render_files(build([configs], run_promtool=False, backstage_catalog=True))
    written = {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert written == expected


@pytest.mark.parametrize("drift", ["dashboards", "alerting", "both"])
def test_a_shape_either_process_finds_inexact_means_rendering_again_as_checked(
    tmp_path: Path, drift: str
) -> None:
    """Each process trusts the shapes the other checks; where one differs from direct
    rendering, what was made from it is neither written nor trusted to be checked."""
    configs = _fleet(tmp_path / "services")
    out = tmp_path / "out"
    renders = tmp_path / "renders.log"
    seen, errors = _cli(
        "render", str(configs), "--out", str(out), "--no-promtool", renders=renders, drift=drift
    )
    assert (seen["forked"], seen["code"]) == ([True], 0), errors
    here = [r for r in renders.read_text().split() if r.startswith(f"{seen['pid']}:")]
    assert here == [f"{seen['pid']}:dashboards", f"{seen['pid']}:all"]
    written = {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert not [path for path, text in written.items() if "0verview" in text or "sev3rity" in text]
    assert written == outputs.render_files(
        build([configs], run_promtool=False, backstage_catalog=True)
    )


@pytest.mark.parametrize(
    ("template", "old", "new", "flag"),
    [  # found by this process (dashboards), and by the child (alert rules)
        ("dashboards/overview.yaml", "{${selector}})", "{${selector}}) * $nosuch", "$nosuch"),
        ("alerts/high-error-ratio.yaml", "humanizePercentage }}", "humanizePercentage }", "{{"),
    ],
)
def test_a_problem_either_process_finds_means_nothing_is_written(
    tmp_path: Path, template: str, old: str, new: str, flag: str
) -> None:
    """A template problem only the checks of the rendered output find, on every service."""
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "dashboards", templates / "dashboards")
    shutil.copytree(REPO / "alerts", templates / "alerts")
    edited = templates / template
    edited.write_text(edited.read_text().replace(old, new, 1))
    configs = _fleet(tmp_path / "services")
    out = tmp_path / "out"
    seen, errors = _cli(
        "render",
        str(configs),
        "--out",
        str(out),
        "--templates",
        str(templates),
        "--no-promtool",
        renders=tmp_path / "renders.log",
    )
    assert (seen["forked"], seen["code"]) == ([True], 1), errors
    assert not out.exists(), "nothing is written when a check fails"
    flagged = {line for line in errors.splitlines() if flag in line}
    assert len(flagged) == SIDE_PROCESS_FROM + 6, "every service's problem is reported"
    assert all(template in line for line in flagged), errors


def test_a_small_fleet_is_checked_in_one_process(tmp_path: Path) -> None:
    configs = _fleet(tmp_path / "services", n=3)
    renders = tmp_path / "renders.log"
    out = str(tmp_path / "out")
    seen, errors = _cli("render", str(configs), "--out", out, "--no-promtool", renders=renders)
    assert (seen["forked"], seen["code"]) == ([], 0), errors
    assert renders.read_text().split() == [f"{seen['pid']}:all"], "rendered once, here"


def test_files_are_written_with_the_last_content_of_a_path(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "old.json").write_text("x" * 100)
    written = outputs.write_files(
        [("a/old.json", "new"), ("b/c/d.yaml", "1"), ("b/c/d.yaml", "2")], tmp_path
    )
    assert written == [tmp_path / "a" / "old.json", tmp_path / "b" / "c" / "d.yaml"]
    assert (tmp_path / "a" / "old.json").read_text() == "new", "an old file is replaced whole"
    assert (tmp_path / "b" / "c" / "d.yaml").read_text() == "2"
