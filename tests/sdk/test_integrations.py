"""init() beside the rest of the ecosystem: Prometheus pull endpoint, opentelemetry-instrument."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from service_process import REPO, run_service

from platform_obs import conventions as c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_prometheus_pull_endpoint_serves_conventions_names_with_promoted_labels() -> None:
    port = _free_port()
    done = run_service(
        f"""
        import sys, urllib.request
        sys.path.insert(0, {str(REPO / "examples" / "flask_service")!r})
        import platform_obs
        platform_obs.init(service_name="checkout", environment="test", team="payments", traces_exporter="none",
                          logs_exporter="none", metrics_exporter="prometheus", prometheus_host="127.0.0.1",
                          prometheus_port={port})
        import app as checkout
        client = checkout.create_app().test_client()
        client.get("/orders/1"); client.get("/orders/2?fail=1")
        print(urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
        """
    )
    assert done.returncode == 0, done.stderr
    exposition = done.stdout
    duration = c.HTTP_SERVER_REQUEST_DURATION
    # The conventions' Prometheus names are the ones the real exporter writes.
    for series in (
        duration.series("bucket"),
        duration.series("count"),
        duration.series("sum"),
        c.PROCESS_CPU_TIME.series(),
        c.PROCESS_MEMORY_USAGE.series(),
        c.PROCESS_THREAD_COUNT.series(),
        c.CPYTHON_GC_COLLECTIONS.series(),
    ):
        assert f"\n{series}{{" in exposition, series
    count_lines = [
        line for line in exposition.splitlines() if line.startswith(duration.series("count") + "{")
    ]
    assert count_lines
    labels = count_lines[0]
    for attribute, value in (
        (c.SERVICE_NAME, "checkout"),
        (c.DEPLOYMENT_ENVIRONMENT, "test"),
        (c.TEAM, "payments"),
    ):
        assert f'{c.prom_label(attribute)}="{value}"' in labels, labels
    assert f'{duration.label(c.HTTP_ROUTE)}="/orders/<int:order_id>"' in labels
    assert 'le="0.005"' in exposition  # second-scale buckets


@pytest.mark.skipif(
    not (Path(sys.executable).parent / "opentelemetry-instrument").exists(),
    reason="opentelemetry-instrument not installed",
)
def test_no_double_instrumentation_after_opentelemetry_instrument() -> None:
    launcher = str(Path(sys.executable).parent / "opentelemetry-instrument")
    code = f"""
import sys
sys.path.insert(0, {str(REPO / "examples" / "flask_service")!r})
import platform_obs
from platform_obs.testing import capture
telemetry = capture(service_name="checkout", instrument=True)
print("instrumented=" + ",".join(platform_obs.init(service_name="checkout").instrumented))
import app as checkout
checkout.create_app().test_client().get("/orders/1")
print(f"server_spans={{len(telemetry.spans('GET /orders/<int:order_id>'))}}")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PLATFORM_OBS_"))}
    env.update(
        {
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
        }
    )
    proc = subprocess.run(
        [launcher, sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    instrumented = next(
        line for line in proc.stdout.splitlines() if line.startswith("instrumented=")
    ).split("=")[1]
    assert "flask" not in instrumented.split(",")
    assert "server_spans=1" in proc.stdout


def test_w3c_tracecontext_and_baggage_are_propagated() -> None:
    done = run_service(
        """
        import platform_obs
        from opentelemetry import baggage, context, propagate, trace
        platform_obs.init(service_name="s", traces_exporter="none", metrics_exporter="none", logs_exporter="none")
        token = context.attach(baggage.set_baggage("tenant", "acme"))
        with trace.get_tracer("t").start_as_current_span("out") as span:
            carrier = {}
            propagate.inject(carrier)
            print(f"trace={span.get_span_context().trace_id:032x}")
        print(f"traceparent={carrier['traceparent']}")
        print(f"baggage={carrier['baggage']}")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.marker("traceparent").split("-")[1] == done.marker("trace")
    assert done.marker("baggage") == "tenant=acme"


def test_attribute_limits_follow_the_spec_precedence() -> None:
    code = """
        import platform_obs
        from opentelemetry import trace
        platform_obs.init(service_name="s", traces_exporter="none", metrics_exporter="none", logs_exporter="none"{extra})
        with trace.get_tracer("t").start_as_current_span("x") as span:
            for i in range(10):
                span.set_attribute(f"k{{i}}", "v" * 50)
        print(f"count={{len(span.attributes)}}")
        print(f"length={{len(span.attributes['k9'])}}")
        """
    env = {
        "OTEL_ATTRIBUTE_COUNT_LIMIT": "5",
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "3",
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "8",
    }
    by_env = run_service(code.format(extra=""), env)
    assert by_env.returncode == 0, by_env.stderr
    assert by_env.marker("count") == "3"  # the span-specific variable beats the general one
    assert by_env.marker("length") == "8"
    by_argument = run_service(code.format(extra=", attribute_count_limit=7"), env)
    assert by_argument.marker("count") == "7"  # an init() argument beats both


def test_two_trace_exporters_both_receive_each_span() -> None:
    from otlp_receiver import OtlpReceiver

    with OtlpReceiver() as receiver:
        env = {**receiver.env("grpc"), "OTEL_TRACES_EXPORTER": "otlp,console"}
        done = run_service(
            """
            import platform_obs
            from opentelemetry import trace
            handle = platform_obs.init(service_name="s", metrics_exporter="none", logs_exporter="none")
            with trace.get_tracer("t").start_as_current_span("twice"):
                pass
            print(f"flushed={handle.shutdown(timeout=10)}")
            """,
            env,
        )
        assert done.returncode == 0, done.stderr
        assert [s.name for s in receiver.spans()] == ["twice"]
        assert '"name": "twice"' in done.stdout  # the console exporter's JSON
