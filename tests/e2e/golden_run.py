"""The golden-path run shared by the end-to-end tests: real Prometheus, Alertmanager, OTLP receiver
and two processes of the example service, set up once per module and always torn down."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from otlp_receiver import OtlpReceiver
from prometheus_servers import (
    ALERTMANAGER_BINARIES,
    PROMETHEUS_BINARIES,
    AlertmanagerServer,
    PrometheusServer,
    free_port,
    require_binary,
    wait_for,
)
from service_process import example_module

from platform_obs.provisioning.durations import seconds
from platform_obs.provisioning.model import Rendered
from platform_obs.provisioning.pipeline import build

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "flask_service"

traffic = example_module("traffic")

SERVICE = "checkout"  # what examples/flask_service/app.py passes to init()
TEAM = "payments"
NAMESPACE = "shop"
#: Two processes of the same service in two environments: every alert groups by environment,
#: so the healthy one must stay silent while the faulty one fires.
FAULTY, HEALTHY = "faulty", "healthy"
FAIL_RATIO, SLOW_RATIO, SLOW_MS = 0.2, 0.1, 300
#: Burn-rate windows of the templates divided by this (5m -> 5s, 1h -> 60s, 3d -> 72m): the
#: factors and the long/short ratios stay as designed, the test waits seconds instead of hours.
WINDOW_SCALE = 60

SERVICE_CONFIG = f"""\
apiVersion: platform-obs/v1
kind: Service
service: {SERVICE}
team: {TEAM}
namespace: {NAMESPACE}
tier: 2
environments: [{FAULTY}, {HEALTHY}]
receiver: {TEAM}-oncall
evaluation_interval: 10s
slos:
  window: 30d
  availability: {{objective: 99}}
  latency: {{threshold: 250ms, objective: 99}}
alerts:
  high-error-ratio: {{threshold: 0.1, window: 10s, for: 2s}}
  high-latency: {{threshold: 250ms, window: 10s, for: 2s}}
  traffic-drop: {{window: 10s}}
  slo-availability-burn-rate: {{page_for: 2s, ticket_for: 2s}}
  slo-latency-burn-rate: {{page_for: 2s, ticket_for: 2s}}
"""


class Service:
    """The example app in a subprocess; stdout is drained on a thread so logging never blocks it."""

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.name = name
        self.metrics_port = int(env["OTEL_EXPORTER_PROMETHEUS_PORT"])
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLE / "app.py")],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith(f"{SERVICE} listening on "):
                self.url = line.split()[-1]
                self._ready.set()
        self._ready.set()  # exited before listening

    def _drain_stderr(self) -> None:
        assert self.process.stderr
        for line in self.process.stderr:
            self.stderr.append(line)

    def wait_ready(self, timeout: float = 30) -> None:
        if not self._ready.wait(timeout) or not self.url:
            raise RuntimeError(
                f"{self.name} did not start:\n{''.join(self.lines)}\n{''.join(self.stderr)}"
            )

    @property
    def metrics_target(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"

    def json_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


class Load:
    """Steady traffic to one service on a thread until stopped; counts status codes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.counts: Counter[int] = Counter()
        self.errors: list[BaseException] = []
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # No per-request faults: the process injects them (CHECKOUT_* variables).
                self.counts.update(
                    traffic.generate(self.url, 20, 0.0, 0.0, concurrency=4, seed=None)
                )
            except Exception as exc:
                self.errors.append(exc)
                return
            time.sleep(0.02)  # leaves CPU for Prometheus and the other service

    @property
    def running_for(self) -> float:
        return time.monotonic() - self.started

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass
class GoldenPath:
    """Everything a test needs to look at the run."""

    prometheus: PrometheusServer
    alertmanager: AlertmanagerServer
    receiver: OtlpReceiver
    services: dict[str, Service]
    loads: dict[str, Load]
    rendered: Rendered
    templates_dir: Path
    #: The alerting rules; ``rule_files`` adds the SLO recording rules they read.
    rule_file: Path
    rule_files: list[Path] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


