"""``platform-obs doctor`` against real parts: the OTLP receiver (accepting, down, hung, 503), the
Grafana double (bad token, nothing applied, drift, in sync) and a real Prometheus scraping the
example service's pull endpoint (series present, missing, wrong environment, server down)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from fixtures_render import REPO, SLOS, config, write
from grafana_double import GrafanaDouble
from otlp_receiver import OtlpReceiver
from prometheus_servers import (
    PROMETHEUS_BINARIES,
    PrometheusServer,
    free_port,
    require_binary,
    wait_for,
)

from platform_obs import cli as cli_module
from platform_obs import conventions
from platform_obs.provisioning import doctor
from platform_obs.provisioning.grafana import Grafana
from platform_obs.provisioning.pipeline import build
from platform_obs.provisioning.spec import load_specs

SECRET = "glsa_doctor-SECRET-never-print-4f1c"
RUNBOOKS = "https://runbooks.acme.test/payments"


@pytest.fixture(autouse=True)
def _no_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings resolve like init(): from the working directory's pyproject.toml too. Use none.
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return write(tmp_path, config(tier=1, slos=SLOS, runbook_base_url=RUNBOOKS))


def by_name(results: list[doctor.CheckResult]) -> dict[str, doctor.CheckResult]:
    return {r.name: r for r in results}


def otlp_env(rx: OtlpReceiver, protocol: str = "grpc") -> dict[str, str]:
    return {**rx.env(protocol), "PLATFORM_OBS_ENVIRONMENT": "production"}


def invoke(cfg: Path, env: dict[str, str], *args: str) -> Result:
    base = {k: "" for k in os.environ if k.startswith(("OTEL_", "PLATFORM_OBS_", "GRAFANA_"))} | {
        "GRAFANA_URL": "",
        "GRAFANA_TOKEN": "",
    }
    return CliRunner().invoke(
        cli_module.cli, ["doctor", str(cfg), "--timeout", "1", *args], env=base | env
    )


# --- OTLP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_accepting_collector_gets_a_span_a_metric_point_and_a_log(protocol: str) -> None:
    with OtlpReceiver() as rx:
        results = by_name(doctor.check_otlp("checkout", otlp_env(rx, protocol), timeout=2))
        assert [r.status for r in results.values()] == ["ok", "ok", "ok"], results
        assert [s.name for s in rx.spans()] == [doctor.PROBE_NAME]
        assert [m.name for m in rx.metrics()] == ["platform_obs.doctor.probe"]
        assert [log.body for log in rx.logs()] == [doctor.PROBE_NAME]
        # Sent as the service, so it shows up where the service's data would.
        assert rx.spans()[0].resource["service.name"] == "checkout"
        assert rx.logs()[0].resource["deployment.environment.name"] == "production"
    endpoint = rx.grpc_endpoint if protocol == "grpc" else f"{rx.http_endpoint}/v1/traces"
    assert endpoint in results["otlp traces"].detail


def test_per_signal_endpoint_is_honoured_like_the_sdk() -> None:
    with OtlpReceiver() as rx, OtlpReceiver() as logs_rx:
        env = {**otlp_env(rx), "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": logs_rx.grpc_endpoint}
        results = by_name(doctor.check_otlp("checkout", env, timeout=2))
        assert all(r.status == "ok" for r in results.values()), results
        assert len(rx.logs()) == 0 and len(logs_rx.logs()) == 1
        assert len(rx.spans()) == 1


def test_collector_down_fails_fast_with_a_hint() -> None:
    rx = OtlpReceiver().start()
    env = otlp_env(rx)
    rx.stop()
    started = time.monotonic()
    results = doctor.check_otlp("checkout", env, timeout=2)
    assert time.monotonic() - started < 2
    port = env["OTEL_EXPORTER_OTLP_ENDPOINT"].rsplit(":", 1)[1]
    for r in results:
        assert r.status == "fail"
        assert f"nothing listening at 127.0.0.1:{port}" in r.detail
        assert "is the collector running? set OTEL_EXPORTER_OTLP_ENDPOINT" in r.hint


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_hung_collector_times_out_within_a_bound(protocol: str) -> None:
    with OtlpReceiver(hang=True) as rx:
        started = time.monotonic()
        results = doctor.check_otlp("checkout", otlp_env(rx, protocol), timeout=1)
        elapsed = time.monotonic() - started
    assert elapsed < 3 * (1 + 1.5), elapsed  # three signals, each bounded by the timeout
    for r in results:
        assert r.status == "fail" and "no answer from" in r.detail and "within 1s" in r.detail
        assert "hung or overloaded" in r.hint


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_collector_answering_503_fails(protocol: str) -> None:
    with OtlpReceiver() as rx:
        rx.set_status(503)
        results = doctor.check_otlp("checkout", otlp_env(rx, protocol), timeout=1)
        assert rx.requests["traces"] >= 1  # it did answer: the exporter got a 503
    assert [r.status for r in results] == ["fail"] * 3
    if protocol == "grpc":
        assert all("answered UNAVAILABLE" in r.detail for r in results), results
        assert "refuses data" in results[0].hint


def test_prometheus_metrics_exporter_skips_the_otlp_metrics_check() -> None:
    with OtlpReceiver() as rx:
        env = {**otlp_env(rx), "PLATFORM_OBS_METRICS_EXPORTER": "prometheus"}
        results = by_name(doctor.check_otlp("checkout", env, timeout=2))
    assert results["otlp metrics"].status == "skip"
    assert "--prometheus-url" in results["otlp metrics"].hint
    assert results["otlp traces"].status == "ok"


def test_invalid_sdk_settings_fail_like_init() -> None:
    [result] = doctor.check_otlp("checkout", {"OTEL_EXPORTER_OTLP_PROTOCOL": "udp"}, timeout=1)
    assert result.status == "fail"
    assert "OTEL_EXPORTER_OTLP_PROTOCOL has invalid value 'udp'" in result.detail


# --- the command --------------------------------------------------------------------------------


def test_cli_all_good_exits_0(cfg: Path) -> None:
    with OtlpReceiver() as rx:
        result = invoke(cfg, otlp_env(rx))
    assert result.exit_code == 0, result.output
    assert "\u2713 config" in result.output and "\u2713 otlp logs" in result.output
    assert "\u2013 prometheus" in result.output and "\u2013 grafana" in result.output
    assert result.output.rstrip().endswith("All checks passed (or were skipped).")


def test_cli_failures_exit_1_with_fix_lines(tmp_path: Path) -> None:
    bad = write(tmp_path, config(tier=1), "bad.yaml")  # breaks the tier-1 policy
    rx = OtlpReceiver().start()
    env = otlp_env(rx)
    rx.stop()
    result = invoke(bad, env)
    assert result.exit_code == 1
    assert "\u2717 config" in result.output and "tier1-availability-slo" in result.output
    assert f"fix: run `platform-obs validate {bad}`" in result.output
    assert "\u2717 otlp traces" in result.output
    assert "4 check(s) failed." in result.output


def test_cli_missing_config_points_at_scaffold(tmp_path: Path) -> None:
    with OtlpReceiver() as rx:
        result = invoke(tmp_path / "platform-obs.yaml", otlp_env(rx))
    assert result.exit_code == 1
    assert "no service config at" in result.output and "platform-obs scaffold" in result.output


# --- Grafana ------------------------------------------------------------------------------------


def grafana_env(grafana: GrafanaDouble, token: str | None = None) -> dict[str, str]:
    return {"GRAFANA_URL": grafana.url, "GRAFANA_TOKEN": token or grafana.token}


def test_wrong_grafana_token_fails_without_printing_it(cfg: Path) -> None:
    with GrafanaDouble(token="right-token") as grafana, OtlpReceiver() as rx:
        result = invoke(cfg, otlp_env(rx) | grafana_env(grafana, SECRET))
    assert result.exit_code == 1
    assert "\u2717 grafana token" in result.output and "401" in result.output
    assert "GRAFANA_TOKEN is wrong or expired" in result.output
    assert SECRET not in result.output


def test_grafana_nothing_applied_then_applied_then_drift(cfg: Path, grafana: GrafanaDouble) -> None:
    [spec] = load_specs([cfg])
    rendered = doctor.check_config(cfg)[1].rendered
    env = grafana_env(grafana)

    before = by_name(doctor.check_grafana(rendered, env, timeout=2))
    assert before["grafana token"].status == "ok"
    assert before["grafana contact points"].status == "ok"
    for name in ("grafana folders", "grafana dashboards", "grafana rule groups"):
        assert before[name].status == "fail" and "platform-obs apply" in before[name].hint
    assert "checkout-overview" in before["grafana dashboards"].detail
    assert before["grafana in sync"].status == "fail"

    applied = CliRunner().invoke(
        cli_module.cli, ["apply", str(cfg), "--no-promtool", "--no-progress"], env=env
    )
    assert applied.exit_code == 0, applied.output
    after = doctor.check_grafana(rendered, env, timeout=2)
    assert all(r.status == "ok" for r in after), after

    # Someone edits a dashboard in the UI (tags kept, so only a full comparison sees it).
    client = Grafana(grafana.url, grafana.token)
    live = grafana.dashboards["checkout-overview"]["dashboard"]
    client.save_dashboard({**live, "title": "edited in UI"}, "po-checkout", "ui")
    drift = by_name(doctor.check_grafana(rendered, env, timeout=2))
    assert drift["grafana dashboards"].status == "ok"
    assert drift["grafana in sync"].status == "fail"
    assert "update dashboard checkout-overview" in drift["grafana in sync"].detail
    assert spec.name == "checkout"


def test_grafana_unreachable() -> None:
    port = free_port()
    env = {"GRAFANA_URL": f"http://127.0.0.1:{port}", "GRAFANA_TOKEN": SECRET}
    [result] = doctor.check_grafana(None, env, timeout=1)
    assert result.status == "fail" and "unreachable" in result.detail
    assert "check GRAFANA_URL" in result.hint and SECRET not in result.detail


# --- Prometheus ---------------------------------------------------------------------------------


class ExampleService:
    """examples/flask_service on 127.0.0.1 with the SDK's Prometheus pull endpoint."""

    def __init__(self) -> None:
        self.metrics_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PLATFORM_OBS_"))}
        env |= {
            "PORT": "0",
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "PLATFORM_OBS_ENVIRONMENT": "production",
            "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
            "OTEL_EXPORTER_PROMETHEUS_PORT": str(self.metrics_port),
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
        }
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "examples" / "flask_service" / "app.py")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.url = ""
        ready = threading.Event()

        def read() -> None:
            assert self.process.stdout
            for line in self.process.stdout:
                if line.startswith("checkout listening on "):
                    self.url = line.split()[-1]
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(30) or not self.url:
            self.stop()
            raise RuntimeError("the example service did not start")

    def get(self, path: str) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with contextlib.suppress(OSError):  # 4xx/5xx answers are traffic too
            opener.open(self.url + path, timeout=5).read()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def slo_recording_rules(tmp: Path) -> Path:
    """The SLO recording rules rendered for the checkout config, evaluated every second."""
    (rules,) = [
        r
        for r in build([write(tmp, config(tier=1, slos=SLOS))], run_promtool=False).prometheus_rules
        if r.kind == "slo"
    ]
    for group in rules.document["groups"]:
        group["interval"] = "1s"
    path = tmp / rules.file_name
    path.write_text(yaml.safe_dump(rules.document), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Prometheus scraping the example service after it served some requests, with the
    service's SLO recording rules loaded."""
    require_binary(PROMETHEUS_BINARIES)
    rule_file = slo_recording_rules(tmp_path_factory.mktemp("slo-rules"))
    service = ExampleService()
    try:
        for i in range(5):
            service.get("/healthz")
            service.get(f"/orders/{i}")
        with PrometheusServer(
            scrape_targets=[f"127.0.0.1:{service.metrics_port}"], rule_files=[rule_file]
        ) as prom:
            series = conventions.HTTP_SERVER_REQUEST_DURATION.series("count")
            wait_for(
                lambda: (
                    service.get("/orders/1") is None  # traffic while scraped: SLIs get recorded
                    and prom.query(f'{series}{{service_name="checkout"}}')
                    and prom.query('process_cpu_time_seconds_total{service_name="checkout"}')
                    and len(prom.query("count by (slo) (slo:sli_error:ratio_rate5m)")) == 2
                ),
                30,
                what="the example service's series",
            )
            yield prom
    finally:
        service.stop()


def spec_for(tmp_path: Path, **overrides: object) -> doctor.ServiceSpec:
    [spec] = load_specs([write(tmp_path, config(**overrides))])
    return spec


def test_series_present_with_the_dashboards_labels(
    tmp_path: Path, scraped: PrometheusServer
) -> None:
    results = by_name(doctor.check_prometheus(scraped.url, spec_for(tmp_path), timeout=5))
    scheme = results.pop("label scheme")
    assert scheme.status == "ok" and "platform.metric_labels: promoted fits" in scheme.detail
    assert set(results) == {f"series {name}" for name in conventions.METRICS}
    for name, result in results.items():
        if name == f"series {conventions.TELEMETRY_DROPPED.name}":
            assert result.status == "skip" and "none: good" in result.detail
        else:
            assert result.status == "ok", result
            assert "(production)" in result.detail


def test_missing_series_say_which_services_exist(tmp_path: Path, scraped: PrometheusServer) -> None:
    results = doctor.check_prometheus(scraped.url, spec_for(tmp_path, service="orders"), timeout=5)
    duration = by_name(results)["series http.server.request.duration"]
    assert duration.status == "fail"
    assert 'no series for service_name="orders"' in duration.detail
    assert "found for service_name: checkout" in duration.detail
    assert 'is init() called with the same service name (service_name="orders")' in duration.hint


def test_series_in_another_environment_fail(tmp_path: Path, scraped: PrometheusServer) -> None:
    spec = spec_for(tmp_path, environments=["staging"])
    result = by_name(doctor.check_prometheus(scraped.url, spec, timeout=5))[
        "series process.cpu.time"
    ]
    assert result.status == "fail"
    assert "series only for deployment_environment_name production" in result.detail
    assert "the alerts watch staging" in result.detail


def test_no_series_at_all_and_prometheus_down(tmp_path: Path) -> None:
    require_binary(PROMETHEUS_BINARIES)
    spec = spec_for(tmp_path)
    with PrometheusServer() as empty:
        results = by_name(doctor.check_prometheus(empty.url, spec, timeout=5))
    cpu = results["series process.cpu.time"]
    assert cpu.status == "fail" and "no process_cpu_time_seconds_total series at all" in cpu.detail
    assert "is Prometheus scraping/receiving" in cpu.hint
    [down] = doctor.check_prometheus(empty.url, spec, timeout=1)
    assert down.status == "fail" and "nothing listening at" in down.detail
    assert "is Prometheus running?" in down.hint


def test_cli_with_prometheus_url(cfg: Path, scraped: PrometheusServer) -> None:
    with OtlpReceiver() as rx:
        result = invoke(cfg, otlp_env(rx), "--prometheus-url", scraped.url, "--timeout", "5")
    assert result.exit_code == 0, result.output
    assert "\u2713 series http.server.request.duration" in result.output


def test_grafana_receiver_that_does_not_exist_fails_with_the_existing_ones(cfg: Path) -> None:
    rendered = doctor.check_config(cfg)[1].rendered
    with GrafanaDouble(contact_points=("grafana-default-email", "ops")) as grafana:
        results = by_name(doctor.check_grafana(rendered, grafana_env(grafana), timeout=2))
    points = results["grafana contact points"]
    assert points.status == "fail"
    assert "payments-oncall" in points.detail and "does not exist" in points.detail
    assert "grafana-default-email, ops" in points.hint


def test_slo_recordings_present_or_the_rule_file_to_load(
    tmp_path: Path, scraped: PrometheusServer
) -> None:
    with_slos = spec_for(tmp_path, slos=SLOS)
    results = by_name(doctor.check_prometheus(scraped.url, with_slos, timeout=5))
    assert results["slo recordings"].status == "ok", results["slo recordings"]
    assert "slo recordings" not in by_name(
        doctor.check_prometheus(scraped.url, spec_for(tmp_path), timeout=5)
    )
    # a service nobody called: nothing to record, said as such
    idle = spec_for(tmp_path, service="orders", slos=SLOS)
    skipped = by_name(doctor.check_prometheus(scraped.url, idle, timeout=5))["slo recordings"]
    assert skipped.status == "skip" and "without traffic" in skipped.detail


def test_slo_recordings_missing_name_the_rule_file(tmp_path: Path) -> None:
    require_binary(PROMETHEUS_BINARIES)
    service = ExampleService()
    try:
        # a Prometheus without the .slo.rules.yaml file: traffic, but nothing recorded
        with PrometheusServer(scrape_targets=[f"127.0.0.1:{service.metrics_port}"]) as prom:
            count = conventions.HTTP_SERVER_REQUEST_DURATION.series("count")
            wait_for(
                lambda: (
                    service.get("/orders/1") is None
                    and prom.query(f'sum(increase({count}{{service_name="checkout"}}[5m])) > 0')
                ),
                30,
                what="traffic in Prometheus",
            )
            spec = spec_for(tmp_path, slos=SLOS)
            missing = by_name(doctor.check_prometheus(prom.url, spec, timeout=5))["slo recordings"]
    finally:
        service.stop()
    assert missing.status == "fail"
    assert "slo availability, latency" in missing.detail
    assert "SLO dashboard is empty" in missing.detail
    assert "prometheus/checkout.slo.rules.yaml" in missing.hint
