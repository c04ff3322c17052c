"""Build the three OpenTelemetry providers from settings. Nothing here touches global state."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from platform_obs import _exporters, _runtime_metrics
from platform_obs import conventions as c
from platform_obs._config import ConfigError, Settings, Signal, exporter_target
from platform_obs._export import (
    DropReporter,
    ProcessResource,
    RedactingSpanExporter,
    ResourceLogExporter,
    ResourceMetricExporter,
    renewable,
)
from platform_obs._redaction import Redactor


class Sinks(NamedTuple):
    """In-memory destinations replacing the configured exporters (used by ``platform_obs.testing``)."""

    span_exporter: SpanExporter
    log_exporter: LogRecordExporter
    metric_reader: MetricReader


def second_scale_histograms() -> dict[type, Any]:
    """Preferred aggregation: every histogram without a view gets second-scale buckets."""
    return {Histogram: ExplicitBucketHistogramAggregation(list(c.DURATION_BUCKETS_SECONDS))}


def conventions_views() -> list[View]:
    """Attribute allow-lists for the conventions' HTTP metrics: drop high-cardinality attributes
    (full URLs, peer addresses, user agents) that some instrumentations add."""
    views = []
    for metric in (c.HTTP_SERVER_REQUEST_DURATION, c.HTTP_SERVER_ACTIVE_REQUESTS):
        aggregation = (
            ExplicitBucketHistogramAggregation(list(metric.buckets)) if metric.buckets else None
        )
        kwargs: dict[str, Any] = {"aggregation": aggregation} if aggregation else {}
        views.append(
            View(instrument_name=metric.name, attribute_keys=set(metric.attributes), **kwargs)
        )
    return views


def _sampler(settings: Settings) -> sampling.Sampler:
    ratio = sampling.TraceIdRatioBased(settings.sampler_arg)
    return {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": ratio,
        "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": sampling.ParentBased(ratio),
    }[settings.sampler]


@dataclass
class Providers:
    tracer: TracerProvider
    meter: MeterProvider
    logger: LoggerProvider
    #: Called after the providers are shut down (e.g. stop the Prometheus HTTP server).
    closers: list[Any] = field(default_factory=list)


def build_meter_provider(
    settings: Settings, resource: ProcessResource, drops: DropReporter, sinks: Sinks | None
) -> tuple[MeterProvider, list[Any]]:
    readers: list[MetricReader] = []
    closers: list[Any] = []
    if sinks is not None:
        readers.append(sinks.metric_reader)
        kinds: tuple[str, ...] = ()
    else:
        kinds = settings.metrics_exporter
    for kind in kinds:
        if kind == "prometheus":
            try:
                from opentelemetry.exporter.prometheus import PrometheusMetricReader
            except ImportError:
                raise ConfigError(
                    f"{settings.sources.get('metrics_exporter', 'metrics_exporter')} asks for the "
                    "Prometheus exporter, which is not installed: "
                    "pip install 'platform-obs[prometheus]'"
                ) from None
            from platform_obs._prometheus import PullEndpoint

            # The server first: the reader registers itself in the global registry, for good.
            endpoint = PullEndpoint(settings.prometheus_host, settings.prometheus_port)
            _start_prometheus_server(settings, endpoint)
            closers.append(endpoint.close)
            promoted = set(c.PROMOTED_RESOURCE_ATTRIBUTES)
            readers.append(PrometheusMetricReader(resource_attribute_filter=promoted.__contains__))
            continue
        preferences: dict[str, Any] = {
            "preferred_temporality": {},  # cumulative: what Prometheus-style backends need
            "preferred_aggregation": second_scale_histograms(),
        }
        inner = _metric_exporter(settings, kind, preferences)
        exporter = renewable(
            ResourceMetricExporter(inner, resource, drops, **preferences),
            partial(_metric_exporter, settings, kind, preferences),
        )
        readers.append(
            PeriodicExportingMetricReader(
                exporter,
                export_interval_millis=settings.metric_export_interval * 1000,
                export_timeout_millis=settings.metric_export_timeout * 1000,
            )
        )
    provider = MeterProvider(
        metric_readers=readers,
        resource=resource.original,
        views=conventions_views(),
        shutdown_on_exit=False,  # one deadline for all signals: ours (see lifecycle)
    )
    return provider, closers


def _start_prometheus_server(settings: Settings, endpoint: Any) -> None:
    """The scrape endpoint's HTTP server; a port in use (outside a pre-fork server, where each
    worker takes the next one) or a bad host is a ConfigError naming them."""
    try:
        endpoint.start(announce=False)  # said once logging is set up (see lifecycle)
    except (OSError, OverflowError, ValueError) as exc:
        sources = settings.sources
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"cannot serve Prometheus metrics on {settings.prometheus_host}:{settings.prometheus_port}: "
            f"{reason} (port: {sources.get('prometheus_port', 'default')}; host: "
            f"{sources.get('prometheus_host', 'default')}); expected a free port "
            "(OTEL_EXPORTER_PROMETHEUS_PORT) on a local address (OTEL_EXPORTER_PROMETHEUS_HOST)"
        ) from None


def _from_code(settings: Settings, name: str) -> Any:
    """A limit set by argument or pyproject; None lets the SDK read the environment itself, where a
    span-specific variable (OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT) beats the general one."""
    source = settings.sources.get(name)
    return getattr(settings, name) if source and source.kind in ("argument", "pyproject") else None


def _metric_exporter(settings: Settings, kind: str, preferences: dict[str, Any]) -> Any:
    if kind == "otlp":
        return _exporters.otlp_exporter(
            "metrics", exporter_target(settings, "metrics"), None, **preferences
        )
    return _exporters.console_exporter("metrics", **preferences)


def _push_exporter(
    settings: Settings, signal: Signal, kind: str, meter_provider: MeterProvider
) -> Any:
    """The span or log exporter ``kind`` (``otlp`` or ``console``) names."""
    if kind == "otlp":
        return _exporters.otlp_exporter(signal, exporter_target(settings, signal), meter_provider)
    return _exporters.console_exporter(signal)


def build_tracer_provider(
    settings: Settings,
    resource: ProcessResource,
    drops: DropReporter,
    redactor: Redactor,
    meter_provider: MeterProvider,
    sinks: Sinks | None,
) -> TracerProvider:
    provider = TracerProvider(
        sampler=_sampler(settings),
        resource=resource.original,
        span_limits=SpanLimits(
            max_attributes=_from_code(settings, "attribute_count_limit"),
            max_span_attributes=_from_code(settings, "attribute_count_limit"),
            max_attribute_length=_from_code(settings, "attribute_value_length_limit"),
            max_span_attribute_length=_from_code(settings, "attribute_value_length_limit"),
        ),
        shutdown_on_exit=False,
    )
    processors: list[SpanProcessor] = []
    if sinks is not None:
        processors.append(
            SimpleSpanProcessor(
                RedactingSpanExporter(sinks.span_exporter, redactor, resource, drops)
            )
        )
    for kind in () if sinks is not None else settings.traces_exporter:
        inner = _push_exporter(settings, "traces", kind, meter_provider)
        processors.append(
            BatchSpanProcessor(
                renewable(
                    RedactingSpanExporter(inner, redactor, resource, drops),
                    partial(_push_exporter, settings, "traces", kind, meter_provider),
                ),
                max_queue_size=settings.bsp_max_queue_size,
                schedule_delay_millis=settings.bsp_schedule_delay * 1000,
                max_export_batch_size=min(
                    settings.bsp_max_export_batch_size, settings.bsp_max_queue_size
                ),
                export_timeout_millis=settings.bsp_export_timeout * 1000,
                meter_provider=meter_provider,
            )
        )
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def build_logger_provider(
    settings: Settings,
    resource: ProcessResource,
    drops: DropReporter,
    meter_provider: MeterProvider,
    sinks: Sinks | None,
) -> LoggerProvider:
    provider = LoggerProvider(resource=resource.original, shutdown_on_exit=False)
    processors: list[LogRecordProcessor] = []
    if sinks is not None:
        processors.append(
            SimpleLogRecordProcessor(ResourceLogExporter(sinks.log_exporter, resource, drops))
        )
    for kind in () if sinks is not None else settings.logs_exporter:
        inner = _push_exporter(settings, "logs", kind, meter_provider)
        processors.append(
            BatchLogRecordProcessor(
                renewable(
                    ResourceLogExporter(inner, resource, drops),
                    partial(_push_exporter, settings, "logs", kind, meter_provider),
                ),
                max_queue_size=settings.blrp_max_queue_size,
                schedule_delay_millis=settings.blrp_schedule_delay * 1000,
                max_export_batch_size=min(
                    settings.blrp_max_export_batch_size, settings.blrp_max_queue_size
                ),
                export_timeout_millis=settings.blrp_export_timeout * 1000,
                meter_provider=meter_provider,
            )
        )
    for processor in processors:
        provider.add_log_record_processor(processor)
    return provider


def build_providers(
    settings: Settings,
    resource: ProcessResource,
    drops: DropReporter,
    redactor: Redactor,
    sinks: Sinks | None,
) -> Providers:
    meter, closers = build_meter_provider(settings, resource, drops, sinks)
    tracer: TracerProvider | None = None
    try:
        meter_obj = meter.get_meter("platform_obs")
        if settings.runtime_metrics:
            _runtime_metrics.register(meter_obj)
        dropped = meter_obj.create_counter(
            c.TELEMETRY_DROPPED.name,
            unit=c.TELEMETRY_DROPPED.unit,
            description=c.TELEMETRY_DROPPED.description,
        )
        drops.record = lambda signal, n: dropped.add(n, {c.SIGNAL: signal})
        tracer = build_tracer_provider(settings, resource, drops, redactor, meter, sinks)
        logger = build_logger_provider(settings, resource, drops, meter, sinks)
    except Exception:
        # Undo what was started; a failure while undoing must not hide the error that matters.
        with contextlib.suppress(Exception):
            if tracer is not None:
                tracer.shutdown()
        with contextlib.suppress(Exception):
            meter.shutdown(timeout_millis=0)
        for close in closers:
            with contextlib.suppress(Exception):
                close()
        raise
    return Providers(tracer, meter, logger, closers)
