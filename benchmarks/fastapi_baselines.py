"""The FastAPI example's routes without platform-obs, for bench_shapes.py's per-request baselines.

``BENCH_MODE=bare``: no telemetry at all (structlog's default JSON lines only).
``BENCH_MODE=handwritten``: what a team writes by hand: tracer and meter providers exporting over
OTLP, the FastAPI instrumentation on the app, structlog's default JSON lines.
"""

from __future__ import annotations

import itertools
import os

import structlog
from fastapi import FastAPI

MODE = os.environ.get("BENCH_MODE", "bare")

if MODE == "handwritten":
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    resource = Resource({"service.name": "orders-api"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(insecure=True)))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(
        MeterProvider(
            resource=resource,
            metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter(insecure=True))],
        )
    )

structlog.configure(
    processors=[
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.JSONRenderer(),
    ],
    cache_logger_on_first_use=True,
)
log = structlog.get_logger(__name__)
app = FastAPI(title="orders-api")
_ids = itertools.count(1000)

if MODE == "handwritten":
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/orders/{order_id}")
async def get_order(order_id: int) -> dict[str, float | int]:
    amount = round(5 + (order_id % 97) * 1.25, 2)
    log.info("order fetched", order_id=order_id, amount=amount)
    return {"order_id": order_id, "amount": amount}
