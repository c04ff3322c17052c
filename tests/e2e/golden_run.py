"""The golden-path run shared by the end-to-end tests: real Prometheus, Alertmanager, OTLP receiver
and two processes of the example service, set up once per module and metric path, always torn down.

The metric paths (docs/metric-pipeline.md):

* ``pull``: Prometheus 2 scrapes the SDK's ``/metrics`` endpoint;
* ``collector``: the services export OTLP to a real Collector running the reference config
  (examples/collector/otel-collector.yaml), which remote-writes to Prometheus 2 and sends traces
  to the "Tempo" receiver and logs to the "Loki" receiver (OTLP receivers of this test suite);
* ``prometheus3``: OTLP straight into Prometheus 3 with ``otlp.promote_resource_attributes``;
* ``prometheus3-target-info``: the same without promotion (only ``job``/``instance`` and
  ``target_info``), with the platform's ``metric_labels: target_info`` setting.
"""

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
from collector_server import CollectorServer
from otlp_receiver import OtlpReceiver, ReceivedLog
from peers import peer_binary
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

from platform_obs import conventions
from platform_obs.conventions import LOG_FIELDS
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


PULL, COLLECTOR, PROMETHEUS3, PROMETHEUS3_TARGET_INFO = (
    "pull",
    "collector",
    "prometheus3",
    "prometheus3-target-info",
)
METRIC_PATHS = (PULL, COLLECTOR, PROMETHEUS3, PROMETHEUS3_TARGET_INFO)
#: The platform policy setting each path renders with (policies/platform.yaml, platform:).
METRIC_LABELS = {PROMETHEUS3_TARGET_INFO: "target_info"}
#: job as OTLP ingestion sets it (service.namespace/service.name); the scrape job otherwise.
OTLP_JOB = f"{NAMESPACE}/{SERVICE}"


class Service:
    """The example app in a subprocess; stdout is drained on a thread so logging never blocks it."""

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.name = name
        self.metrics_port = int(env.get("OTEL_EXPORTER_PROMETHEUS_PORT", "0"))
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


def loki_line(record: ReceivedLog) -> dict[str, Any]:
    """The line Loki stores for an OTLP log record: the body as a string (a map body as JSON)."""
    body = record.body
    if isinstance(body, dict):
        return dict(body)
    return json.loads(body) if isinstance(body, str) and body.startswith("{") else {"": body}


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
    metric_path: str = PULL
    #: What the Collector's loki-bound exporter sent (collector path only).
    loki: OtlpReceiver | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def job(self) -> str:
        """``job`` of the services' series on this path."""
        return "service" if self.metric_path == PULL else OTLP_JOB

    @property
    def promoted(self) -> bool:
        """Whether series carry the promoted resource attributes as labels."""
        return self.metric_path != PROMETHEUS3_TARGET_INFO

    def select(self, series: str, environment: str) -> str:
        """An instant vector of the service's ``series`` in one environment, on this path."""
        env_label = conventions.prom_label(conventions.DEPLOYMENT_ENVIRONMENT)
        if self.promoted:
            service_label = conventions.prom_label(conventions.SERVICE_NAME)
            return f'{series}{{{service_label}="{SERVICE}", {env_label}="{environment}"}}'
        return (
            f'({series}{{job="{self.job}"}} * on (job, instance) group_left ({env_label}) '
            f'target_info{{job="{self.job}", {env_label}="{environment}"}})'
        )

    def loki_streams(self) -> list[tuple[dict[str, str], dict[str, Any]]]:
        """(stream labels, line) of every log record as Loki would store it.

        On the collector path these are what the Collector's loki-bound exporter really sent.
        Elsewhere the SDK's records reach the test receiver directly, and the reference
        config's ``transform/loki_json_line`` is applied here as documented.
        """
        service = conventions.SERVICE_NAME
        if self.loki is not None:
            return [
                ({conventions.LOKI_SERVICE_LABEL: r.resource.get(service, "")}, loki_line(r))
                for r in self.loki.logs()
            ]
        f = LOG_FIELDS
        out = []
        for r in self.receiver.logs():
            line = {
                **r.attributes,
                f.event: r.body,
                f.level: r.severity_text.lower(),
                f.service: r.resource[service],
                f.environment: r.resource[conventions.DEPLOYMENT_ENVIRONMENT],
            }
            if r.trace_id:
                line.update({f.trace_id: r.trace_id, f.span_id: r.span_id})
            out.append(({conventions.LOKI_SERVICE_LABEL: r.resource.get(service, "")}, line))
        return out


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


def _metrics_env(metric_path: str, otlp_metrics: str) -> dict[str, str]:
    """How the service exports metrics on this path."""
    if metric_path == PULL:
        # The SDK's pull endpoint, scraped by Prometheus (docs/metric-pipeline.md).
        return {
            "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
            "OTEL_EXPORTER_PROMETHEUS_PORT": str(free_port()),
        }
    env = {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_METRIC_EXPORT_INTERVAL": "1000"}
    if metric_path in (PROMETHEUS3, PROMETHEUS3_TARGET_INFO):
        env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] = otlp_metrics
        env["OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"] = "http/protobuf"
    return env


def _service_env(
    otlp: dict[str, str], metrics: dict[str, str], environment: str, faults: bool
) -> dict[str, str]:
    # The developer's own OTEL_/PLATFORM_OBS_ settings must not redirect the service.
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "PLATFORM_OBS_", "CHECKOUT_"))
    }
    return {
        **inherited,
        **otlp,
        **metrics,
        "PORT": "0",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "PLATFORM_OBS_LOG_FORMAT": "json",
        "PLATFORM_OBS_ENVIRONMENT": environment,
        "PLATFORM_OBS_TEAM": TEAM,
        "PLATFORM_OBS_SERVICE_NAMESPACE": NAMESPACE,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_BLRP_SCHEDULE_DELAY": "200",
        "CHECKOUT_FAIL_RATIO": str(FAIL_RATIO if faults else 0),
        "CHECKOUT_SLOW_RATIO": str(SLOW_RATIO if faults else 0),
        "CHECKOUT_SLOW_MS": str(SLOW_MS),
    }


