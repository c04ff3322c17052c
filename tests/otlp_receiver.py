"""A real OTLP receiver for tests: gRPC and HTTP/protobuf, all three signals.

No OpenTelemetry Collector binary is available to tests, so this stands in for one. It speaks the
wire protocol through the official service stubs (gRPC) and ``POST /v1/{traces,metrics,logs}``
(also under ``/otlp``, Loki's OTLP ingestion path)
(HTTP, ``application/x-protobuf``, optionally gzip-compressed), so exporters are exercised exactly
as against a collector. Received requests are decoded into flat dataclasses for assertions::

    with OtlpReceiver() as rx:
        monkeypatch.setattr(os, "environ", {**os.environ, **rx.env("grpc")})
        ...
        assert rx.wait_for(lambda r: any(s.name == "GET /orders" for s in r.spans()))

Faults: ``OtlpReceiver(hang=True)`` accepts requests but never answers them (a hung collector);
``set_status(503)`` rejects exports (gRPC ``UNAVAILABLE`` / HTTP 503) until ``set_status(None)``.
"""

from __future__ import annotations

import contextlib
import gzip
import select
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import grpc
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

Signal = Literal["traces", "metrics", "logs"]
Protocol = Literal["grpc", "http"]
SIGNALS: tuple[Signal, ...] = ("traces", "metrics", "logs")

_REQUEST_TYPES: dict[str, type[Message]] = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
}
_RESPONSE_TYPES: dict[str, type[Message]] = {
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
}

# set_status() takes an HTTP code; gRPC clients get the code OTLP pairs with it, so the
# retryable/non-retryable split is the same on both transports.
_HTTP_TO_GRPC: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

_SPAN_KINDS = {
    0: "unspecified",
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
}
_STATUS_CODES = {0: "unset", 1: "ok", 2: "error"}
_TEMPORALITIES = {0: "unspecified", 1: "delta", 2: "cumulative"}


# --- decoding ------------------------------------------------------------------------------------


def any_value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a Python value (kvlist -> dict, array -> list, unset -> None)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, which)


def attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP key-value pairs as a dict of Python values."""
    return {kv.key: any_value(kv.value) for kv in kvs}


def _hex(raw: bytes) -> str:
    # Ids travel as raw bytes; W3C/Tempo form is lowercase hex. Absent ids stay "".
    return raw.hex() if raw else ""


def _scope_name(scope: InstrumentationScope) -> str:
    return scope.name


def _resource(resource: Resource) -> dict[str, Any]:
    return attributes(resource.attributes)


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    #: "internal" | "server" | "client" | "producer" | "consumer" | "unspecified"
    kind: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    #: "unset" | "ok" | "error"
    status_code: str
    protocol: Protocol
    status_message: str = ""
    scope_version: str = ""
    start_time_unix_nano: int = 0
    end_time_unix_nano: int = 0
    #: Span events as ``{"name": ..., "attributes": {...}}`` (exceptions are events).
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return (self.end_time_unix_nano - self.start_time_unix_nano) / 1e9


@dataclass(frozen=True)
class ReceivedExemplar:
    value: float | int
    trace_id: str
    span_id: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class ReceivedPoint:
    attributes: dict[str, Any]
    #: Sum and gauge points.
    value: float | int | None = None
    #: Histogram and exponential-histogram points.
    count: int | None = None
    sum: float | None = None
    bucket_counts: list[int] = field(default_factory=list)
    explicit_bounds: list[float] = field(default_factory=list)
    min: float | None = None
    max: float | None = None
    time_unix_nano: int = 0
    exemplars: list[ReceivedExemplar] = field(default_factory=list)


@dataclass(frozen=True)
class ReceivedMetric:
    name: str
    unit: str
    #: "sum" | "gauge" | "histogram" | "exp_histogram" | "summary"
    kind: str
    points: list[ReceivedPoint]
    resource: dict[str, Any]
    scope: str
    protocol: Protocol
    description: str = ""
    #: "delta" | "cumulative" | "unspecified" ("" for gauges)
    temporality: str = ""
    #: Sums only: True for counters, False for up-down counters.
    is_monotonic: bool | None = None


@dataclass(frozen=True)
class ReceivedLog:
    body: Any
    severity_text: str
    severity_number: int
    attributes: dict[str, Any]
    trace_id: str
    span_id: str
    resource: dict[str, Any]
    scope: str
    protocol: Protocol
    event_name: str = ""
    time_unix_nano: int = 0
    observed_time_unix_nano: int = 0


def _decode_spans(
    request: trace_service_pb2.ExportTraceServiceRequest, protocol: Protocol
) -> list[ReceivedSpan]:
    out = []
    for rs in request.resource_spans:
        resource = _resource(rs.resource)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    ReceivedSpan(
                        name=s.name,
                        trace_id=_hex(s.trace_id),
                        span_id=_hex(s.span_id),
                        parent_span_id=_hex(s.parent_span_id),
                        kind=_SPAN_KINDS.get(s.kind, str(s.kind)),
                        attributes=attributes(s.attributes),
                        resource=resource,
                        scope=_scope_name(ss.scope),
                        status_code=_STATUS_CODES.get(s.status.code, str(s.status.code)),
                        protocol=protocol,
                        status_message=s.status.message,
                        scope_version=ss.scope.version,
                        start_time_unix_nano=s.start_time_unix_nano,
                        end_time_unix_nano=s.end_time_unix_nano,
                        events=[
                            {"name": e.name, "attributes": attributes(e.attributes)}
                            for e in s.events
                        ],
                    )
                )
    return out


def _number(point: Any) -> float | int | None:
    which = point.WhichOneof("value")
    return getattr(point, which) if which else None


def _exemplars(point: Any) -> list[ReceivedExemplar]:
    return [
        ReceivedExemplar(
            value=_number(e),  # type: ignore[arg-type]
            trace_id=_hex(e.trace_id),
            span_id=_hex(e.span_id),
            attributes=attributes(e.filtered_attributes),
        )
        for e in point.exemplars
    ]


def _decode_metric_points(m: Any) -> tuple[str, list[ReceivedPoint], str, bool | None]:
    kind = m.WhichOneof("data")
    if kind in ("sum", "gauge"):
        data = getattr(m, kind)
        points = [
            ReceivedPoint(
                attributes=attributes(p.attributes),
                value=_number(p),
                time_unix_nano=p.time_unix_nano,
                exemplars=_exemplars(p),
            )
            for p in data.data_points
        ]
        if kind == "sum":
            temporality = _TEMPORALITIES.get(data.aggregation_temporality, "")
            return kind, points, temporality, data.is_monotonic
        return kind, points, "", None
    if kind == "histogram":
        points = [
            ReceivedPoint(
                attributes=attributes(p.attributes),
                count=p.count,
                sum=p.sum if p.HasField("sum") else None,
                bucket_counts=list(p.bucket_counts),
                explicit_bounds=list(p.explicit_bounds),
                min=p.min if p.HasField("min") else None,
                max=p.max if p.HasField("max") else None,
                time_unix_nano=p.time_unix_nano,
                exemplars=_exemplars(p),
            )
            for p in m.histogram.data_points
        ]
        temporality = _TEMPORALITIES.get(m.histogram.aggregation_temporality, "")
        return kind, points, temporality, None
    if kind == "exponential_histogram":
        points = [
            ReceivedPoint(
                attributes=attributes(p.attributes),
                count=p.count,
                sum=p.sum if p.HasField("sum") else None,
                min=p.min if p.HasField("min") else None,
                max=p.max if p.HasField("max") else None,
                time_unix_nano=p.time_unix_nano,
                exemplars=_exemplars(p),
            )
            for p in m.exponential_histogram.data_points
        ]
        temporality = _TEMPORALITIES.get(m.exponential_histogram.aggregation_temporality, "")
        return "exp_histogram", points, temporality, None
    if kind == "summary":
        points = [
            ReceivedPoint(
                attributes=attributes(p.attributes),
                count=p.count,
                sum=p.sum,
                time_unix_nano=p.time_unix_nano,
            )
            for p in m.summary.data_points
        ]
        return kind, points, "", None
    return str(kind), [], "", None


def _decode_metrics(
    request: metrics_service_pb2.ExportMetricsServiceRequest, protocol: Protocol
) -> list[ReceivedMetric]:
    out = []
    for rm in request.resource_metrics:
        resource = _resource(rm.resource)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind, points, temporality, monotonic = _decode_metric_points(m)
                out.append(
                    ReceivedMetric(
                        name=m.name,
                        unit=m.unit,
                        kind=kind,
                        points=points,
                        resource=resource,
                        scope=_scope_name(sm.scope),
                        protocol=protocol,
                        description=m.description,
                        temporality=temporality,
                        is_monotonic=monotonic,
                    )
                )
    return out


def _decode_logs(
    request: logs_service_pb2.ExportLogsServiceRequest, protocol: Protocol
) -> list[ReceivedLog]:
    out = []
    for rl in request.resource_logs:
        resource = _resource(rl.resource)
        for sl in rl.scope_logs:
            for r in sl.log_records:
                out.append(
                    ReceivedLog(
                        body=any_value(r.body),
                        severity_text=r.severity_text,
                        severity_number=r.severity_number,
                        attributes=attributes(r.attributes),
                        trace_id=_hex(r.trace_id),
                        span_id=_hex(r.span_id),
                        resource=resource,
                        scope=_scope_name(sl.scope),
                        protocol=protocol,
                        event_name=r.event_name,
                        time_unix_nano=r.time_unix_nano,
                        observed_time_unix_nano=r.observed_time_unix_nano,
                    )
                )
    return out


# --- transports ----------------------------------------------------------------------------------


class _GrpcService(
    trace_service_pb2_grpc.TraceServiceServicer,
    metrics_service_pb2_grpc.MetricsServiceServicer,
    logs_service_pb2_grpc.LogsServiceServicer,
):
    """One servicer for all three services; the method name is the same, the signal is not."""

    def __init__(self, receiver: OtlpReceiver, signal: Signal) -> None:
        self._receiver = receiver
        self._signal = signal

    def Export(self, request: Message, context: grpc.ServicerContext) -> Message:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        code = self._receiver._handle(
            self._signal, "grpc", request, context.is_active, headers=metadata
        )
        if code is not None:
            context.abort(
                _HTTP_TO_GRPC.get(code, grpc.StatusCode.UNKNOWN), f"receiver status {code}"
            )
        return _RESPONSE_TYPES[self._signal]()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    receiver: OtlpReceiver

    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver
        # Exporters keep connections alive; stop() must cut them or a stopped receiver would
        # keep answering on already-open sockets.
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _HttpHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Default prints a traceback to stderr; here errors are clients hanging up or stop()
        # cutting a connection, both expected.
        pass


class _HttpHandler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"  # keep-alive, like a collector
    disable_nagle_algorithm = True  # separate header/body writes: avoid Nagle + delayed-ACK stalls

    def setup(self) -> None:
        super().setup()
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        with self.server.sockets_lock:
            self.server.open_sockets.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read the decoded data, not access logs

    def _client_alive(self) -> bool:
        """False once the client has closed the connection (e.g. its export timed out)."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return True
        try:
            return bool(self.connection.recv(1, socket.MSG_PEEK))
        except OSError:
            return False

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        # Loki's OTLP endpoint is the same protocol under /otlp: this receiver stands in for it.
        signal = self.path.split("?", 1)[0].removeprefix("/otlp").removeprefix("/v1/")
        body = self._read_body()
        if signal not in SIGNALS:
            self._reply(HTTPStatus.NOT_FOUND, b"unknown path")
            return
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type != "application/x-protobuf":
            self._reply(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, b"only application/x-protobuf")
            return
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            elif encoding not in ("", "identity"):
                self._reply(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, b"unknown content-encoding")
                return
            request = _REQUEST_TYPES[signal].FromString(body)
        except (OSError, zlib.error, DecodeError) as exc:
            self._reply(HTTPStatus.BAD_REQUEST, str(exc).encode())
            return
        code = self.server.receiver._handle(
            signal,  # type: ignore[arg-type]
            "http",
            request,
            self._client_alive,
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        if code is not None:
            self._reply(code, f"receiver status {code}".encode())
            return
        response = _RESPONSE_TYPES[signal]().SerializeToString()
        self._reply(HTTPStatus.OK, response, "application/x-protobuf")


# --- the receiver --------------------------------------------------------------------------------


class OtlpReceiver:
    """OTLP receiver on 127.0.0.1 (free ports) for gRPC and HTTP/protobuf. Thread-safe."""

    def __init__(self, *, hang: bool = False) -> None:
        self.hang = hang
        self._lock = threading.Condition()
        self._generation = 0  # bumped on every accepted request; wait_for() sleeps on it
        self._spans: list[ReceivedSpan] = []
        self._metrics: list[ReceivedMetric] = []
        self._logs: list[ReceivedLog] = []
        self._raw: list[tuple[Signal, Protocol, Message]] = []
        self._requests: dict[str, int] = dict.fromkeys(SIGNALS, 0)
        #: (signal, protocol, lower-cased request headers / gRPC metadata) per request received.
        self._headers: list[tuple[Signal, Protocol, dict[str, str]]] = []
        self._status: int | None = None
        self._released = threading.Event()  # set by stop(): hung handlers return
        self._grpc: grpc.Server | None = None
        self._http: _HttpServer | None = None
        self._http_thread: threading.Thread | None = None
        self.grpc_endpoint = ""
        self.http_endpoint = ""

    # lifecycle

    def start(self) -> OtlpReceiver:
        if self._grpc is not None:
            return self
        self._released.clear()
        # Enough workers that hung calls (hang=True) don't starve the pool in one test.
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="otlp"))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _GrpcService(self, "traces"), server
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _GrpcService(self, "metrics"), server
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_GrpcService(self, "logs"), server)
        grpc_port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._grpc = server
        self.grpc_endpoint = f"http://127.0.0.1:{grpc_port}"

        self._http = _HttpServer(self)
        self._http_thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="otlp-http",
            daemon=True,
        )
        self._http_thread.start()
        self.http_endpoint = f"http://127.0.0.1:{self._http.server_address[1]}"
        return self

    def stop(self) -> None:
        """Stop both servers promptly, releasing hung requests and cutting open connections."""
        self._released.set()
        if self._grpc is not None:
            self._grpc.stop(grace=0).wait(5)
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            with self._http.sockets_lock:
                for sock in list(self._http.open_sockets):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
            self._http.server_close()
            if self._http_thread is not None:
                self._http_thread.join(5)
            self._http = None
            self._http_thread = None

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self, protocol: str = "grpc") -> dict[str, str]:
        """Environment pointing the standard OTLP exporters at this receiver.

        ``protocol`` is ``"grpc"`` or ``"http/protobuf"`` (``"http"`` is accepted as a short form).
        """
        if protocol == "grpc":
            return {
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.grpc_endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
            }
        if protocol in ("http", "http/protobuf"):
            return {
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.http_endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
            }
        raise ValueError(f"unsupported OTLP protocol {protocol!r} (grpc, http/protobuf)")

    # faults

    def set_status(self, code: int | None) -> None:
        """Reject later exports with this HTTP status (gRPC: the matching code, 503 -> UNAVAILABLE).

        ``None`` accepts exports again.
        """
        with self._lock:
            self._status = code

    # called from server threads

    def _handle(
        self,
        signal: Signal,
        protocol: Protocol,
        request: Message,
        alive: Callable[[], bool],
        headers: dict[str, str] | None = None,
    ) -> int | None:
        """Record one export request; returns an HTTP status to fail it with, or None on success."""
        with self._lock:
            self._requests[signal] += 1
            self._headers.append((signal, protocol, dict(headers or {})))
            status = self._status
            self._generation += 1
            self._lock.notify_all()
        if self.hang:
            # Never answer while running; stop() releases us. Stop waiting once the client has
            # given up so the worker is free again.
            while not self._released.wait(0.05) and alive():
                pass
            return HTTPStatus.SERVICE_UNAVAILABLE
        if status is not None:
            return status
        if signal == "traces":
            decoded: list[Any] = _decode_spans(request, protocol)  # type: ignore[arg-type]
        elif signal == "metrics":
            decoded = _decode_metrics(request, protocol)  # type: ignore[arg-type]
        else:
            decoded = _decode_logs(request, protocol)  # type: ignore[arg-type]
        with self._lock:
            {"traces": self._spans, "metrics": self._metrics, "logs": self._logs}[signal].extend(
                decoded
            )
            self._raw.append((signal, protocol, request))
            self._generation += 1
            self._lock.notify_all()
        return None

    # reading

    @property
    def requests(self) -> dict[str, int]:
        """Export requests received per signal (including rejected and hung ones); a copy."""
        with self._lock:
            return dict(self._requests)

    def request_headers(self, signal: Signal | None = None) -> list[dict[str, str]]:
        """Headers (HTTP, names lower-cased) or metadata (gRPC) of every request received."""
        with self._lock:
            return [h for sig, _proto, h in self._headers if signal is None or sig == signal]

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def metrics(self) -> list[ReceivedMetric]:
        with self._lock:
            return list(self._metrics)

    def logs(self) -> list[ReceivedLog]:
        with self._lock:
            return list(self._logs)

    def raw_requests(self, signal: Signal | None = None) -> list[tuple[Signal, Protocol, Message]]:
        """Accepted requests as received protobuf messages, for assertions the flat view lacks."""
        with self._lock:
            return [r for r in self._raw if signal is None or r[0] == signal]

    def metric(self, name: str) -> list[ReceivedMetric]:
        """Every received export of the metric ``name`` (periodic readers send it repeatedly)."""
        return [m for m in self.metrics() if m.name == name]

    def wait_for(self, predicate: Callable[[OtlpReceiver], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate(self)`` holds; False if it still doesn't after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                generation = self._generation
            # The predicate reads through the locking accessors, so call it without the lock.
            if predicate(self):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._lock:
                if self._generation == generation:
                    self._lock.wait(min(remaining, 0.5))

    def clear(self) -> None:
        """Forget received data and request counts (the fault settings stay)."""
        with self._lock:
            self._spans.clear()
            self._metrics.clear()
            self._logs.clear()
            self._raw.clear()
            self._headers.clear()
            self._requests = dict.fromkeys(SIGNALS, 0)
