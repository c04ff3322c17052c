"""Real server processes for the service-shape tests: uvicorn, gunicorn, a Celery worker.

Each runs from the repository's examples with a scrubbed environment, its stdout and stderr drained
on threads (a full pipe would block the server), and stops with SIGTERM like an orchestrator does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_range(size: int) -> int:
    """The first port of ``size`` consecutive free ports."""
    for _ in range(50):
        base = free_port()
        if base + size >= 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + size):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no {size} consecutive free ports")


def service_env(extra: dict[str, str]) -> dict[str, str]:
    """The developer's environment without telemetry settings, plus short export intervals."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "PLATFORM_OBS_", "WEB_CONCURRENCY", "DJANGO_", "CELERY_"))
    }
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
            "PLATFORM_OBS_LOG_FORMAT": "json",
            "PLATFORM_OBS_ENVIRONMENT": "test",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_BLRP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
        }
    )
    env.update(extra)
    return env


class ServerProcess:
    """One server command (a pre-fork master and its workers)."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        self.argv = list(argv)
        self.process = subprocess.Popen(
            self.argv,
            env=env,
            cwd=str(cwd),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._threads = [
            threading.Thread(target=self._drain, args=(self.process.stdout, self.stdout_lines)),
            threading.Thread(target=self._drain, args=(self.process.stderr, self.stderr_lines)),
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    @staticmethod
    def _drain(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def wait_http(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.argv[0]} exited early:\n{self.output()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        raise AssertionError(f"{url} not ready after {timeout}s:\n{self.output()}")

    def wait_output(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in list(self.stdout_lines)):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not printed:\n{self.output()}")

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # Workers may outlive their master for a moment (flushing telemetry): wait for the group.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        for thread in self._threads:
            thread.join(5)
        return self.process.returncode

    def output(self) -> str:
        return (
            "".join(self.stdout_lines[-40:])
            + "\n--- stderr ---\n"
            + "".join(self.stderr_lines[-40:])
        )

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout_lines if line.strip()]

    def non_json_stdout(self) -> list[str]:
        bad = []
        for line in self.stdout_lines:
            try:
                if not isinstance(json.loads(line), dict):
                    bad.append(line)
            except json.JSONDecodeError:
                bad.append(line)
        return bad


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


def traffic(base_url: str, paths: Sequence[str], concurrency: int = 4) -> list[int]:
    """GET every path (loopback only), a few at a time; returns the status codes in order."""
    assert base_url.startswith("http://127.0.0.1:"), base_url
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda p: get(base_url + p), paths))
