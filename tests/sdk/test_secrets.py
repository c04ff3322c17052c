"""No secret given to the SDK reaches any output: a marker planted in every input (export headers,
a URL password, log fields of every shape, span attributes) is searched for in stdout, stderr,
tracebacks and everything a real OTLP receiver got."""

from __future__ import annotations

import pytest
from otlp_receiver import OtlpReceiver
from service_process import run_service

MARK = "s3cr3t-MARKER-7f2c"

SERVICE = """
import collections, email.message, json, logging, os, types
import structlog
import platform_obs
from opentelemetry import trace

MARK = os.environ["MARK"]
handle = platform_obs.init(service_name="checkout", instrument=False, runtime_metrics=False)
print("describe=" + json.dumps(handle.settings.describe()))
print("repr=" + repr(handle.settings) + repr(handle))

class Headers(collections.abc.Mapping):  # a framework's request-header object
    def __init__(self, items): self._items = dict(items)
    def __getitem__(self, key): return self._items[key]
    def __iter__(self): return iter(self._items)
    def __len__(self): return len(self._items)
    def __repr__(self): return f"Headers({self._items!r})"

message = email.message.Message()
message["Authorization"] = "Bearer " + MARK
deep = {"password": MARK}
for _ in range(15):
    deep = {"level": deep}
shapes = {
    "dict": {"password": MARK},
    "ordered_dict": collections.OrderedDict(token=MARK),
    "defaultdict": collections.defaultdict(list, {"api_key": MARK}),
    "mapping_proxy": types.MappingProxyType({"client_secret": MARK}),
    "header_mapping": Headers({"Authorization": "Bearer " + MARK}),
    "email_headers": message,
    "list_of_dicts": [{"password": MARK}, {"ok": 1}],
    "tuple_of_dicts": ({"X-Api-Key": MARK},),
    "dict_list_dict": {"rows": [{"items": ({"session_id": MARK},)}]},
    "deep": deep,
    "raw_header_pairs": [(b"authorization", ("Bearer " + MARK).encode()), ("cookie", MARK)],
    "pair_tuple": ("password", MARK),
    "frozenset_of_pairs": frozenset({("secret", MARK)}),
    "set_of_tuples": {("auth_token", MARK)},
}
log = platform_obs.get_logger("app")
tracer = trace.get_tracer("app")
with tracer.start_as_current_span("request") as span:
    for name, value in shapes.items():
        log.info("shape", shape=name, payload=value)
    log.info("top level", password=MARK, Authorization="Bearer " + MARK)
    structlog.contextvars.bind_contextvars(session_token=MARK)
    log.info("bound context")
    structlog.contextvars.clear_contextvars()
    log.bind(api_key=MARK).info("bound logger")
    log.info("connecting", dsn=f"postgresql://app:{MARK}@db:5432/orders")
    logging.getLogger("thirdparty").warning("retrying https://%s@api.example.com/v1", MARK)
    logging.getLogger("thirdparty").info(
        "stdlib", extra={"headers": Headers({"Cookie": MARK}), "rows": [{"token": MARK}]}
    )
    span.set_attribute("password", MARK)
    span.set_attribute("http.request.header.authorization", ("Bearer " + MARK,))
    span.set_attribute("db", {"connection": {"password": MARK}})
    span.set_attribute("url.full", f"https://user:{MARK}@example.com/path")
    span.add_event("login", {"session_id": MARK, "user": "ann"})
    try:
        password = MARK  # a local in the failing frame: locals are never printed
        raise ValueError("lookup failed")
    except ValueError:
        log.exception("failed", token=MARK)
try:
    platform_obs.init(service_name="checkout", otlp_headers={"authorization": "Bearer 2" + MARK})
except platform_obs.AlreadyInitialized as exc:
    print(f"conflict={exc}")
print(f"flushed={handle.shutdown(timeout=15)}")
"""


