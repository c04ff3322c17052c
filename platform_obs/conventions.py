"""The platform's names: metrics, units, attributes, log fields, and how they look once stored.

This module is the single source of truth shared by both halves of the product: the SDK emits
exactly these names, and the provisioner builds every dashboard and alert query from them. It
imports nothing outside the standard library so either half can use it.

Storage convention (documented in the README, "Metric pipeline"):

* Metrics reach Prometheus with OpenTelemetry's Prometheus naming: dots become underscores, the
  unit is appended (``s`` -> ``_seconds``, ``By`` -> ``_bytes``; annotations like ``{request}`` and
  the unit ``1`` add nothing), counters get ``_total``.
* The resource attributes in :data:`PROMOTED_RESOURCE_ATTRIBUTES` are copied onto every series as
  labels (the reference collector config's transform, Prometheus 3's
  ``otlp.promote_resource_attributes``; the SDK's pull endpoint does the same), so dashboards select
  on ``service_name`` and ``deployment_environment_name`` without joins. A backend that promotes
  nothing is served by the platform setting ``metric_labels: target_info`` (joins on
  ``target_info``; docs/metric-pipeline.md).
* Logs reach Loki with the stream label :data:`LOKI_SERVICE_LABEL`; the JSON line carries the
  fields in :class:`LogFields`.
* Traces reach Tempo with the resource attribute ``service.name``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

InstrumentKind = Literal["counter", "updowncounter", "histogram", "gauge"]

# --- resource attributes ------------------------------------------------------------------------

SERVICE_NAME: Final = "service.name"
SERVICE_VERSION: Final = "service.version"
SERVICE_NAMESPACE: Final = "service.namespace"
SERVICE_INSTANCE_ID: Final = "service.instance.id"
DEPLOYMENT_ENVIRONMENT: Final = "deployment.environment.name"
#: The owning team. No semantic convention exists; namespaced so a future one cannot collide.
TEAM: Final = "platform.team"
VCS_REVISION: Final = "vcs.ref.head.revision"

#: Resource attributes copied onto every metric series as labels (see module docstring).
PROMOTED_RESOURCE_ATTRIBUTES: Final[tuple[str, ...]] = (
    SERVICE_NAME,
    SERVICE_NAMESPACE,
    DEPLOYMENT_ENVIRONMENT,
    TEAM,
)

# --- metric attributes (stable HTTP semantic conventions) -----------------------------------------

HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_ROUTE: Final = "http.route"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
ERROR_TYPE: Final = "error.type"
URL_SCHEME: Final = "url.scheme"
CPU_MODE: Final = "cpu.mode"
GC_GENERATION: Final = "cpython.gc.generation"
SIGNAL: Final = "platform_obs.signal"

#: Attributes known to explode cardinality; views drop them from every metric.
HIGH_CARDINALITY_ATTRIBUTES: Final[frozenset[str]] = frozenset(
    {
        "url.full",
        "url.path",
        "url.query",
        "http.target",
        "http.url",
        "client.address",
        "client.port",
        "net.peer.port",
        "network.peer.address",
        "network.peer.port",
        "user_agent.original",
        "http.user_agent",
        "server.port",
        "net.host.port",
    }
)

#: Second-scale histogram boundaries (semantic-convention advice for durations in seconds).
DURATION_BUCKETS_SECONDS: Final[tuple[float, ...]] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)

#: Per-instrument cardinality limit (the specification's default; overflow goes to
#: ``otel.metric.overflow="true"``).
CARDINALITY_LIMIT: Final = 2000

# --- Prometheus translation -----------------------------------------------------------------------

_UNIT_WORDS: Final[dict[str, str]] = {
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "min": "minutes",
    "h": "hours",
    "d": "days",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "%": "percent",
    "1": "",
}
_INVALID_PROM_CHARS = re.compile(r"[^a-zA-Z0-9_:]")


def prom_label(attribute: str) -> str:
    """The Prometheus label name of an OpenTelemetry attribute (``http.route`` -> ``http_route``)."""
    label = _INVALID_PROM_CHARS.sub("_", attribute)
    return f"_{label}" if label[:1].isdigit() else label


def prom_unit(unit: str) -> str:
    """The Prometheus unit suffix of a UCUM unit; ``{annotations}`` and ``1`` give none."""
    unit = re.sub(r"\{.*?\}", "", unit)
    if not unit:
        return ""
    if "/" in unit:
        top, _, bottom = unit.partition("/")
        top_word = _UNIT_WORDS.get(top, top)
        bottom_word = {"s": "second", "m": "minute", "h": "hour", "d": "day"}.get(bottom, bottom)
        return f"{top_word}_per_{bottom_word}" if top_word else f"per_{bottom_word}"
    return _UNIT_WORDS.get(unit, prom_label(unit))


@dataclass(frozen=True)
class Metric:
    """One metric of the platform's conventions, as emitted and as stored."""

    name: str
    kind: InstrumentKind
    unit: str
    description: str
    attributes: tuple[str, ...] = ()
    #: Histogram bucket boundaries, when the metric is a histogram.
    buckets: tuple[float, ...] | None = None
    #: Who emits it: an instrumentation library, or the SDK itself.
    source: str = "platform_obs"

    @property
    def prom_name(self) -> str:
        """Base Prometheus name: a histogram's ``_bucket``/``_sum``/``_count`` hang off it."""
        base = prom_label(self.name)
        unit = prom_unit(self.unit)
        if unit and not base.endswith(f"_{unit}"):
            base = f"{base}_{unit}"
        if self.kind == "counter":
            base = f"{base}_total"
        return base

    def series(self, suffix: Literal["", "bucket", "sum", "count"] = "") -> str:
        """A concrete series name; ``suffix`` is only valid for histograms."""
        if suffix and self.kind != "histogram":
            raise ValueError(f"{self.name} is a {self.kind}, it has no _{suffix} series")
        return f"{self.prom_name}_{suffix}" if suffix else self.prom_name

    def label(self, attribute: str) -> str:
        """The Prometheus label of one of this metric's attributes (checked, to catch typos)."""
        if attribute not in self.attributes and attribute not in PROMOTED_RESOURCE_ATTRIBUTES:
            raise KeyError(f"{attribute!r} is not an attribute of {self.name}")
        return prom_label(attribute)


