"""The checkout example, run as a real process, exports what its traffic implies.

The service runs as a subprocess (init() instruments Flask process-wide, so it cannot share the
test process), points at an :class:`OtlpReceiver`, and gets a known mix of requests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from otlp_receiver import OtlpReceiver
from service_process import example_module

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "flask_service"

traffic = example_module("traffic")

REQUESTS, ERROR_RATIO, SLOW_RATIO = 40, 0.1, 0.05


class Service:
    """The example app in a subprocess; its stdout is drained so log output can never block it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLE / "app.py")],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.output: list[str] = []
        self.stderr = ""
        self.url = ""
        ready = threading.Event()

        def drain() -> None:
            assert self.process.stdout
            for line in self.process.stdout:
                self.output.append(line)
                if line.startswith("checkout listening on "):
                    self.url = line.split()[-1]
                    ready.set()
            ready.set()  # exited before listening

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(30) or not self.url:
            self.stop()
            pytest.fail(f"checkout did not start:\n{''.join(self.output)}\n{self.stderr}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, self.stderr = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, self.stderr = self.process.communicate()
        return self.process.returncode


@pytest.fixture(params=["grpc", "http/protobuf"])
def run(request: pytest.FixtureRequest) -> Iterator[tuple[OtlpReceiver, Service]]:
    with OtlpReceiver() as rx:
        # The developer's own OTEL_/PLATFORM_OBS_ settings must not redirect the service.
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PLATFORM_OBS_"))
        }
        env = {
            **inherited,
            **rx.env(request.param),
            "PORT": "0",
            "PYTHONPATH": str(ROOT),
            # Short export intervals keep the test fast; shutdown flushes the rest anyway.
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_BLRP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        }
        service = Service(env)
        try:
            yield rx, service
        finally:
            service.stop()


def test_traffic_shows_up_as_spans_logs_and_metrics(
    run: tuple[OtlpReceiver, Service],
) -> None:
    rx, service = run
    counts = traffic.generate(
        service.url, REQUESTS, ERROR_RATIO, SLOW_RATIO, slow_ms=100, concurrency=4, seed=3
    )
    errors = round(REQUESTS * ERROR_RATIO)
    assert counts[500] == errors
    assert counts[200] + counts[201] == REQUESTS - errors
    assert service.stop() == 0, service.stderr  # SIGTERM: clean exit after flushing

    server_spans = [s for s in rx.spans() if s.kind == "server"]
    assert len(server_spans) == REQUESTS
    assert {s.resource["service.name"] for s in server_spans} == {"checkout"}
    assert {s.attributes.get("http.route") for s in server_spans} <= {
        "/orders/<int:order_id>",
        "/orders",
    }
    failed = [s for s in server_spans if s.status_code == "error"]
    assert len(failed) == errors

    # Each failure is logged once, with its traceback, inside the failing request's trace.
    failure_logs = [log for log in rx.logs() if log.body == "request failed"]
    assert len(failure_logs) == errors
    assert {log.trace_id for log in failure_logs} == {s.trace_id for s in failed}
    assert all(log.severity_number >= 17 for log in failure_logs)  # ERROR and above
    fetched = [log for log in rx.logs() if log.body == "order fetched"]
    assert fetched and all({"order_id", "amount"} <= set(log.attributes) for log in fetched)

    # Cumulative histogram: the last export counts every request.
    durations = rx.metric("http.server.request.duration")
    assert durations, sorted({m.name for m in rx.metrics()})
    last = durations[-1]
    assert last.unit == "s" and last.kind == "histogram"
    assert sum(p.count or 0 for p in last.points) == REQUESTS
    statuses = {p.attributes.get("http.response.status_code") for p in last.points}
    assert 500 in statuses