def _received_text(receiver: OtlpReceiver) -> str:
    """Everything the receiver decoded plus the raw protobuf bytes, as one searchable text."""
    parts = [repr(receiver.spans()), repr(receiver.logs()), repr(receiver.metrics())]
    parts += [repr(message.SerializeToString()) for _s, _p, message in receiver.raw_requests()]
    return "\n".join(parts)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_marker_in_every_input_reaches_no_output(protocol: str) -> None:
    with OtlpReceiver() as receiver:
        env = receiver.env(protocol)
        env["MARK"] = MARK
        env["OTEL_EXPORTER_OTLP_HEADERS"] = f"Authorization=Bearer {MARK}"
        env["OTEL_RESOURCE_ATTRIBUTES"] = f"team=payments,db.password={MARK}"
        if protocol == "http/protobuf":  # HTTP carries a URL password as basic auth
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.http_endpoint.replace(
                "http://", f"http://user:{MARK}@"
            )
        done = run_service(SERVICE, env)
        assert done.returncode == 0, done.stderr
        assert done.marker("flushed") == "True"
        received = _received_text(receiver)
        spans, logs = receiver.spans(), receiver.logs()

    # Everything arrived (so absence of the marker means redaction, not loss)...
    events = [line for line in done.json_lines if line.get("event") == "shape"]
    assert len(events) == 14 and len([e for e in logs if e.body == "shape"]) == 14
    (span,) = [s for s in spans if s.name == "request"]
    assert span.attributes["password"] == "[REDACTED]"
    assert span.attributes["db"] == {"connection": {"password": "[REDACTED]"}}
    assert span.attributes["url.full"] == "https://user:***@example.com/path"
    assert span.events[0]["attributes"] == {"session_id": "[REDACTED]", "user": "ann"}
    failed = next(line for line in done.json_lines if line.get("event") == "failed")
    assert failed["exception"][0]["exc_type"] == "ValueError"
    assert "Bearer" not in done.marker("conflict") and "otlp_headers" in done.marker("conflict")
    assert "[REDACTED]" in done.marker("describe")
    connecting = next(line for line in done.json_lines if line.get("event") == "connecting")
    assert connecting["dsn"] == "postgresql://app:***@db:5432/orders"
    (exported_dsn,) = [e.attributes["dsn"] for e in logs if e.body == "connecting"]
    assert exported_dsn == "postgresql://app:***@db:5432/orders"
    assert any(e.body == "retrying https://***@api.example.com/v1" for e in logs)
    # ...and the marker is nowhere.
    for name, text in [("stdout", done.stdout), ("stderr", done.stderr), ("export", received)]:
        assert MARK not in text, f"secret in {name}"


def test_url_password_is_masked_in_grpc_export_warnings() -> None:
    with OtlpReceiver() as receiver:
        # gRPC cannot carry a URL password: every export fails, and the exporter's warnings
        # name the endpoint.
        endpoint = receiver.grpc_endpoint.replace("http://", f"http://user:{MARK}@")
        done = run_service(
            """
            import platform_obs
            from opentelemetry import trace
            handle = platform_obs.init(service_name="checkout", instrument=False)
            print("describe=" + str(handle.settings.describe()["otlp_endpoint"]))
            trace.get_tracer("t").start_span("work").end()
            print(f"flushed={handle.shutdown(timeout=5)}")
            """,
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_EXPORTER_OTLP_TIMEOUT": "1000",
                "OTEL_BSP_SCHEDULE_DELAY": "50",
            },
        )
    assert done.returncode == 0, done.stderr
    assert done.marker("describe").startswith("http://user:***@127.0.0.1:")
    warnings = [
        line["event"]
        for line in done.json_lines
        if line.get("logger", "").startswith("opentelemetry")
    ]
    assert any("user:***@127.0.0.1" in w for w in warnings), warnings
    assert MARK not in done.stdout and MARK not in done.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://user:{MARK}@[::1"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://user:{MARK}@collector:notaport"},
        {"OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"authorization=Bearer {MARK}%0A"},
        {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {MARK},{MARK}"},
    ],
)
def test_tracebacks_of_config_errors_hold_no_secret(env: dict[str, str]) -> None:
    done = run_service("import platform_obs\nplatform_obs.init(service_name='checkout')", env)
    assert done.returncode == 1
    assert "ConfigError" in done.stderr.strip().splitlines()[-1]
    assert MARK not in done.stderr and MARK not in done.stdout
