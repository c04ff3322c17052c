"""The test OTLP receiver, proven with the plain OpenTelemetry SDK and its OTLP exporters.

Every test builds its own providers (never the global ones) so tests stay independent.
"""

from __future__ import annotations

import gzip
import http.client
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from opentelemetry import trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_receiver import OtlpReceiver, any_value

PROTOCOLS = ("grpc", "http")
RESOURCE_ATTRS = {"service.name": "receiver-test", "deployment.environment.name": "test"}

_EXPORTERS: dict[str, dict[str, Any]] = {
    "grpc": {"traces": GrpcSpanExporter, "metrics": GrpcMetricExporter, "logs": GrpcLogExporter},
    "http": {"traces": HttpSpanExporter, "metrics": HttpMetricExporter, "logs": HttpLogExporter},
}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as rx:
        yield rx


def env_exporter(
    rx: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str, signal: str
) -> Any:
    """An exporter configured only through ``rx.env()``, as an application would be."""
    for key, value in rx.env(protocol).items():
        monkeypatch.setenv(key, value)
    return _EXPORTERS[protocol][signal]()


def span_exporter(rx: OtlpReceiver, protocol: str, timeout: float) -> Any:
    if protocol == "grpc":
        return GrpcSpanExporter(endpoint=rx.grpc_endpoint, timeout=timeout)
    return HttpSpanExporter(endpoint=f"{rx.http_endpoint}/v1/traces", timeout=timeout)


