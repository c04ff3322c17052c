"""Exporter wrappers: what every exported batch goes through, off the service's hot path.

They run in the batch processors' worker threads, never in the caller's, and add three guarantees
the OpenTelemetry exporters lack:

* **per-process resource** after ``os.fork()``: the child's batches carry its own
  ``service.instance.id`` (the SDK's providers hold the parent's resource and cannot be changed);
* **redaction** of sensitive span and span-event attribute keys, at any depth (spans are immutable
  once ended, so this is the first place they can be rewritten);
* **encodable batches**: a value protobuf would reject (a lone surrogate, an integer beyond 64 bits)
  would fail the whole batch, so it is replaced (see ``platform_obs._sanitize``), and a password in a
  URL-valued attribute is masked;
* **drop accounting**: items in failed exports are counted in ``platform_obs.telemetry.dropped``
  and reported by a rate-limited warning instead of one log line per failure.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from platform_obs._redaction import Redactor
from platform_obs._sanitize import otlp_clean, otlp_encodable

_log = logging.getLogger("platform_obs.export")


def clean_attributes(attrs: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """``attrs`` itself when protobuf can encode all of it, else a cleaned ``dict`` copy."""
    if not attrs:
        return attrs
    if all(otlp_encodable(k) and otlp_encodable(v) for k, v in attrs.items()):
        return attrs
    return otlp_clean(dict(attrs))  # type: ignore[no-any-return]


def clean_text(text: str) -> str:
    return text if otlp_encodable(text) else otlp_clean(text)  # type: ignore[no-any-return]


class DropReporter:
    """Counts dropped items per signal and warns at most once per ``interval`` seconds."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last_warning = -float("inf")
        self._since_warning: dict[str, int] = {}
        self.totals: dict[str, int] = {}
        #: Set once metrics exist: records into ``platform_obs.telemetry.dropped``.
        self.record: Callable[[str, int], None] | None = None

    def reinit_after_fork(self) -> None:
        """A lock held by another thread at fork time would stay locked in the child forever."""
        self._lock = threading.Lock()

    def dropped(self, signal: str, count: int, reason: str) -> None:
        if count <= 0:
            return
        with self._lock:
            self.totals[signal] = self.totals.get(signal, 0) + count
            self._since_warning[signal] = self._since_warning.get(signal, 0) + count
            now = self._clock()
            due = now - self._last_warning >= self._interval
            if due:
                summary = ", ".join(f"{n} {s}" for s, n in sorted(self._since_warning.items()))
                self._since_warning.clear()
                self._last_warning = now
        if self.record is not None:
            self.record(signal, count)
        if due:
            _log.warning(
                "telemetry export failing (%s); dropped %s since the last report; the service is unaffected "
                "and export resumes when the collector is back",
                reason,
                summary,
            )


#: Exporters to rebuild in a forked child (see :func:`renew_connections_after_fork`).
_RENEWABLE: weakref.WeakSet[Any] = weakref.WeakSet()


def renewable(wrapper: Any, build: Callable[[], Any]) -> Any:
    """Register how to build ``wrapper``'s inner exporter again (a new connection) after a fork."""
    wrapper._build = build
    _RENEWABLE.add(wrapper)
    return wrapper


def renew_connections_after_fork() -> None:
    """A forked worker must not talk over its parent's connections: an HTTP keep-alive socket or a
    gRPC channel opened before the fork is shared with the parent and every sibling, and their
    requests and answers interleave (exports fail or land in another process). Each wrapper gets a
    fresh inner exporter; the inherited one is left alone (closing it would close the parent's)."""
    for wrapper in list(_RENEWABLE):
        try:
            wrapper._inner = wrapper._build()
        except Exception as exc:  # keep the old one rather than fail the worker
            _log.debug("could not renew exporter after fork", exc_info=exc)


class ProcessResource:
    """The current process's resource; replaced in a forked child."""

    def __init__(self, resource: Resource) -> None:
        self.original = resource
        self.current = resource


