"""init() alone, in a real service process, exports real OTLP protobuf over both protocols."""

from __future__ import annotations

import pytest
from otlp_receiver import OtlpReceiver
from service_process import REPO, run_service

from platform_obs import conventions as c

SERVICE = f"""
import sys
sys.path.insert(0, {str(REPO / "examples" / "flask_service")!r})
import platform_obs
from opentelemetry import propagate, trace

handle = platform_obs.init(service_name="checkout", service_version="1.2.3", environment="test", team="payments")
import app as checkout
client = checkout.create_app().test_client()
tracer = trace.get_tracer("caller")
with tracer.start_as_current_span("client-call") as span:
    headers = {{}}
    propagate.inject(headers)
    ctx = span.get_span_context()
    print(f"client_trace={{ctx.trace_id:032x}}")
    print(f"client_span={{ctx.span_id:016x}}")
# Outside the caller's context: only the traceparent header carries it, as between two services.
assert client.get("/orders/17", headers=headers).status_code == 200
assert client.get("/orders/18?fail=1").status_code == 500
print("flushed=" + str(handle.shutdown(timeout=15)))
"""


@pytest.fixture
def receiver():
    with OtlpReceiver() as r:
        yield r


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_three_signals_reach_the_collector(receiver: OtlpReceiver, protocol: str) -> None:
    env = receiver.env(protocol)
    env["K8S_POD_NAME"] = "checkout-7d9f"
    env["GIT_COMMIT"] = "abc123"
    done = run_service(SERVICE, env)
    assert done.returncode == 0, done.stderr
    assert done.marker("flushed") == "True"

    # Resource: platform conventions on every signal, sent over the protocol asked for.
    spans = receiver.spans()
    assert spans and {s.protocol for s in spans} == {"grpc" if protocol == "grpc" else "http"}
    resource = spans[0].resource
    assert resource[c.SERVICE_NAME] == "checkout"
    assert resource[c.SERVICE_VERSION] == "1.2.3"
    assert resource[c.DEPLOYMENT_ENVIRONMENT] == "test"
    assert resource[c.TEAM] == "payments"
    assert resource["k8s.pod.name"] == "checkout-7d9f"
    assert resource[c.VCS_REVISION] == "abc123"
    assert len(resource[c.SERVICE_INSTANCE_ID]) == 36

    # Parentage across the request: the server span continues the caller's W3C trace context.
    client_trace, client_span = done.marker("client_trace"), done.marker("client_span")
    server = [s for s in spans if s.trace_id == client_trace and s.kind == "server"]
    assert len(server) == 1, [(s.name, s.kind) for s in spans]
    assert server[0].parent_span_id == client_span
    assert server[0].attributes[c.HTTP_ROUTE] == "/orders/<int:order_id>"

    # Metrics: stable HTTP semantic conventions in seconds, second-scale buckets, bounded attributes.
    durations = receiver.metric(c.HTTP_SERVER_REQUEST_DURATION.name)
    assert durations, sorted({m.name for m in receiver.metrics()})
    metric = durations[-1]
    assert metric.unit == "s" and metric.kind == "histogram"
    statuses = {p.attributes.get(c.HTTP_RESPONSE_STATUS_CODE) for p in metric.points}
    assert statuses == {200, 500}
    for point in metric.points:
        assert list(point.explicit_bounds) == list(c.DURATION_BUCKETS_SECONDS)
        assert set(point.attributes) <= set(c.HTTP_SERVER_REQUEST_DURATION.attributes)
    assert metric.resource[c.SERVICE_NAME] == "checkout"
    names = {m.name for m in receiver.metrics()}
    for runtime in (
        c.PROCESS_CPU_TIME,
        c.PROCESS_MEMORY_USAGE,
        c.PROCESS_THREAD_COUNT,
        c.CPYTHON_GC_COLLECTIONS,
    ):
        assert runtime.name in names

    # Logs: LogRecords whose attributes are the event fields, with the trace of the request.
    fetched = [entry for entry in receiver.logs() if entry.body == "order fetched"]
    assert len(fetched) == 1
    assert fetched[0].attributes["order_id"] == 17
    assert fetched[0].trace_id == client_trace
    assert fetched[0].severity_text == "INFO"
    failed = [entry for entry in receiver.logs() if entry.body == "request failed"]
    assert failed and failed[0].severity_text == "ERROR"
    assert failed[0].attributes["exception"][0]["exc_type"] == "InjectedFault"
    assert failed[0].attributes["exception.type"] == "InjectedFault"
    assert "injected failure" in failed[0].attributes["exception.message"]

    # The same events printed once each as JSON lines on stdout, with W3C ids.
    lines = [line for line in done.json_lines if line.get("event") == "order fetched"]
    assert len(lines) == 1
    assert lines[0]["trace_id"] == client_trace and len(lines[0]["span_id"]) == 16