def _policy(tmp: Path, metric_path: str) -> Path:
    """The packaged platform policy with this path's label scheme (``platform.metric_labels``)."""
    doc = yaml.safe_load((ROOT / "policies" / "platform.yaml").read_text(encoding="utf-8"))
    doc["platform"] = {"metric_labels": METRIC_LABELS.get(metric_path, "promoted")}
    path = tmp / "platform.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _prometheus3_config(alertmanager: str, promote: bool) -> str:
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "alerting": {
            "alertmanagers": [
                {"api_version": "v2", "static_configs": [{"targets": [alertmanager]}]}
            ]
        },
    }
    # docs/metric-pipeline.md, path 3. Scope labels (otel_scope_name) as on the other paths.
    config["otlp"] = {"promote_scope_metadata": True}
    if promote:
        config["otlp"]["promote_resource_attributes"] = list(
            conventions.PROMOTED_RESOURCE_ATTRIBUTES
        )
    return yaml.safe_dump(config, sort_keys=False)


def _prometheus(
    stack: contextlib.ExitStack,
    metric_path: str,
    rule_files: list[Path],
    alertmanager: str,
    scrape_targets: list[str],
) -> PrometheusServer:
    exemplars = "--enable-feature=exemplar-storage"
    if metric_path == PULL:
        server = PrometheusServer(
            rule_files=rule_files, scrape_targets=scrape_targets, alertmanager=alertmanager
        )
    elif metric_path == COLLECTOR:
        server = PrometheusServer(
            rule_files=rule_files,
            alertmanager=alertmanager,
            extra_args=["--web.enable-remote-write-receiver", exemplars],
        )
    else:
        server = PrometheusServer(
            _prometheus3_config(alertmanager, promote=metric_path == PROMETHEUS3),
            rule_files=rule_files,
            extra_args=["--web.enable-otlp-receiver", exemplars],
            binary=str(peer_binary("prometheus3")),
        )
    return stack.enter_context(server)


@pytest.fixture(scope="module", params=METRIC_PATHS)
def golden(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GoldenPath]:
    metric_path: str = request.param
    require_binary(PROMETHEUS_BINARIES)
    require_binary(ALERTMANAGER_BINARIES)
    collector_binary = peer_binary("collector") if metric_path == COLLECTOR else None
    if metric_path in (PROMETHEUS3, PROMETHEUS3_TARGET_INFO):
        peer_binary("prometheus3")  # built (or skipped) before anything starts
    tmp = tmp_path_factory.mktemp(f"golden-path-{metric_path}")

    # Render first: a template problem should fail before any process starts.
    templates_dir = tmp / "templates"
    for kind in ("dashboards", "alerts"):
        shutil.copytree(ROOT / kind, templates_dir / kind)
    scale_burn_rate_windows(templates_dir, WINDOW_SCALE)
    config_dir = tmp / "config"
    config_dir.mkdir()
    (config_dir / "platform-obs.yaml").write_text(SERVICE_CONFIG, encoding="utf-8")
    rendered = build(
        [config_dir], templates_dir=templates_dir, policy_file=_policy(tmp, metric_path)
    )
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
        rx = stack.enter_context(OtlpReceiver())  # "Tempo" (and the SDK's logs off the collector)
        metrics_envs = {env: _metrics_env(metric_path, "") for env in (FAULTY, HEALTHY)}
        am = stack.enter_context(AlertmanagerServer())
        prom = _prometheus(
            stack,
            metric_path,
            rule_files,
            am.address,
            [f"127.0.0.1:{e['OTEL_EXPORTER_PROMETHEUS_PORT']}" for e in metrics_envs.values()]
            if metric_path == PULL
            else [],
        )
        otlp = rx.env("grpc")
        loki = None
        if collector_binary is not None:
            loki = stack.enter_context(OtlpReceiver())
            collector = stack.enter_context(
                CollectorServer(
                    collector_binary,
                    remote_write_url=f"{prom.url}/api/v1/write",
                    tempo_endpoint=rx.grpc_endpoint.removeprefix("http://"),
                    loki_endpoint=f"{loki.http_endpoint}/otlp",
                )
            )
            otlp = collector.otlp_env()
        elif metric_path != PULL:
            metrics_envs = {
                env: _metrics_env(metric_path, f"{prom.url}/api/v1/otlp/v1/metrics")
                for env in (FAULTY, HEALTHY)
            }
        services: dict[str, Service] = {}
        for environment, faults in ((FAULTY, True), (HEALTHY, False)):
            env = _service_env(otlp, metrics_envs[environment], environment, faults)
            service = Service(env, environment)
            stack.callback(service.stop)
            services[environment] = service
        for service in services.values():
            service.wait_ready()
        loads = {}
        for environment, service in services.items():
            load = Load(service.url)
            stack.callback(load.stop)
            loads[environment] = load
        count = conventions.HTTP_SERVER_REQUEST_DURATION.series("count")
        job = "service" if metric_path == PULL else OTLP_JOB
        wait_for(
            lambda: len(prom.query(f'count by (instance) ({count}{{job="{job}"}})')) == 2,
            60,
            what=f"request metrics of both services ({metric_path})",
        )
        yield GoldenPath(
            prom,
            am,
            rx,
            services,
            loads,
            rendered,
            templates_dir,
            rule_file,
            rule_files,
            metric_path=metric_path,
            loki=loki,
        )