class RedactingSpanExporter(SpanExporter):
    def __init__(
        self,
        inner: SpanExporter,
        redactor: Redactor,
        resource: ProcessResource,
        drops: DropReporter,
    ) -> None:
        self._inner = inner
        self._redactor = redactor
        self._resource = resource
        self._drops = drops

    def _clean(self, attrs: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        if not attrs:
            return attrs
        return clean_attributes(self._redactor.redact_attributes(attrs))

    def _prepare(self, span: ReadableSpan) -> ReadableSpan:
        attrs = span.attributes or {}
        cleaned = self._clean(attrs)
        events = tuple(span.events)
        cleaned_events = tuple(
            e
            if (a := self._clean(e.attributes)) is e.attributes and otlp_encodable(e.name)
            else Event(clean_text(e.name), a, e.timestamp)
            for e in events
        )
        events_changed = any(a is not b for a, b in zip(events, cleaned_events, strict=True))
        forked = self._resource.current is not self._resource.original
        name_ok = otlp_encodable(span.name)
        status = span.status
        status_ok = status.description is None or otlp_encodable(status.description)
        if not forked and cleaned is attrs and not events_changed and name_ok and status_ok:
            return span
        if not status_ok:
            status = Status(status.status_code, clean_text(status.description or ""))
        return ReadableSpan(
            name=span.name if name_ok else clean_text(span.name),
            context=span.context,
            parent=span.parent,
            resource=self._resource.current,
            attributes=cleaned,
            events=cleaned_events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export([self._prepare(s) for s in spans])
        except Exception as exc:  # an exporter bug must not kill the worker thread
            result = SpanExportResult.FAILURE
            _log.debug("span exporter raised", exc_info=exc)
        if result is not SpanExportResult.SUCCESS:
            self._drops.dropped("spans", len(spans), "span export failed")
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class ResourceLogExporter(LogRecordExporter):
    def __init__(
        self, inner: LogRecordExporter, resource: ProcessResource, drops: DropReporter
    ) -> None:
        self._inner = inner
        self._resource = resource
        self._drops = drops

    @staticmethod
    def _encodable(record: ReadableLogRecord) -> ReadableLogRecord:
        inner = record.log_record
        attributes = clean_attributes(inner.attributes)  # type: ignore[arg-type]
        body_ok = otlp_encodable(inner.body)
        if attributes is inner.attributes and body_ok:
            return record
        fixed = copy.copy(inner)
        fixed.attributes = attributes
        if not body_ok:
            fixed.body = otlp_clean(inner.body)
        return dataclasses.replace(record, log_record=fixed)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        current = self._resource.current
        batch = [self._encodable(r) for r in batch]
        if current is not self._resource.original:
            batch = [dataclasses.replace(r, resource=current) for r in batch]
        try:
            result = self._inner.export(batch)
        except Exception as exc:
            result = LogRecordExportResult.FAILURE
            _log.debug("log exporter raised", exc_info=exc)
        if result is not LogRecordExportResult.SUCCESS:
            self._drops.dropped("logs", len(batch), "log export failed")
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _count_points(data: MetricsData) -> int:
    return sum(
        len(metric.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    )


class ResourceMetricExporter(MetricExporter):
    def __init__(
        self,
        inner: MetricExporter,
        resource: ProcessResource,
        drops: DropReporter,
        preferred_temporality: dict[type, Any] | None = None,
        preferred_aggregation: dict[type, Any] | None = None,
    ) -> None:
        super().__init__(
            preferred_temporality=preferred_temporality, preferred_aggregation=preferred_aggregation
        )
        self._inner = inner
        self._resource = resource
        self._drops = drops

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        current = self._resource.current
        if current is not self._resource.original:
            metrics_data = MetricsData(
                resource_metrics=[
                    dataclasses.replace(rm, resource=current)
                    for rm in metrics_data.resource_metrics
                ]
            )
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            result = MetricExportResult.FAILURE
            _log.debug("metric exporter raised", exc_info=exc)
        if result is not MetricExportResult.SUCCESS:
            self._drops.dropped("metrics", _count_points(metrics_data), "metric export failed")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
