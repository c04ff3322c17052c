"""Real Prometheus and Alertmanager servers for tests, on 127.0.0.1 with temporary state.

Each server runs the installed binary in its own process group with a temporary config and data
directory, listens on a free port of 127.0.0.1 only, and is stopped (group killed, directory
removed) by ``stop()`` / the context manager - use them from a fixture with a finalizer so a failing
test cannot leak a daemon::

    with AlertmanagerServer() as am, PrometheusServer(
        scrape_targets=["127.0.0.1:9464"], rule_files=[rules_path], alertmanager=am.address
    ) as prom:
        prom.wait_for(lambda: prom.query("up == 1"), what="a healthy target")
        prom.alerts()   # Prometheus' view;  am.alerts(): what reached Alertmanager

:func:`require_binary` skips a test when a binary is missing, but fails it when the ``CI``
variable is set: CI installs the binaries (scripts/install-prometheus.sh), so a skip there would
hide a broken set-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

#: Binary names, first found wins (Debian ships Alertmanager as ``prometheus-alertmanager``).
PROMETHEUS_BINARIES = ("prometheus",)
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")

# Proxies from the environment must never see local test traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerError(RuntimeError):
    """A server did not start, or an API call failed."""


def find_binary(names: Iterable[str]) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_binary(names: Iterable[str]) -> str:
    """The path of the first binary found; otherwise skip the test, or fail it under CI."""
    import pytest  # only the test-facing helper needs pytest

    names = tuple(names)
    path = find_binary(names)
    if path:
        return path
    message = f"{' / '.join(names)} not installed (scripts/install-prometheus.sh installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must not skip end-to-end tests")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    method: str, url: str, body: bytes | None = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    """(status, body) of one request; HTTP errors are returned, connection errors raise."""
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_for(
    predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.25, what: str = ""
) -> T:
    """Poll until ``predicate()`` is truthy and return it; raise ``TimeoutError`` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except (OSError, ServerError) as exc:  # not up yet, or a transient API error
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what or predicate}{detail}"
            )
        time.sleep(interval)


class _Server:
    """A daemon in its own process group with a temporary directory; subclasses give the command."""

    name = "server"
    binaries: tuple[str, ...] = ()

    def __init__(self, binary: str | None = None, startup_timeout: float = 30.0) -> None:
        found = binary or find_binary(self.binaries)
        if not found:
            raise FileNotFoundError(f"{self.name}: none of {', '.join(self.binaries)} installed")
        self.binary = found
        self.startup_timeout = startup_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix=f"{self.name}-")
        self.dir = Path(self._tmp.name)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        #: Environment of the process (``None``: this process's own).
        self.env: dict[str, str] | None = None
        self._log = self.dir / "server.log"

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as other servers' configs want it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> _Server:
        # A free port can be taken between the probe and the bind: retry on a fresh one.
        for _attempt in range(3):
            self.port = free_port()
            with self._log.open("ab") as log:
                self.process = subprocess.Popen(
                    self.command(),
                    cwd=self.dir,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: stop() kills all of it
                )
            try:
                wait_for(self._ready, self.startup_timeout, what=f"{self.name} on {self.url}")
                return self
            except TimeoutError as exc:
                exited = self.process.poll() is not None
                self._kill()
                if not (exited and "address already in use" in self.log_tail()):
                    self.stop()
                    raise ServerError(
                        f"{self.name} did not start: {exc}\n{self.log_tail()}"
                    ) from exc
        self.stop()
        raise ServerError(f"{self.name}: no free port after 3 attempts\n{self.log_tail()}")

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise ServerError(f"{self.name} exited with {self.process.returncode}")
        status, _ = http("GET", f"{self.url}/-/ready", timeout=2)
        return status == 200

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self._log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _kill(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self) -> None:
        """Kill the process group and remove the temporary directory (idempotent)."""
        self._kill()
        self._tmp.cleanup()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, body = http("GET", f"{self.url}{path}{query}")
        if status != 200:
            raise ServerError(f"GET {path}{query} -> {status}: {body[:500]!r}")
        return json.loads(body)


