"""The SDK's log pipeline built in-process without touching global state, for hostile-input tests.

Same pieces as ``init()`` wires (processors, the never-raising bound logger, the stdlib bridge, the
OTLP emitter and the exporter wrapper), but the structlog logger is wrapped locally and the
LogRecords go to memory, so a test can feed thousands of events and read every output.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import structlog
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from otlp_receiver import any_value, attributes

from platform_obs import _logs
from platform_obs._export import DropReporter, ProcessResource, ResourceLogExporter
from platform_obs._redaction import Redactor


def _no_constants(name: str) -> Any:
    raise ValueError(f"not strict JSON: bare {name}")


def strict_json(line: str) -> dict[str, Any]:
    """Parse like a strict parser: no NaN/Infinity, no lone surrogates, one object."""
    value = json.loads(line, parse_constant=_no_constants)
    assert isinstance(value, dict), line
    line.encode("utf-8")  # raises on a lone surrogate (strict parsers reject them too)
    return value


class Pipeline:
    def __init__(self, otlp: bool = True, renderer: str = "json") -> None:
        self.memory = InMemoryLogRecordExporter()
        self.drops = DropReporter()
        self.provider = LoggerProvider(resource=Resource({"service.name": "t"}))
        resource = ProcessResource(self.provider.resource)
        self.provider.add_log_record_processor(
            SimpleLogRecordProcessor(ResourceLogExporter(self.memory, resource, self.drops))
        )
        emitter = _logs.OtlpEmitter(self.provider) if otlp else None
        self.processors = _logs.build_processors(
            {"service": "t"}, Redactor(), _logs.choose_renderer(renderer), emitter
        )
        self.log = structlog.wrap_logger(
            _logs.StdoutWriter("hostile"),
            processors=self.processors,
            wrapper_class=_logs.safe_bound_logger(logging.DEBUG),
        )
        self.bridge = _logs.StdlibBridge(self.processors, logging.DEBUG, _logs.RateLimitFilter())
        self.stdlib = logging.Logger("thirdparty")  # not registered: no global handler touched
        self.stdlib.addHandler(self.bridge)
        self.stdlib.propagate = False

    @contextlib.contextmanager
    def stdout(self) -> Iterator[io.StringIO]:
        buffer = io.StringIO()
        saved = sys.stdout
        sys.stdout = buffer
        try:
            yield buffer
        finally:
            sys.stdout = saved

    def records(self) -> list[Any]:
        return list(self.memory.get_finished_logs())

    def exported_bytes(self) -> bytes:
        """The records as the OTLP exporter would send them (raises if protobuf cannot encode)."""
        return encode_logs(self.records()).SerializeToString()

    def exported_records(self) -> list[tuple[Any, dict[str, Any]]]:
        """(body, attributes) of each record, decoded back from the encoded OTLP request."""
        request = ExportLogsServiceRequest.FromString(self.exported_bytes())
        return [
            (any_value(r.body), attributes(r.attributes))
            for rl in request.resource_logs
            for sl in rl.scope_logs
            for r in sl.log_records
        ]

    def clear(self) -> None:
        self.memory.clear()
