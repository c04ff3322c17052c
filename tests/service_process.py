"""Run a snippet of service code in a fresh Python process (``init()`` is once per process)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "flask_service"


def example_module(name: str) -> Any:
    """``examples/flask_service/<name>.py``, loaded by path once, under a private module name.

    The example directory is not a package, and putting it on sys.path would expose its generic
    module names ("app", "traffic") to every other test.
    """
    module_name = f"checkout_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


# Variables of the developer's shell that would change what init() does.
_SCRUB_PREFIXES = ("OTEL_", "PLATFORM_OBS_", "K8S_", "POD_", "GITHUB_SHA", "GIT_COMMIT")


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    @property
    def json_lines(self) -> list[dict[str, Any]]:
        """Every stdout line that is a JSON object (log lines), in order."""
        out = []
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def marker(self, name: str) -> str:
        """Value printed by the snippet as ``<name>=<value>``."""
        for line in self.stdout.splitlines():
            if line.startswith(f"{name}="):
                return line.split("=", 1)[1]
        raise AssertionError(f"{name}= not printed; stdout:\n{self.stdout}\nstderr:\n{self.stderr}")


def _environ(env: dict[str, str] | None) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    environ.update({"PYTHONUNBUFFERED": "1", "PLATFORM_OBS_LOG_FORMAT": "json"})
    environ.update(env or {})
    return environ


def start_service(code: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Like :func:`run_service` but returns the running process (stdin/stdout pipes) to talk to it."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=_environ(env),
        cwd=str(REPO / "tests"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_service(
    code: str, env: dict[str, str] | None = None, timeout: float = 60, cwd: Path | None = None
) -> Finished:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=_environ(env),
        cwd=str(cwd or REPO / "tests"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Finished(proc.returncode, proc.stdout, proc.stderr)
