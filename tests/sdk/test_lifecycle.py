"""Lifecycle in real processes: idempotency, disabled mode, fork safety, collector down or hung."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from otlp_receiver import OtlpReceiver
from service_process import run_service, start_service

from platform_obs import conventions as c


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_second_identical_init_returns_same_handle_and_conflict_raises_cleanly() -> None:
    done = run_service(
        """
        import platform_obs
        from opentelemetry import trace
        a = platform_obs.init(service_name="checkout", traces_exporter="none", metrics_exporter="none", logs_exporter="none")
        b = platform_obs.init(service_name="checkout", traces_exporter="none", metrics_exporter="none", logs_exporter="none")
        print(f"same={a is b}")
        try:
            platform_obs.init(service_name="billing", traces_exporter="none", metrics_exporter="none", logs_exporter="none")
        except platform_obs.AlreadyInitialized as exc:
            print(f"conflict={exc}")
        print(f"still={trace.get_tracer_provider().resource.attributes['service.name']}")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.marker("same") == "True"
    assert "service_name: 'checkout' -> 'billing'" in done.marker("conflict")
    assert done.marker("still") == "checkout"


def test_failed_init_leaves_nothing_configured() -> None:
    done = run_service(
        """
        import logging
        import platform_obs
        from opentelemetry import trace
        try:
            platform_obs.init(service_name="checkout")
        except platform_obs.ConfigError as exc:
            print(f"error={exc}")
        print(f"proxy={type(trace.get_tracer_provider()).__name__}")
        print(f"handlers={len(logging.getLogger().handlers)}")
        """,
        env={"OTEL_TRACES_SAMPLER_ARG": "1.5"},
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.marker("error")
        == "environment variable OTEL_TRACES_SAMPLER_ARG has invalid value '1.5': expected a number between 0 and 1"
    )
    assert done.marker("proxy") == "ProxyTracerProvider"
    assert done.marker("handlers") == "0"


def test_sdk_disabled_is_a_working_noop_that_still_prints_logs() -> None:
    done = run_service(
        """
        import threading
        before = threading.active_count()
        import platform_obs
        from opentelemetry import trace
        handle = platform_obs.init(service_name="checkout")
        with trace.get_tracer("t").start_as_current_span("work") as span:
            platform_obs.get_logger("svc").info("still printed", n=1)
        print(f"disabled={handle.disabled}")
        print(f"recording={span.is_recording()}")
        print(f"threads={threading.active_count() - before}")
        print(f"shutdown={handle.shutdown()}")
        """,
        env={
            "OTEL_SDK_DISABLED": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
        },
    )
    assert done.returncode == 0, done.stderr
    assert done.marker("disabled") == "True"
    assert done.marker("recording") == "False"
    assert done.marker("threads") == "0"
    assert done.marker("shutdown") == "True"
    lines = done.json_lines
    assert [entry["event"] for entry in lines] == ["still printed"]
    assert lines[0]["service"] == "checkout" and "trace_id" not in lines[0]


def test_forked_child_exports_on_fresh_threads_with_its_own_instance_id() -> None:
    with OtlpReceiver() as receiver:
        done = run_service(
            """
            import os
            import platform_obs
            from opentelemetry import trace, metrics
            handle = platform_obs.init(service_name="forky")
            tracer = trace.get_tracer("t")
            orders = metrics.get_meter("m").create_counter("orders.placed")
            log = platform_obs.get_logger("svc")
            with tracer.start_as_current_span("before-fork"):
                log.info("parent line")
            pid = os.fork()
            if pid == 0:
                with tracer.start_as_current_span("in-child"):
                    log.info("child line")
                orders.add(1)
                ok = handle.shutdown(timeout=10)
                os._exit(0 if ok else 3)
            _, status = os.waitpid(pid, 0)
            print(f"child_status={os.waitstatus_to_exitcode(status)}")
            with tracer.start_as_current_span("after-fork"):
                pass
            print(f"parent_id={handle.resource.attributes['service.instance.id']}")
            print(f"flushed={handle.shutdown(timeout=10)}")
            """,
            env=receiver.env("grpc"),
        )
        assert done.returncode == 0, done.stderr
        assert done.marker("child_status") == "0"
        assert done.marker("flushed") == "True"
        by_name: dict[str, list] = {}
        for span in receiver.spans():
            by_name.setdefault(span.name, []).append(span)
        # Nothing lost, nothing duplicated: each span exactly once.
        assert {n: len(s) for n, s in by_name.items()} == {
            "before-fork": 1,
            "in-child": 1,
            "after-fork": 1,
        }
        parent_id = done.marker("parent_id")
        assert by_name["before-fork"][0].resource[c.SERVICE_INSTANCE_ID] == parent_id
        assert by_name["after-fork"][0].resource[c.SERVICE_INSTANCE_ID] == parent_id
        child_id = by_name["in-child"][0].resource[c.SERVICE_INSTANCE_ID]
        assert child_id != parent_id
        logs = {entry.body: entry for entry in receiver.logs()}
        assert logs["child line"].resource[c.SERVICE_INSTANCE_ID] == child_id
        assert [e.body for e in receiver.logs()].count("parent line") == 1
        child_orders = [
            m
            for m in receiver.metric("orders.placed")
            if m.resource[c.SERVICE_INSTANCE_ID] == child_id
        ]
        assert child_orders and child_orders[-1].points[0].value == 1


