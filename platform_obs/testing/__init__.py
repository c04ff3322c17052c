"""Test kit: capture the spans, metrics and logs your code emits, in memory, per test.

With platform-obs installed, pytest picks up the plugin automatically; use the ``telemetry``
fixture::

    def test_checkout(telemetry):
        place_order(17)
        span = telemetry.span("place_order")
        assert span.attributes["order.id"] == 17
        assert telemetry.log("order_placed")["order_id"] == 17
        assert telemetry.metric_sum("orders.placed") == 1

While the kit is active, ``platform_obs.init()`` (also when your application calls it) sends every
signal to memory instead of a collector, and repeated calls return the same handle.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from platform_obs import _lifecycle
from platform_obs._signals import Sinks, second_scale_histograms

__all__ = ["CapturedTelemetry", "MetricPoint", "capture"]

_DELTA: dict[type, AggregationTemporality] = {
    kind: AggregationTemporality.DELTA
    for kind in (
        Counter,
        UpDownCounter,
        Histogram,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    )
}


@dataclass(frozen=True)
class MetricPoint:
    """One data point: ``value`` for sums/gauges, ``count``/``sum``/``bucket_counts`` for histograms."""

    name: str
    unit: str
    attributes: Mapping[str, Any]
    value: float | None = None
    count: int | None = None
    sum: float | None = None
    bucket_counts: tuple[int, ...] = ()
    explicit_bounds: tuple[float, ...] = ()


class CapturedTelemetry:
    """What the code under test emitted since the last :meth:`clear`."""

    def __init__(self) -> None:
        self._spans = InMemorySpanExporter()
        self._logs = InMemoryLogRecordExporter()
        # Delta temporality: each test sees only its own measurements.
        self._reader = InMemoryMetricReader(
            preferred_temporality=_DELTA, preferred_aggregation=second_scale_histograms()
        )
        self._points: list[MetricPoint] = []
        self.sinks = Sinks(self._spans, self._logs, self._reader)

    # --- lifecycle -------------------------------------------------------------------------------

    def clear(self) -> None:
        self._spans.clear()
        self._logs.clear()
        self._points = []
        self._reader.get_metrics_data()  # drain the current delta

    # --- spans -----------------------------------------------------------------------------------

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self._spans.get_finished_spans() if name is None or s.name == name]

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name`` (fails clearly when there are none or several)."""
        found = self.spans(name)
        if len(found) != 1:
            names = sorted({s.name for s in self.spans()})
            raise AssertionError(
                f"expected exactly one span {name!r}, found {len(found)}; spans seen: {names}"
            )
        return found[0]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        pid = parent.context.span_id
        return [s for s in self.spans() if s.parent is not None and s.parent.span_id == pid]

    # --- logs ------------------------------------------------------------------------------------

    def log_records(self) -> list[ReadableLogRecord]:
        return list(self._logs.get_finished_logs())

    def logs(self, event: str | None = None) -> list[dict[str, Any]]:
        """Exported log records as dicts: ``event``, ``level``, ``trace_id``, ``span_id`` + attributes."""
        out = []
        for rec in self.log_records():
            lr = rec.log_record
            entry: dict[str, Any] = dict(lr.attributes or {})
            entry["event"] = lr.body
            entry["level"] = (lr.severity_text or "").lower()
            entry["trace_id"] = format(lr.trace_id, "032x") if lr.trace_id else None
            entry["span_id"] = format(lr.span_id, "016x") if lr.span_id else None
            if event is None or lr.body == event:
                out.append(entry)
        return out

    def log(self, event: str) -> dict[str, Any]:
        found = self.logs(event)
        if len(found) != 1:
            seen = sorted({str(e["event"]) for e in self.logs()})
            raise AssertionError(
                f"expected exactly one log {event!r}, found {len(found)}; events seen: {seen}"
            )
        return found[0]

    # --- metrics ---------------------------------------------------------------------------------

    def _collect(self) -> list[MetricPoint]:
        data = self._reader.get_metrics_data()
        if data is not None:
            for rm in data.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        self._points.extend(_points(metric))
        return self._points

    def metric_points(self, name: str, **attributes: Any) -> list[MetricPoint]:
        return [
            p
            for p in self._collect()
            if p.name == name and all(p.attributes.get(k) == v for k, v in attributes.items())
        ]

    def metric_sum(self, name: str, **attributes: Any) -> float:
        """Sum of a counter's increments (or a histogram's count) in this test, filtered by attributes."""
        return sum(
            (p.value if p.value is not None else p.count or 0)
            for p in self.metric_points(name, **attributes)
        )

    def metric_names(self) -> set[str]:
        return {p.name for p in self._collect()}


def _points(metric: Metric) -> Iterator[MetricPoint]:
    for point in metric.data.data_points:
        attrs = dict(point.attributes or {})
        if isinstance(point, HistogramDataPoint):
            yield MetricPoint(
                metric.name,
                metric.unit or "",
                attrs,
                count=point.count,
                sum=point.sum,
                bucket_counts=tuple(point.bucket_counts),
                explicit_bounds=tuple(getattr(point, "explicit_bounds", ()) or ()),
            )
        elif isinstance(point, NumberDataPoint):
            yield MetricPoint(metric.name, metric.unit or "", attrs, value=point.value)


_captured: CapturedTelemetry | None = None


def capture(**init_arguments: Any) -> CapturedTelemetry:
    """Route this process's telemetry to memory (once per process) and return the capture.

    ``init_arguments`` are passed to ``platform_obs.init()`` the first time (default service name
    ``test-service``); later calls return the same capture.
    """
    global _captured
    if _captured is None:
        captured = CapturedTelemetry()
        _lifecycle.use_sinks(captured.sinks)
        init_arguments.setdefault("service_name", "test-service")
        init_arguments.setdefault("instrument", False)
        _lifecycle.init(**init_arguments)
        _captured = captured
    return _captured