def finished_spans(count: int = 1) -> list[ReadableSpan]:
    """Finished spans to hand to an exporter directly (so its export result is observable)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(RESOURCE_ATTRS))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("direct")
    for i in range(count):
        tracer.start_span(f"span-{i}").end()
    provider.shutdown()
    return list(memory.get_finished_spans())


# --- the three signals over both transports ------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "compression"), [("grpc", None), ("http", None), ("http", "gzip")]
)
def test_parent_and_child_span_arrive_with_resource(
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    protocol: str,
    compression: str | None,
) -> None:
    if compression:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", compression)
    provider = TracerProvider(resource=Resource.create(RESOURCE_ATTRS))
    provider.add_span_processor(
        BatchSpanProcessor(env_exporter(receiver, monkeypatch, protocol, "traces"))
    )
    tracer = provider.get_tracer("receiver.test", "1.2.3")
    try:
        with (
            tracer.start_as_current_span("GET /orders", kind=trace.SpanKind.SERVER) as parent,
            tracer.start_as_current_span("db.query", attributes={"db.rows": 3}) as child,
        ):
            child.set_status(trace.Status(trace.StatusCode.ERROR, "boom"))
        assert provider.force_flush(5_000)
        assert receiver.wait_for(lambda r: len(r.spans()) >= 2, timeout=5)
    finally:
        provider.shutdown()

    spans = {s.name: s for s in receiver.spans()}
    assert set(spans) == {"GET /orders", "db.query"}
    p, c = spans["GET /orders"], spans["db.query"]
    assert p.trace_id == format(parent.get_span_context().trace_id, "032x")
    assert p.span_id == format(parent.get_span_context().span_id, "016x")
    assert len(p.trace_id) == 32 and len(p.span_id) == 16
    assert p.parent_span_id == ""
    assert c.trace_id == p.trace_id
    assert c.parent_span_id == p.span_id
    assert c.span_id == format(child.get_span_context().span_id, "016x")
    assert p.kind == "server" and c.kind == "internal"
    assert c.attributes == {"db.rows": 3}
    assert (c.status_code, c.status_message) == ("error", "boom")
    assert p.status_code == "unset"
    assert (p.scope, p.scope_version) == ("receiver.test", "1.2.3")
    assert p.end_time_unix_nano >= c.end_time_unix_nano > c.start_time_unix_nano
    for span in (p, c):
        assert span.protocol == protocol
        assert span.resource["service.name"] == "receiver-test"
        assert span.resource["deployment.environment.name"] == "test"
    assert receiver.requests["traces"] >= 1
    assert receiver.requests["metrics"] == receiver.requests["logs"] == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_counter_and_histogram_arrive(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    # A long interval: the test flushes explicitly instead of racing the timer.
    reader = PeriodicExportingMetricReader(
        env_exporter(receiver, monkeypatch, protocol, "metrics"), export_interval_millis=60_000
    )
    provider = MeterProvider(resource=Resource.create(RESOURCE_ATTRS), metric_readers=[reader])
    meter = provider.get_meter("receiver.test")
    try:
        orders = meter.create_counter("orders.placed", unit="{order}", description="Orders.")
        orders.add(2, {"region": "eu"})
        orders.add(1, {"region": "eu"})
        orders.add(5, {"region": "us"})
        latency = meter.create_histogram("checkout.duration", unit="s")
        for value in (0.2, 1.5, 7.0):
            latency.record(value, {"route": "/orders"})
        assert provider.force_flush(5_000)
        assert receiver.wait_for(lambda r: bool(r.metric("checkout.duration")), timeout=5)
    finally:
        provider.shutdown()

    counter = receiver.metric("orders.placed")[0]
    assert (counter.kind, counter.unit, counter.description) == ("sum", "{order}", "Orders.")
    assert counter.is_monotonic is True and counter.temporality == "cumulative"
    assert {p.attributes["region"]: p.value for p in counter.points} == {"eu": 3, "us": 5}
    assert counter.resource["service.name"] == "receiver-test"
    assert (counter.scope, counter.protocol) == ("receiver.test", protocol)

    hist = receiver.metric("checkout.duration")[0]
    assert (hist.kind, hist.unit) == ("histogram", "s")
    (point,) = hist.points
    assert point.attributes == {"route": "/orders"}
    assert point.count == 3
    assert point.sum == pytest.approx(8.7)
    assert (point.min, point.max) == (0.2, 7.0)
    assert len(point.bucket_counts) == len(point.explicit_bounds) + 1
    assert sum(point.bucket_counts) == 3
    assert receiver.requests["metrics"] >= 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_log_record_arrives_with_attributes_and_trace_context(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    logger_provider = LoggerProvider(resource=Resource.create(RESOURCE_ATTRS))
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(env_exporter(receiver, monkeypatch, protocol, "logs"))
    )
    tracer = TracerProvider(resource=Resource.create(RESOURCE_ATTRS)).get_tracer("t")
    otel_logger = logger_provider.get_logger("receiver.test")
    try:
        with tracer.start_as_current_span("handle") as span:
            otel_logger.emit(
                LogRecord(
                    body="order placed",
                    severity_text="INFO",
                    severity_number=SeverityNumber.INFO,
                    attributes={
                        "order_id": 42,
                        "amount": 9.5,
                        "paid": True,
                        "tags": ("a", "b"),
                    },
                )
            )
        # Outside any span, with a structured body.
        otel_logger.emit(
            LogRecord(
                body={"event": "shutdown", "pending": [1, 2]},
                severity_text="WARN",
                severity_number=SeverityNumber.WARN,
            )
        )
        assert logger_provider.force_flush(5_000)
        assert receiver.wait_for(lambda r: len(r.logs()) >= 2, timeout=5)
    finally:
        logger_provider.shutdown()

    by_severity = {log.severity_text: log for log in receiver.logs()}
    info, warn = by_severity["INFO"], by_severity["WARN"]
    assert info.body == "order placed"
    assert info.severity_number == SeverityNumber.INFO.value
    assert info.attributes == {"order_id": 42, "amount": 9.5, "paid": True, "tags": ["a", "b"]}
    assert info.trace_id == format(span.get_span_context().trace_id, "032x")
    assert info.span_id == format(span.get_span_context().span_id, "016x")
    assert (info.scope, info.protocol) == ("receiver.test", protocol)
    assert info.resource["service.name"] == "receiver-test"
    assert warn.body == {"event": "shutdown", "pending": [1, 2]}
    assert (warn.trace_id, warn.span_id) == ("", "")


# --- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hung_receiver_times_out_exports_and_stops_promptly(protocol: str) -> None:
    rx = OtlpReceiver(hang=True).start()
    try:
        exporter = span_exporter(rx, protocol, timeout=1)
        started = time.monotonic()
        result = exporter.export(finished_spans())
        elapsed = time.monotonic() - started
        exporter.shutdown()
        assert result is SpanExportResult.FAILURE
        assert elapsed < 5, f"export took {elapsed:.1f}s despite timeout=1"
        assert rx.requests["traces"] >= 1  # the request did reach the receiver
        assert rx.spans() == []
    finally:
        started = time.monotonic()
        rx.stop()
        assert time.monotonic() - started < 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hung_receiver_stop_releases_an_export_in_flight(protocol: str) -> None:
    """stop() must not wait for a client that is still waiting on a hung request."""
    rx = OtlpReceiver(hang=True).start()
    exporter = span_exporter(rx, protocol, timeout=30)
    results: list[SpanExportResult] = []
    worker = threading.Thread(target=lambda: results.append(exporter.export(finished_spans())))
    worker.start()
    assert rx.wait_for(lambda r: r.requests["traces"] >= 1, timeout=5)
    started = time.monotonic()
    rx.stop()
    assert time.monotonic() - started < 2
    exporter.shutdown()  # ends the exporter's retry backoff
    worker.join(10)
    assert not worker.is_alive()
    assert results == [SpanExportResult.FAILURE]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_set_status_fails_exports_until_reset(receiver: OtlpReceiver, protocol: str) -> None:
    exporter = span_exporter(receiver, protocol, timeout=1)
    try:
        receiver.set_status(503)
        assert exporter.export(finished_spans()) is SpanExportResult.FAILURE
        assert receiver.requests["traces"] >= 1
        assert receiver.spans() == []

        receiver.set_status(None)
        assert exporter.export(finished_spans(2)) is SpanExportResult.SUCCESS
        assert sorted(s.name for s in receiver.spans()) == ["span-0", "span-1"]
    finally:
        exporter.shutdown()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_non_retryable_status_is_not_retried(receiver: OtlpReceiver, protocol: str) -> None:
    exporter = span_exporter(receiver, protocol, timeout=5)
    receiver.set_status(400)
    try:
        assert exporter.export(finished_spans()) is SpanExportResult.FAILURE
        assert receiver.requests["traces"] == 1
    finally:
        exporter.shutdown()


def test_stopped_receiver_refuses_kept_alive_http_connections() -> None:
    rx = OtlpReceiver().start()
    exporter = span_exporter(rx, "http", timeout=1)
    try:
        assert exporter.export(finished_spans()) is SpanExportResult.SUCCESS
        rx.stop()
        assert exporter.export(finished_spans()) is SpanExportResult.FAILURE
    finally:
        exporter.shutdown()
        rx.stop()


# --- decoding and HTTP edge cases ---------------------------------------------------------------


def test_any_value_decodes_nested_values() -> None:
    value = AnyValue(
        kvlist_value=KeyValueList(
            values=[
                KeyValue(key="s", value=AnyValue(string_value="x")),
                KeyValue(key="i", value=AnyValue(int_value=-3)),
                KeyValue(key="d", value=AnyValue(double_value=0.5)),
                KeyValue(key="b", value=AnyValue(bool_value=False)),
                KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\x01")),
                KeyValue(key="empty", value=AnyValue()),
                KeyValue(
                    key="list",
                    value=AnyValue(
                        array_value=ArrayValue(
                            values=[AnyValue(int_value=1), AnyValue(string_value="two")]
                        )
                    ),
                ),
            ]
        )
    )
    assert any_value(value) == {
        "s": "x",
        "i": -3,
        "d": 0.5,
        "b": False,
        "raw": b"\x00\x01",
        "empty": None,
        "list": [1, "two"],
    }


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_http_endpoint_status_codes(receiver: OtlpReceiver) -> None:
    protobuf = {"Content-Type": "application/x-protobuf"}
    base = receiver.http_endpoint
    assert _post(f"{base}/v1/traces", b"", protobuf) == 200  # an empty request is valid
    assert (
        _post(f"{base}/v1/logs", gzip.compress(b""), {**protobuf, "Content-Encoding": "gzip"})
        == 200
    )
    assert _post(f"{base}/v1/nope", b"", protobuf) == 404
    assert _post(f"{base}/v1/traces", b"{}", {"Content-Type": "application/json"}) == 415
    assert _post(f"{base}/v1/traces", b"\xff\xff\xff", protobuf) == 400
    assert _post(f"{base}/v1/traces", b"notgzip", {**protobuf, "Content-Encoding": "gzip"}) == 400
    assert receiver.requests == {"traces": 1, "metrics": 0, "logs": 1}


def test_http_endpoint_reads_chunked_bodies(receiver: OtlpReceiver) -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(name="chunked", trace_id=b"\x01" * 16)
    body = request.SerializeToString()
    connection = http.client.HTTPConnection(*urlsplit(receiver.http_endpoint).netloc.split(":"))
    try:
        connection.request(
            "POST",
            "/v1/traces",
            body=iter([body[:3], body[3:]]),
            headers={"Content-Type": "application/x-protobuf", "Transfer-Encoding": "chunked"},
            encode_chunked=True,
        )
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    assert [(s.name, s.trace_id) for s in receiver.spans()] == [("chunked", "01" * 16)]


def test_env_wait_for_and_clear(receiver: OtlpReceiver) -> None:
    assert receiver.env()["OTEL_EXPORTER_OTLP_ENDPOINT"] == receiver.grpc_endpoint
    assert receiver.env("http/protobuf")["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert receiver.env("http")["OTEL_EXPORTER_OTLP_ENDPOINT"] == receiver.http_endpoint
    with pytest.raises(ValueError):
        receiver.env("thrift")

    started = time.monotonic()
    assert receiver.wait_for(lambda r: bool(r.spans()), timeout=0.3) is False
    assert time.monotonic() - started < 1.5

    exporter = span_exporter(receiver, "grpc", timeout=5)
    assert exporter.export(finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert receiver.spans() and receiver.requests["traces"] == 1
    receiver.clear()
    assert receiver.spans() == [] and receiver.requests["traces"] == 0