LOOP = """
import time, statistics
import platform_obs
from opentelemetry import trace, metrics
handle = platform_obs.init(service_name="loop", shutdown_timeout=2, log_format="json")
tracer = trace.get_tracer("t")
hist = metrics.get_meter("m").create_histogram("work.duration", unit="s")
log = platform_obs.get_logger("svc")
import io, contextlib
samples = []
sink = io.StringIO()
with contextlib.redirect_stdout(sink):
    for i in range(3000):
        t0 = time.perf_counter()
        with tracer.start_as_current_span("op") as span:
            span.set_attribute("i", i)
            log.info("op done", i=i)
            hist.record(0.01)
        samples.append(time.perf_counter() - t0)
samples.sort()
print(f"median_us={statistics.median(samples) * 1e6:.1f}")
print(f"p99_us={samples[int(len(samples) * 0.99)] * 1e6:.1f}")
print(f"max_ms={samples[-1] * 1e3:.1f}")
t0 = time.perf_counter()
ok = handle.shutdown()
print(f"shutdown_s={time.perf_counter() - t0:.2f}")
print(f"dropped={sum(handle.dropped.values())}")
"""


def _loop(env: dict[str, str]) -> dict[str, float]:
    done = run_service(LOOP, env, timeout=120)
    assert done.returncode == 0, done.stderr
    # No flood: whatever the SDK says about failing exports fits in a handful of lines.
    assert len(done.stderr.splitlines()) < 20, done.stderr
    stats = {
        k: float(done.marker(k)) for k in ("median_us", "p99_us", "max_ms", "shutdown_s", "dropped")
    }
    complaints = [e for e in done.json_lines if e.get("level") in ("warning", "error")]
    stats["complaints"] = len(complaints)
    return stats


@pytest.mark.parametrize("collector", ["nothing-listening", "hung"])
def test_collector_trouble_never_blocks_raises_or_floods(collector: str) -> None:
    disabled = _loop({"OTEL_SDK_DISABLED": "true"})
    with OtlpReceiver(hang=collector == "hung") as receiver:
        env = receiver.env("grpc")
        if collector == "nothing-listening":
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
        # Small queues and a short schedule so the loop really overflows them while the collector is out.
        env.update(
            {
                "OTEL_BSP_MAX_QUEUE_SIZE": "256",
                "OTEL_BSP_SCHEDULE_DELAY": "50",
                "OTEL_BLRP_MAX_QUEUE_SIZE": "256",
                "OTEL_EXPORTER_OTLP_TIMEOUT": "1000",
            }
        )
        down = _loop(env)
    # A blocking export would show up as milliseconds-to-seconds per call; the bound is generous
    # (this machine is shared) but orders of magnitude below an export timeout.
    assert down["median_us"] < disabled["median_us"] + 500, (down, disabled)
    assert down["max_ms"] < 250, down
    # One total deadline (2 s here), even with the collector hung.
    assert down["shutdown_s"] < 3.0, down
    assert down["dropped"] > 0
    assert down["complaints"] <= 6, down


def test_export_resumes_when_collector_returns() -> None:
    with OtlpReceiver() as receiver:
        receiver.set_status(503)
        service = start_service(
            """
            import sys
            import platform_obs
            from opentelemetry import trace
            handle = platform_obs.init(service_name="flappy", otlp_timeout=1)
            tracer = trace.get_tracer("t")
            with tracer.start_as_current_span("while-down"):
                pass
            handle.force_flush(timeout=5)
            print("down-done=1", flush=True)
            sys.stdin.readline()  # the test brings the collector back
            with tracer.start_as_current_span("after-recovery"):
                pass
            print(f"flushed={handle.shutdown(timeout=10)}")
            print(f"dropped={handle.dropped.get('spans', 0)}")
            """,
            env=receiver.env("grpc"),
        )
        assert service.stdout is not None and service.stdin is not None
        while (line := service.stdout.readline()) and line.strip() != "down-done=1":
            pass  # the SDK's (rate-limited) warnings about the failing export come first
        assert line.strip() == "down-done=1"
        receiver.set_status(None)
        out, err = service.communicate("go\n", timeout=60)
        assert service.returncode == 0, err
        names = [s.name for s in receiver.spans()]
        assert names == ["after-recovery"]
        assert "flushed=True" in out
        assert "dropped=1" in out


def test_missing_service_name_warns_and_falls_back_recognisably() -> None:
    done = run_service(
        """
        import platform_obs
        handle = platform_obs.init(traces_exporter="none", metrics_exporter="none", logs_exporter="none")
        print(f"name={handle.resource.attributes['service.name']}")
        platform_obs.get_logger("x").info("hello")
        """
    )
    assert done.returncode == 0, done.stderr
    expected = f"unknown_service:{Path(sys.executable).name}"
    assert done.marker("name") == expected
    assert "MissingServiceNameWarning" in done.stderr and "OTEL_SERVICE_NAME" in done.stderr
    assert done.json_lines[0]["service"] == expected
