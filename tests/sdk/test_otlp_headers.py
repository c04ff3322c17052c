"""Export headers as people write them (``Authorization=Bearer x``) reach a real OTLP receiver."""

from __future__ import annotations

import pytest
from otlp_receiver import OtlpReceiver
from service_process import run_service

SERVICE = """
import platform_obs
from opentelemetry import trace
handle = platform_obs.init(service_name="checkout", instrument=False, runtime_metrics=False)
with trace.get_tracer("t").start_as_current_span("work"):
    platform_obs.get_logger("t").info("done")
print("flushed=" + str(handle.shutdown(timeout=15)))
print("dropped=" + str(sum(handle.dropped.values())))
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_capitalised_header_names_work_on_both_protocols(protocol: str) -> None:
    with OtlpReceiver() as receiver:
        env = receiver.env(protocol)
        env["OTEL_EXPORTER_OTLP_HEADERS"] = "Authorization=Bearer x,X-Scope-OrgID=team-a"
        done = run_service(SERVICE, env)
        assert done.returncode == 0, done.stderr
        assert done.marker("flushed") == "True"
        assert done.marker("dropped") == "0", done.stdout
        assert [s.name for s in receiver.spans()] == ["work"]
        assert [entry.body for entry in receiver.logs()] == ["done"]
        for signal in ("traces", "logs"):
            seen = receiver.request_headers(signal)
            assert seen, signal
            for headers in seen:
                assert headers.get("authorization") == "Bearer x"
                assert headers.get("x-scope-orgid") == "team-a"
    # Nothing the exporters complained about (gRPC said INTERNAL for every export before).
    assert "INTERNAL" not in done.stdout and "Failed to export" not in done.stdout


def test_header_names_are_normalised_and_bad_ones_refused() -> None:
    from platform_obs import ConfigError
    from platform_obs._config import load_settings

    settings = load_settings({}, {"OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer x"}, False)
    assert dict(settings.otlp_headers) == {"authorization": "Bearer x"}
    with pytest.raises(ConfigError, match=r"OTEL_EXPORTER_OTLP_HEADERS.*header names") as err:
        load_settings({}, {"OTEL_EXPORTER_OTLP_HEADERS": "Bad Name=v"}, False)
    with pytest.raises(ConfigError, match=r"printable ASCII; the value of 'x-key'") as err:
        load_settings({}, {"OTEL_EXPORTER_OTLP_HEADERS": "x-key=s3cr%0Aet"}, False)
    assert "s3cr" not in str(err.value)  # header values are secrets, even in errors