# --- the metrics ----------------------------------------------------------------------------------

HTTP_SERVER_REQUEST_DURATION: Final = Metric(
    name="http.server.request.duration",
    kind="histogram",
    unit="s",
    description="Duration of HTTP server requests.",
    attributes=(HTTP_REQUEST_METHOD, HTTP_ROUTE, HTTP_RESPONSE_STATUS_CODE, ERROR_TYPE, URL_SCHEME),
    buckets=DURATION_BUCKETS_SECONDS,
    source="opentelemetry-instrumentation (stable HTTP semantic conventions)",
)
HTTP_SERVER_ACTIVE_REQUESTS: Final = Metric(
    name="http.server.active_requests",
    kind="updowncounter",
    unit="{request}",
    description="Number of active HTTP server requests.",
    attributes=(HTTP_REQUEST_METHOD, URL_SCHEME),
    source="opentelemetry-instrumentation (stable HTTP semantic conventions)",
)
PROCESS_CPU_TIME: Final = Metric(
    name="process.cpu.time",
    kind="counter",
    unit="s",
    description="Total CPU seconds broken down by mode.",
    attributes=(CPU_MODE,),
)
PROCESS_MEMORY_USAGE: Final = Metric(
    name="process.memory.usage",
    kind="updowncounter",
    unit="By",
    description="Resident memory of the process.",
)
PROCESS_THREAD_COUNT: Final = Metric(
    name="process.thread.count",
    kind="updowncounter",
    unit="{thread}",
    description="Live threads of the Python process.",
)
CPYTHON_GC_COLLECTIONS: Final = Metric(
    name="cpython.gc.collections",
    kind="counter",
    unit="{collection}",
    description="Garbage collections by generation.",
    attributes=(GC_GENERATION,),
)
TELEMETRY_DROPPED: Final = Metric(
    name="platform_obs.telemetry.dropped",
    kind="counter",
    unit="{item}",
    description="Telemetry items the SDK dropped (queue full or export failed), by signal.",
    attributes=(SIGNAL,),
)

#: Every metric of the conventions, by OpenTelemetry name.
METRICS: Final[dict[str, Metric]] = {
    m.name: m
    for m in (
        HTTP_SERVER_REQUEST_DURATION,
        HTTP_SERVER_ACTIVE_REQUESTS,
        PROCESS_CPU_TIME,
        PROCESS_MEMORY_USAGE,
        PROCESS_THREAD_COUNT,
        CPYTHON_GC_COLLECTIONS,
        TELEMETRY_DROPPED,
    )
}

# --- logs and traces ------------------------------------------------------------------------------


class LogFields(NamedTuple):
    """Keys of the JSON log line the SDK writes."""

    timestamp: str = "timestamp"
    level: str = "level"
    logger: str = "logger"
    event: str = "event"
    service: str = "service"
    environment: str = "env"
    trace_id: str = "trace_id"
    span_id: str = "span_id"
    exception: str = "exception"
    #: Level names as written (lower case, like structlog).
    levels: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")


LOG_FIELDS: Final = LogFields()
#: Loki stream label holding the service name (what OTLP ingestion into Loki derives from
#: ``service.name``).
LOKI_SERVICE_LABEL: Final = "service_name"
#: Tempo's TraceQL scope + attribute selecting a service.
TEMPO_SERVICE_ATTRIBUTE: Final = f"resource.{SERVICE_NAME}"