class PrometheusServer(_Server):
    """Prometheus with a generated (or given) config; the lifecycle API is on for ``reload()``.

    Either pass ``config_text`` (a whole prometheus.yml; ``rule_files`` are added to it) or let the
    parts build one: ``scrape_targets`` (``host:port``, one job ``scrape_job``), ``rule_files``
    (copied into the server's directory), ``alertmanager`` (``host:port``), and the intervals.
    """

    name = "prometheus"
    binaries = PROMETHEUS_BINARIES

    def __init__(
        self,
        config_text: str | None = None,
        rule_files: Sequence[str | os.PathLike[str]] = (),
        *,
        scrape_targets: Sequence[str] = (),
        scrape_job: str = "service",
        alertmanager: str | None = None,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        extra_args: Sequence[str] = (),
        binary: str | None = None,
        start: bool = True,
    ) -> None:
        super().__init__(binary)
        self.extra_args = list(extra_args)
        self.config_path = self.dir / "prometheus.yml"
        self.rules_dir = self.dir / "rules"
        self.rules_dir.mkdir()
        try:
            self.write_config(
                config_text,
                rule_files,
                scrape_targets=scrape_targets,
                scrape_job=scrape_job,
                alertmanager=alertmanager,
                scrape_interval=scrape_interval,
                evaluation_interval=evaluation_interval,
            )
            if start:
                self.start()
        except BaseException:
            self.stop()
            raise

    def command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address={self.address}",
            "--web.enable-lifecycle",
            # Alerts reach Alertmanager as soon as they fire, and again every second.
            "--rules.alert.resend-delay=1s",
            "--log.level=warn",
            *self.extra_args,
        ]

    def write_config(
        self,
        config_text: str | None = None,
        rule_files: Sequence[str | os.PathLike[str]] = (),
        *,
        scrape_targets: Sequence[str] = (),
        scrape_job: str = "service",
        alertmanager: str | None = None,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
    ) -> None:
        """Write the config (call :meth:`reload` afterwards on a running server)."""
        if config_text is not None:
            config: dict[str, Any] = yaml.safe_load(config_text) or {}
        else:
            config = {
                "global": {
                    "scrape_interval": scrape_interval,
                    "scrape_timeout": scrape_interval,
                    "evaluation_interval": evaluation_interval,
                },
                "scrape_configs": [
                    {"job_name": scrape_job, "static_configs": [{"targets": list(scrape_targets)}]}
                ]
                if scrape_targets
                else [],
            }
            if alertmanager:
                config["alerting"] = {
                    "alertmanagers": [
                        {"api_version": "v2", "static_configs": [{"targets": [alertmanager]}]}
                    ]
                }
        copied = []
        for i, source in enumerate(rule_files):
            target = self.rules_dir / f"{i:02d}-{Path(source).name}"
            shutil.copyfile(source, target)
            copied.append(str(target))
        if copied:
            config["rule_files"] = [*config.get("rule_files", []), *copied]
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    @property
    def config(self) -> dict[str, Any]:
        return dict(yaml.safe_load(self.config_path.read_text(encoding="utf-8")))

    def reload(self) -> None:
        """Re-read the config and rule files; raises when Prometheus rejects them."""
        status, body = http("POST", f"{self.url}/-/reload")
        if status != 200:
            raise ServerError(f"reload failed ({status}): {body.decode(errors='replace')}")

    def api(self, path: str, params: dict[str, str] | None = None) -> Any:
        """``data`` of a ``/api/v1/...`` answer; raises on ``status: error``."""
        answer = self._get_json(f"/api/v1/{path.lstrip('/')}", params)
        if answer.get("status") != "success":
            raise ServerError(f"{path}: {answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query: the result samples (``{"metric": {...}, "value": [ts, "v"]}``).

        A scalar or string result comes back as one sample with empty labels.
        """
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", params)
        if data["resultType"] in ("vector", "matrix"):
            return list(data["result"])
        return [{"metric": {}, "value": data["result"]}]

    def query_values(self, expr: str) -> list[float]:
        return [float(sample["value"][1]) for sample in self.query(expr)]

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule (flattened over groups), with its ``health`` and ``lastError``."""
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (``state`` pending or firing) as Prometheus sees them."""
        return list(self.api("alerts")["alerts"])

    def alertmanagers(self) -> list[str]:
        """URLs of the Alertmanagers Prometheus has discovered."""
        return [am["url"] for am in self.api("alertmanagers")["activeAlertmanagers"]]


#: Alertmanager config that accepts every alert and notifies nobody (the API shows what arrived).
DEFAULT_ALERTMANAGER_CONFIG = """\
route:
  receiver: "null"
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
"""


class AlertmanagerServer(_Server):
    """Alertmanager with a single "null" receiver (or ``config_text``), no clustering."""

    name = "alertmanager"
    binaries = ALERTMANAGER_BINARIES

    def __init__(
        self,
        config_text: str = DEFAULT_ALERTMANAGER_CONFIG,
        *,
        binary: str | None = None,
        start: bool = True,
    ) -> None:
        super().__init__(binary)
        self.config_path = self.dir / "alertmanager.yml"
        self.config_path.write_text(config_text, encoding="utf-8")
        if start:
            try:
                self.start()
            except BaseException:
                self.stop()
                raise

    def command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.dir / 'data'}",
            f"--web.listen-address={self.address}",
            "--cluster.listen-address=",  # no gossip listener on 0.0.0.0:9094
            "--log.level=warn",
        ]

    def alerts(self, **label_filters: str) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds (``/api/v2/alerts``), optionally filtered by label values."""
        # One `filter` parameter per matcher (Alertmanager ANDs them).
        query = "&".join(
            "filter=" + urllib.parse.quote(f'{k}="{v}"') for k, v in label_filters.items()
        )
        query = f"?{query}" if query else ""
        status, body = http("GET", f"{self.url}/api/v2/alerts{query}")
        if status != 200:
            raise ServerError(f"GET /api/v2/alerts -> {status}: {body[:500]!r}")
        return list(json.loads(body))
