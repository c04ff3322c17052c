"""Exporter factories per signal and protocol. Imports are lazy: only the chosen protocol loads."""

from __future__ import annotations

from typing import Any

from opentelemetry.metrics import MeterProvider

from platform_obs._config import ExporterTarget, Signal


def _grpc_compression(name: str) -> Any:
    from grpc import Compression

    return {"gzip": Compression.Gzip, "deflate": Compression.Deflate}.get(
        name, Compression.NoCompression
    )


def _http_compression(name: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http import Compression

    return {"gzip": Compression.Gzip, "deflate": Compression.Deflate}.get(
        name, Compression.NoCompression
    )


def otlp_exporter(
    signal: Signal, target: ExporterTarget, meter_provider: MeterProvider | None, **extra: Any
) -> Any:
    """An OTLP exporter for ``signal``; ``extra`` goes to metric exporters (temporality, aggregation)."""
    common: dict[str, Any] = {
        "endpoint": target.endpoint,
        "headers": dict(target.headers) or None,
        "timeout": target.timeout,
    }
    if signal != "metrics":
        common["meter_provider"] = meter_provider
    if target.protocol == "grpc":
        common["compression"] = _grpc_compression(target.compression)
        # gRPC metadata keys must be lower case (``Authorization`` fails every export).
        common["headers"] = {k.lower(): v for k, v in target.headers.items()} or None
        # A plain http:// endpoint means no TLS, whatever OTEL_EXPORTER_OTLP_INSECURE says.
        common["insecure"] = target.endpoint.startswith("http://") or None
        if signal == "traces":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            return OTLPSpanExporter(**common)
        if signal == "metrics":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            return OTLPMetricExporter(**common, **extra)
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return OTLPLogExporter(**common)
    common["compression"] = _http_compression(target.compression)
    if signal == "traces":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpSpanExporter,
        )

        return HttpSpanExporter(**common)
    if signal == "metrics":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpMetricExporter,
        )

        return HttpMetricExporter(**common, **extra)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (
        OTLPLogExporter as HttpLogExporter,
    )

    return HttpLogExporter(**common)


def console_exporter(signal: Signal, **extra: Any) -> Any:
    if signal == "traces":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if signal == "metrics":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter(**extra)
    from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

    return ConsoleLogRecordExporter()