def scale_burn_rate_windows(templates_dir: Path, factor: int) -> None:
    """Divide every burn-rate window in the copied alert templates by ``factor`` (whole seconds)."""
    for path in sorted((templates_dir / "alerts").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        burn = doc.get("burn_rate")
        if not burn:
            continue
        for tiers in burn["windows"].values():
            for rows in tiers.values():
                for row in rows:
                    for key in ("long", "short"):
                        row[key] = f"{max(1, round(seconds(row[key]) / factor))}s"
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def _service_env(rx: OtlpReceiver, environment: str, faults: bool) -> dict[str, str]:
    # The developer's own OTEL_/PLATFORM_OBS_ settings must not redirect the service.
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "PLATFORM_OBS_", "CHECKOUT_"))
    }
    return {
        **inherited,
        **rx.env("grpc"),
        "PORT": "0",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "PLATFORM_OBS_LOG_FORMAT": "json",
        "PLATFORM_OBS_ENVIRONMENT": environment,
        "PLATFORM_OBS_TEAM": TEAM,
        "PLATFORM_OBS_SERVICE_NAMESPACE": NAMESPACE,
        # Metrics through the SDK's pull endpoint, scraped by Prometheus (docs/metric-pipeline.md).
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(free_port()),
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_BLRP_SCHEDULE_DELAY": "200",
        "CHECKOUT_FAIL_RATIO": str(FAIL_RATIO if faults else 0),
        "CHECKOUT_SLOW_RATIO": str(SLOW_RATIO if faults else 0),
        "CHECKOUT_SLOW_MS": str(SLOW_MS),
    }


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoldenPath]:
    require_binary(PROMETHEUS_BINARIES)
    require_binary(ALERTMANAGER_BINARIES)
    tmp = tmp_path_factory.mktemp("golden-path")

    # Render first: a template problem should fail before any process starts.
    templates_dir = tmp / "templates"
    for kind in ("dashboards", "alerts"):
        shutil.copytree(ROOT / kind, templates_dir / kind)
    scale_burn_rate_windows(templates_dir, WINDOW_SCALE)
    config_dir = tmp / "config"
    config_dir.mkdir()
    (config_dir / "platform-obs.yaml").write_text(SERVICE_CONFIG, encoding="utf-8")
    rendered = build([config_dir], templates_dir=templates_dir)
    rule_files = []
    for rules in rendered.prometheus_rules:  # the alerts, and the SLO recordings they read
        assert rules.service == SERVICE
        for group in rules.document["groups"]:
            # Service configs allow multiples of 10s (Grafana's rule); Prometheus evaluates
            # every 1s.
            group["interval"] = "1s"
        path = tmp / rules.file_name
        path.write_text(yaml.safe_dump(rules.document, sort_keys=False), encoding="utf-8")
        rule_files.append(path)
    rule_file = tmp / f"{SERVICE}.rules.yaml"
    assert rule_file in rule_files and len(rule_files) == 2

    with contextlib.ExitStack() as stack:
        rx = stack.enter_context(OtlpReceiver())
        services: dict[str, Service] = {}
        for environment, faults in ((FAULTY, True), (HEALTHY, False)):
            service = Service(_service_env(rx, environment, faults), environment)
            stack.callback(service.stop)
            services[environment] = service
        am = stack.enter_context(AlertmanagerServer())
        prom = stack.enter_context(
            PrometheusServer(
                rule_files=rule_files,
                scrape_targets=[s.metrics_target for s in services.values()],
                alertmanager=am.address,
            )
        )
        for service in services.values():
            service.wait_ready()
        loads = {}
        for environment, service in services.items():
            load = Load(service.url)
            stack.callback(load.stop)
            loads[environment] = load
        wait_for(
            lambda: len(prom.query('up{job="service"} == 1')) == 2,
            30,
            what="both services scraped",
        )
        yield GoldenPath(
            prom, am, rx, services, loads, rendered, templates_dir, rule_file, rule_files
        )
