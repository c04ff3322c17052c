"""``platform-obs doctor``: why is my dashboard empty? A checklist, each failure with a fix.

Every check is a small function returning :class:`CheckResult`. They follow the telemetry's path:

1. the service config validates (schema, templates, platform policy);
2. the OTLP endpoint the SDK would use (resolved exactly as ``init()`` resolves it: arguments aside,
   ``PLATFORM_OBS_*`` > ``OTEL_*`` per signal > ``OTEL_*`` > ``[tool.platform_obs]``) accepts a test
   span, metric point and log record, sent with the SDK's own OTLP exporters and a short timeout;
3. with a Prometheus URL: which label scheme the backend's series follow (resource attributes
   promoted to labels, or only ``job``/``instance`` plus ``target_info``) and whether the platform
   policy's ``platform.metric_labels`` fits it; the service's series of every conventions metric
   exist, with the labels the dashboards select on;
4. with ``GRAFANA_URL``/``GRAFANA_TOKEN``: the token works, the service's folder, dashboards and rule
   groups exist, and ``plan`` shows no drift.

Secrets (Grafana token, OTLP headers) never appear in results.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from platform_obs import conventions
from platform_obs.provisioning import urls
from platform_obs.provisioning.model import Rendered, ValidationFailed
from platform_obs.provisioning.render import label_scheme
from platform_obs.provisioning.spec import ServiceSpec

Status = Literal["ok", "fail", "skip"]
SIGNALS = ("traces", "metrics", "logs")
DEFAULT_TIMEOUT = 3.0
PROBE_NAME = "platform-obs doctor probe"
#: Conventions metrics whose absence is normal, and why.
OPTIONAL_METRICS = {
    conventions.TELEMETRY_DROPPED.name: "only present after the SDK dropped telemetry (none: good)",
}
_ITEM = {"traces": "span", "metrics": "metric point", "logs": "log record"}


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str = ""
    #: How to fix a failure (or how to enable a skipped check).
    hint: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def ok(name: str, detail: str = "") -> CheckResult:
    return CheckResult(name, "ok", detail)


def fail(name: str, detail: str, hint: str) -> CheckResult:
    return CheckResult(name, "fail", detail, hint)


def skip(name: str, detail: str, hint: str = "") -> CheckResult:
    return CheckResult(name, "skip", detail, hint)


# --- (a) config ---------------------------------------------------------------------------------


@dataclass
class ConfigState:
    """What later checks need from the config: the service and what it renders to."""

    spec: ServiceSpec | None = None
    rendered: Rendered | None = None


def check_config(
    path: Path, templates_dir: Path | None = None, policy_file: Path | None = None
) -> tuple[CheckResult, ConfigState]:
    from platform_obs.provisioning.pipeline import build
    from platform_obs.provisioning.spec import load_specs

    name = "config"
    state = ConfigState()
    if not path.exists():
        return fail(
            name,
            f"no service config at {path}",
            "create one with `platform-obs scaffold`, or pass its path: platform-obs doctor FILE",
        ), state
    try:
        specs = load_specs([path])
        state.spec = specs[0] if len(specs) == 1 else None
    except ValidationFailed:
        pass
    try:
        state.rendered = build([path], templates_dir, run_promtool=False, policy_file=policy_file)
    except ValidationFailed as exc:
        shown = "; ".join(str(p) for p in exc.problems[:3])
        more = f" (+{len(exc.problems) - 3} more)" if len(exc.problems) > 3 else ""
        return fail(
            name,
            f"{len(exc.problems)} problem(s): {shown}{more}",
            f"run `platform-obs validate {path}` for every problem with file, line and fix",
        ), state
    r = state.rendered
    if state.spec is None:
        return fail(
            name, f"{path} holds {len(r.services)} services", "pass one service's file"
        ), state
    return ok(
        name,
        f"{path}: service {state.spec.name}, {len(r.dashboards)} dashboard(s), "
        f"{len(r.rule_groups)} rule group(s)",
    ), state


# --- (b) OTLP -----------------------------------------------------------------------------------


class _Capture(logging.Handler):
    """Collects the exporters' log lines (the only place they say why an export failed)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a malformed log call must not break the check
            self.messages.append(record.getMessage())


@contextlib.contextmanager
def _captured_exporter_logs() -> Iterator[_Capture]:
    logger = logging.getLogger("opentelemetry.exporter")
    handler = _Capture()
    propagate, level = logger.propagate, logger.level
    logger.addHandler(handler)
    logger.propagate = False  # keep retry chatter off the doctor's output
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate, logger.level = propagate, level


def _host_port(endpoint: str, protocol: str) -> tuple[str, int]:
    """Host and port of an endpoint; ``ValueError`` when it is not a URL (bad port, IPv6...)."""
    parts = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    default = 443 if parts.scheme == "https" else (4317 if protocol == "grpc" else 4318)
    return parts.hostname or "localhost", parts.port or default


def _tcp_problem(host: str, port: int, timeout: float) -> str | None:
    """Why a TCP connection fails (refused, unresolvable, unreachable), or None."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return f"nothing listening at {host}:{port} (connection refused)"
    except socket.gaierror as exc:
        return f"cannot resolve host {host!r} ({exc.strerror})"
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g}s (firewall or wrong address?)"
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({exc.strerror or exc})"


def _resource(service: str | None, environment: str | None) -> Any:
    from opentelemetry.sdk.resources import Resource

    attrs = {conventions.SERVICE_NAME: service or "platform-obs-doctor"}
    if environment:
        attrs[conventions.DEPLOYMENT_ENVIRONMENT] = environment
    return Resource.create(attrs)


def probe_items(signal: str, resource: Any) -> Any:
    """One span / metric point / log record, made by the SDK so they encode like real ones."""
    if signal == "traces":
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        spans = InMemorySpanExporter()
        tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        tracer_provider.get_tracer("platform_obs.doctor").start_span(PROBE_NAME).end()
        return spans.get_finished_spans()
    if signal == "metrics":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        reader = InMemoryMetricReader()
        meter_provider = MeterProvider(
            resource=resource, metric_readers=[reader], shutdown_on_exit=False
        )
        meter_provider.get_meter("platform_obs.doctor").create_counter(
            "platform_obs.doctor.probe", unit="{probe}", description="platform-obs doctor probe"
        ).add(1)
        data = reader.get_metrics_data()
        meter_provider.shutdown()
        return data
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    records = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(records))
    logger_provider.get_logger("platform_obs.doctor").emit(
        timestamp=time.time_ns(),
        severity_number=SeverityNumber.INFO,
        severity_text="INFO",
        body=PROBE_NAME,
    )
    return records.get_finished_logs()


def _export(exporter: Any, signal: str, items: Any, deadline: float) -> tuple[bool | None, str]:
    """(accepted? — None when it did not return in time, error text) under a hard deadline."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            if signal == "metrics":
                result = exporter.export(items, timeout_millis=deadline * 1000)
            else:
                result = exporter.export(items)
            outcome["ok"] = getattr(result, "name", "") == "SUCCESS"
        except Exception as exc:  # the exporters should not raise; report it if they do
            outcome["ok"], outcome["error"] = False, f"{type(exc).__name__}: {exc}"

    worker = threading.Thread(target=run, name=f"doctor-{signal}", daemon=True)
    worker.start()
    worker.join(deadline + 2.0)  # exporters honour their timeout; the margin covers retries
    if worker.is_alive():
        return None, ""
    return outcome.get("ok", False), outcome.get("error", "")


_SETTINGS_HINT = "init() raises the same error at start-up: fix that variable or key"


def check_otlp(
    service: str | None,
    environ: Mapping[str, str] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    pyproject: Path | None = None,
) -> list[CheckResult]:
    """Send one test item per signal the SDK would export over OTLP; one result per signal."""
    from platform_obs._config import ConfigError, exporter_target, load_settings
    from platform_obs._exporters import otlp_exporter

    environ = os.environ if environ is None else environ
    try:
        settings = load_settings({}, environ, pyproject)
    except ConfigError as exc:
        return [fail("otlp settings", str(exc), _SETTINGS_HINT)]
    if settings.sdk_disabled:
        return [
            fail(
                "otlp settings",
                "the SDK is disabled (OTEL_SDK_DISABLED=true): it exports nothing",
                "unset OTEL_SDK_DISABLED in the service's environment",
            )
        ]
    exporters = {
        "traces": settings.traces_exporter,
        "metrics": settings.metrics_exporter,
        "logs": settings.logs_exporter if settings.log_to_otlp else (),
    }
    resource = _resource(service or settings.service_name, settings.environment)
    results: list[CheckResult] = []
    reachable: dict[tuple[str, int], str | None] = {}
    for signal in SIGNALS:
        name = f"otlp {signal}"
        if "otlp" not in exporters[signal]:
            hint = (
                "the --prometheus-url check covers metrics scraped from the pull endpoint; under "
                "a pre-fork server (gunicorn, uvicorn --workers) each worker serves on the next "
                "free port from OTEL_EXPORTER_PROMETHEUS_PORT (9464, 9465, ...): scrape that range "
                "(docs/service-shapes.md), or export over OTLP"
                if "prometheus" in exporters[signal]
                else ""
            )
            shown = ",".join(exporters[signal]) or "none"
            if signal == "logs" and not settings.log_to_otlp:
                shown = "none (log_to_otlp=false)"
            results.append(skip(name, f"{signal} exporter is {shown}, not otlp", hint))
            continue
        try:
            target = exporter_target(settings, signal, environ)  # type: ignore[arg-type]
        except ConfigError as exc:  # a malformed per-signal variable
            results.append(fail(name, str(exc), _SETTINGS_HINT))
            continue
        target = target._replace(timeout=min(target.timeout, timeout))
        where = f"{urls.mask(target.endpoint)} ({target.protocol})"
        try:
            address = _host_port(target.endpoint, target.protocol)
        except ValueError as exc:
            results.append(
                fail(
                    name,
                    f"the {signal} endpoint {urls.mask(target.endpoint)!r} is not a valid URL "
                    f"({exc})",
                    "set OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_"
                    f"{signal.upper()}_ENDPOINT) to e.g. http://localhost:4317",
                )
            )
            continue
        if address not in reachable:
            reachable[address] = _tcp_problem(*address, timeout=min(timeout, 2.0))
        problem = reachable[address]
        if problem:
            results.append(
                fail(
                    name,
                    f"{problem}; the SDK would export {signal} to {where}",
                    "is the collector running? set OTEL_EXPORTER_OTLP_ENDPOINT (or "
                    f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT) to its address",
                )
            )
            continue
        results.append(_send_probe(name, signal, target, where, resource, timeout, otlp_exporter))
    return results


def check_instrumentations(environ: Mapping[str, str] | None = None) -> CheckResult:
    """Which installed libraries ``init()`` instruments here, and which it cannot and why."""
    from platform_obs._instrumentation import UNSUPPORTED, survey

    environ = os.environ if environ is None else environ
    disabled = [
        x.strip() for x in environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")
    ]
    found = survey([x for x in disabled if x])
    active = sorted(s.name for s in found if s.status == "instrumented when imported")
    unsupported = [s for s in found if s.status == UNSUPPORTED]
    broken = [s for s in found if s.status == "failed"]
    detail = f"instrumented: {', '.join(active) or 'none'}"
    if unsupported or broken:
        problems = "; ".join(s.describe() for s in [*unsupported, *broken])
        return fail(
            "instrumentation",
            f"{detail}; not instrumented: {problems}",
            "install a version in the supported range (or the matching platform-obs extra), or "
            "list the instrumentation in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
        )
    return ok("instrumentation", detail)


def _send_probe(
    name: str,
    signal: str,
    target: Any,
    where: str,
    resource: Any,
    timeout: float,
    make: Callable[..., Any],
) -> CheckResult:
    try:
        exporter = make(signal, target, None)
    except Exception as exc:  # e.g. an endpoint the exporter cannot use; doctor must not crash
        return fail(
            name,
            f"the SDK cannot create its {signal} exporter for {where}: {type(exc).__name__}",
            "check OTEL_EXPORTER_OTLP_ENDPOINT / _PROTOCOL / _HEADERS: init() would fail the same",
        )
    started = time.monotonic()
    with _captured_exporter_logs() as logs:
        accepted, error = _export(exporter, signal, probe_items(signal, resource), timeout)
    elapsed = time.monotonic() - started
    threading.Thread(target=exporter.shutdown, daemon=True).start()  # never wait on a hung channel
    item = _ITEM[signal]
    if accepted:
        return ok(name, f"{where} accepted a test {item} in {elapsed:.2f}s")
    code = _answer_code(logs.messages)
    said = error or (logs.messages[-1] if logs.messages else "")
    said = f": {said}" if said else ""
    if code is None and (accepted is None or elapsed >= timeout * 0.9):
        return fail(
            name,
            f"no answer from {where} within {timeout:g}s{said}",
            "something accepts connections there but does not answer: a hung or overloaded "
            "collector, or the wrong protocol (OTEL_EXPORTER_OTLP_PROTOCOL grpc uses port 4317, "
            "http/protobuf 4318)",
        )
    answered = f" (answered {code})" if code else ""
    return fail(
        name, f"{where} rejected the test {item}{answered}{said}", _rejection_hint(code, signal)
    )


_GRPC_CODE = re.compile(r"StatusCode\.([A-Z_]+)")
_HTTP_CODE = re.compile(r"\bcode: (\d{3})\b")


def _answer_code(messages: Sequence[str]) -> str | None:
    """What the collector answered, as the exporters log it: ``HTTP 400`` or a gRPC status."""
    for message in reversed(messages):
        match = _GRPC_CODE.search(message)
        if match and match.group(1) != "DEADLINE_EXCEEDED":
            return match.group(1)
        match = _HTTP_CODE.search(message)
        if match:
            return f"HTTP {match.group(1)}"
    return None


def _rejection_hint(code: str | None, signal: str) -> str:
    text = code or ""
    if any(c in text for c in ("401", "403", "UNAUTHENTICATED", "PERMISSION_DENIED")):
        return "the collector wants credentials: set OTEL_EXPORTER_OTLP_HEADERS"
    if any(c in text for c in ("404", "UNIMPLEMENTED")):
        return (
            f"no OTLP {signal} endpoint there: check the port and OTEL_EXPORTER_OTLP_PROTOCOL, "
            f"and that the collector has a {signal} pipeline"
        )
    if any(c in text for c in ("429", "502", "503", "504", "UNAVAILABLE", "RESOURCE_EXHAUSTED")):
        return (
            "the collector is up but refuses data for now (overloaded, or its own exporter is "
            "failing): check its logs and memory limiter"
        )
    return (
        f"check the collector's logs, that its {signal} pipeline has an otlp receiver, and "
        "OTEL_EXPORTER_OTLP_HEADERS if it needs auth"
    )


# --- (c) Prometheus -----------------------------------------------------------------------------


class PrometheusError(Exception):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def prometheus_query(url: str, expr: str, timeout: float) -> list[dict[str, Any]]:
    """An instant query's result vector; :class:`PrometheusError` with a hint on failure."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    headers = {}
    if parts.username is not None:  # http://user:password@host: basic auth, not part of the address
        pair = (
            f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        )
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        bracketed = f"[{host}]" if ":" in host else host
        netloc = bracketed if parts.port is None else f"{bracketed}:{parts.port}"
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    full = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    # Loopback never goes through a proxy from the environment.
    proxies: dict[str, str] | None = {} if host in ("localhost", "127.0.0.1", "::1") else None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
    try:
        with opener.open(
            urllib.request.Request(full, headers=headers), timeout=timeout
        ) as response:
            body = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise PrometheusError(
                f"Prometheus at {url} refused the query (HTTP {exc.code})",
                "it needs authentication; query a URL reachable without it (e.g. through "
                "kubectl port-forward)",
            ) from None
        raise PrometheusError(
            f"Prometheus at {url} answered HTTP {exc.code}",
            "check --prometheus-url: it is the server's base URL (the one /graph is under)",
        ) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            what = f"nothing listening at {url} (connection refused)"
        else:
            what = f"cannot reach {url} ({reason})"
        raise PrometheusError(what, "is Prometheus running? check --prometheus-url") from None
    except TimeoutError:
        raise PrometheusError(
            f"no answer from {url} within {timeout:g}s", "is Prometheus overloaded?"
        ) from None
    except (ValueError, UnicodeDecodeError):
        raise PrometheusError(
            f"{url} did not answer like the Prometheus HTTP API",
            "check --prometheus-url: it is the server's base URL",
        ) from None
    if body.get("status") != "success":
        raise PrometheusError(
            f"query failed: {body.get('error', body)}", "check the Prometheus version (>= 2.x)"
        )
    return list(body.get("data", {}).get("result", []))


def _series_name(metric: conventions.Metric) -> str:
    return metric.series("count") if metric.kind == "histogram" else metric.series()


_SCHEME_WORDS = {
    label_scheme.PROMOTED: "resource attributes as labels of every series (service_name ...)",
    label_scheme.TARGET_INFO: "only job/instance on the series, the resource attributes on "
    "target_info",
}


def detect_label_scheme(url: str, spec: ServiceSpec, timeout: float) -> str | None:
    """The label scheme the backend's series of this service follow; ``None`` without series."""
    service_label = conventions.prom_label(conventions.SERVICE_NAME)
    names = "|".join(sorted(_series_name(m) for m in conventions.METRICS.values()))
    promoted = f'count({{__name__=~"{names}", {service_label}="{spec.name}"}})'
    if prometheus_query(url, promoted, timeout):
        return label_scheme.PROMOTED
    job = label_scheme.job_value(spec.name, spec.namespace)
    by_job = f'count({{__name__=~"{names}", job="{job}", {service_label}=""}})'
    if prometheus_query(url, by_job, timeout):
        return label_scheme.TARGET_INFO
    return None


def check_label_scheme(
    url: str, spec: ServiceSpec, configured: str, timeout: float
) -> tuple[CheckResult, str]:
    """Which scheme the backend uses and whether the policy's setting fits (and the scheme the
    series checks should query with)."""
    name = "label scheme"
    found = detect_label_scheme(url, spec, timeout)
    if found is None:
        return skip(name, "no series of the service to tell the backend's label scheme"), configured
    if found == configured:
        return ok(
            name,
            f"the backend keeps {_SCHEME_WORDS[found]}; platform.metric_labels: {configured} fits",
        ), found
    promote = ", ".join(conventions.PROMOTED_RESOURCE_ATTRIBUTES)
    return fail(
        name,
        f"the backend keeps {_SCHEME_WORDS[found]}, but the platform renders dashboards and alerts "
        f"for {_SCHEME_WORDS[configured]} (platform.metric_labels: {configured})",
        f"set `platform: {{metric_labels: {found}}}` in the platform policy "
        "(policies/platform.yaml) and re-apply every service"
        + (
            f"; or promote {promote} in the backend (Prometheus 3 / Mimir: "
            "otlp.promote_resource_attributes; Collector: examples/collector/otel-collector.yaml)"
            if found == label_scheme.TARGET_INFO
            else ""
        ),
    ), found


def check_prometheus(
    url: str,
    spec: ServiceSpec,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    metric_labels: str = label_scheme.PROMOTED,
) -> list[CheckResult]:
    """The backend's label scheme against the platform setting, then one result per conventions
    metric: the service's series exist with the dashboards' labels."""
    why = urls.problem(url)
    if why:
        return [fail("prometheus", f"--prometheus-url {why}", "e.g. http://localhost:9090")]
    service_label = conventions.prom_label(conventions.SERVICE_NAME)
    env_label = conventions.prom_label(conventions.DEPLOYMENT_ENVIRONMENT)
    try:
        scheme_result, scheme = check_label_scheme(url, spec, metric_labels, timeout)
    except PrometheusError as exc:
        return [fail("prometheus", str(exc), exc.hint)]
    results = [scheme_result]
    job = label_scheme.job_value(spec.name, spec.namespace)
    join = label_scheme.Join(f'job="{job}"', f'{env_label}=~".*"')
    for metric in conventions.METRICS.values():
        name = f"series {metric.name}"
        series = _series_name(metric)
        selected = (
            label_scheme.apply(f'{series}{{job="{job}"}}', join)
            if scheme == label_scheme.TARGET_INFO
            else f'{series}{{{service_label}="{spec.name}"}}'
        )
        try:
            found = prometheus_query(url, f"count by ({env_label}) ({selected})", timeout)
            if not found:
                results.append(_why_no_series(url, metric, series, spec, timeout))
                continue
        except PrometheusError as exc:
            return [*results, fail("prometheus", str(exc), exc.hint)]
        envs = sorted(str(r["metric"].get(env_label, "")) for r in found)
        count = sum(int(float(r["value"][1])) for r in found)
        if "" in envs:
            results.append(
                fail(
                    name,
                    f"{count} {series} series for {service_label}={spec.name!r} lack {env_label}",
                    "set the environment (init(environment=...) or PLATFORM_OBS_ENVIRONMENT); the "
                    "dashboards' env selector and the alerts filter on it",
                )
            )
        elif not set(envs) & set(spec.environments):
            results.append(
                fail(
                    name,
                    f"series only for {env_label} {', '.join(envs)}; the alerts watch "
                    f"{', '.join(spec.environments)}",
                    "make `environments:` in the config match the environment the SDK reports",
                )
            )
        else:
            results.append(ok(name, f"{count} series ({', '.join(envs)})"))
    if spec.slos is not None:
        try:
            results.append(_slo_recordings(url, spec, timeout))
        except PrometheusError as exc:
            results.append(fail("slo recordings", str(exc), exc.hint))
    return results


def _slo_recordings(url: str, spec: ServiceSpec, timeout: float) -> CheckResult:
    """The SLO dashboard and the burn-rate alerts read recorded series: are they recorded?"""
    from platform_obs.provisioning.render.recording import SLI_ERROR_PREFIX, SLO_LABEL

    service_label = conventions.prom_label(conventions.SERVICE_NAME)
    found = prometheus_query(
        url,
        f'count by ({SLO_LABEL}) ({{__name__=~"{SLI_ERROR_PREFIX}.+", '
        f'{service_label}="{spec.name}"}})',
        timeout,
    )
    assert spec.slos is not None
    wanted = {
        kind
        for kind, declared in (
            ("availability", spec.slos.availability),
            ("latency", spec.slos.latency),
        )
        if declared is not None
    }
    missing = sorted(wanted - {str(r["metric"].get(SLO_LABEL)) for r in found})
    requests = conventions.HTTP_SERVER_REQUEST_DURATION.series("count")
    if missing and not prometheus_query(
        url, f'sum(increase({requests}{{{service_label}="{spec.name}"}}[5m])) > 0', timeout
    ):
        return skip(
            "slo recordings",
            f"no requests for {service_label}={spec.name!r} in the last 5 minutes: the recorded "
            "SLIs are empty without traffic",
        )
    if missing:
        return fail(
            "slo recordings",
            f"no {SLI_ERROR_PREFIX}<window> series for {service_label}={spec.name!r}, "
            f"slo {', '.join(missing)}: the SLO dashboard is empty and the burn-rate alerts "
            "cannot fire",
            f"load prometheus/{spec.name}.slo.rules.yaml (from `platform-obs render`) into the "
            "Prometheus / Mimir ruler of this datasource (docs/service-config.md, "
            '"SLO recording rules")',
        )
    return ok("slo recordings", f"recorded: {', '.join(sorted(wanted))}")


def _why_no_series(
    url: str, metric: conventions.Metric, series: str, spec: ServiceSpec, timeout: float
) -> CheckResult:
    service_label = conventions.prom_label(conventions.SERVICE_NAME)
    name = f"series {metric.name}"
    if metric.name in OPTIONAL_METRICS:
        return skip(name, f"no {series} series: {OPTIONAL_METRICS[metric.name]}")
    others = prometheus_query(url, f"count by ({service_label}) ({series})", timeout)
    services = sorted(str(r["metric"].get(service_label, "")) for r in others)
    detail = f'no series for {service_label}="{spec.name}" ({series})'
    if "" in services:
        return fail(
            name,
            f"{detail}; {series} series exist without a {service_label} label",
            "resource attributes are not promoted to labels: promote them in the backend "
            "(examples/collector/otel-collector.yaml, otlp.promote_resource_attributes) or set "
            "`platform: {metric_labels: target_info}` in the platform policy",
        )
    if services:
        return fail(
            name,
            f"{detail}; found for {service_label}: {', '.join(services[:5])}",
            f'is init() called with the same service name (service_name="{spec.name}")?',
        )
    emitted_by = (
        "the HTTP server instrumentation: has the service served requests? is its framework "
        "instrumented (init() before the app object is created)?"
        if metric.name.startswith("http.")
        else "the SDK's runtime metrics (runtime_metrics on)"
    )
    return fail(
        name,
        f"{detail}; no {series} series at all",
        f'is init() called with service_name="{spec.name}"? is Prometheus scraping/receiving '
        f"(collector exporter, remote write or scrape target up)? The metric comes from "
        f"{emitted_by}",
    )


# --- (d) Grafana --------------------------------------------------------------------------------


def check_grafana(
    rendered: Rendered | None,
    environ: Mapping[str, str] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[CheckResult]:
    from platform_obs.provisioning.grafana import Grafana, GrafanaError, RetryPolicy
    from platform_obs.provisioning.plan import build_plan, group_rules
    from platform_obs.provisioning.plan_view import summary_line

    environ = os.environ if environ is None else environ
    if not (environ.get("GRAFANA_URL", "").strip() and environ.get("GRAFANA_TOKEN", "").strip()):
        return [skip("grafana", "GRAFANA_URL/GRAFANA_TOKEN not set", "set both to check Grafana")]
    try:
        grafana = Grafana.from_env(environ, timeout=timeout, retry=RetryPolicy(attempts=1))
    except GrafanaError as exc:
        return [fail("grafana", str(exc), "fix GRAFANA_URL / GRAFANA_TOKEN")]
    with grafana:
        try:
            folders = {str(f["uid"]) for f in grafana.list_folders()}
        except GrafanaError as exc:
            return [fail("grafana token", str(exc), _grafana_hint(exc, grafana.url))]
        results = [ok("grafana token", f"accepted by {grafana.url}")]
        if rendered is None:
            return [*results, skip("grafana objects", "the config is invalid", "fix it first")]
        try:
            results.append(_contact_points(grafana, rendered))
            results += _grafana_objects(grafana, rendered, folders, group_rules)
            plan = build_plan(rendered, grafana, deep=True)  # also catches UI edits
        except GrafanaError as exc:
            return [*results, fail("grafana", str(exc), _grafana_hint(exc, grafana.url))]
    if plan.refused:
        first = plan.refused[0]
        results.append(
            fail(
                "grafana ownership",
                f"{len(plan.refused)} declared object(s) are not this config's: {first.reason}",
                "see the ownership section of docs/cli.md: rename the service, delete the object "
                "in Grafana, or run apply with --adopt",
            )
        )
    if plan.has_changes:
        changed = [f"{c.action} {c.kind} {c.key}" for c in plan.writes]
        results.append(
            fail(
                "grafana in sync",
                f"{summary_line(plan)} {'; '.join(changed[:4])}",
                "run `platform-obs plan` to see the diff and `platform-obs apply` to fix it "
                "(edits made in the Grafana UI are overwritten by apply)",
            )
        )
    elif not plan.refused:
        results.append(ok("grafana in sync", "plan shows no changes"))
    return results


def _contact_points(grafana: Any, rendered: Rendered) -> CheckResult:
    from platform_obs.provisioning.receivers import check

    problems = check(rendered, grafana)
    if problems:
        return fail(
            "grafana contact points",
            "; ".join(f"{p.file}: {p.value!r} {p.message}" for p in problems),
            problems[0].expected + " — fix `receiver` in the config, or create the contact point",
        )
    return ok("grafana contact points", "every receiver exists")


def _grafana_objects(
    grafana: Any, rendered: Rendered, folders: set[str], group_rules: Callable[..., Any]
) -> list[CheckResult]:
    hint = "run `platform-obs apply` with this config (CI on the main branch does it)"
    missing_folders = [f.uid for f in rendered.folders if f.uid not in folders]
    boards = {str(h["uid"]) for h in grafana.list_managed_dashboards()}
    missing_boards = [d.uid for d in rendered.dashboards if d.uid not in boards]
    groups = group_rules(grafana.list_alert_rules())
    missing_groups = [
        g.title for g in rendered.rule_groups if (g.folder_uid, g.title) not in groups
    ]
    out = []
    for label, missing, total in (
        ("grafana folders", missing_folders, len(rendered.folders)),
        ("grafana dashboards", missing_boards, len(rendered.dashboards)),
        ("grafana rule groups", missing_groups, len(rendered.rule_groups)),
    ):
        if missing:
            out.append(fail(label, f"missing: {', '.join(missing)}", hint))
        else:
            out.append(ok(label, f"{total} present"))
    return out


def _grafana_hint(exc: Exception, url: str) -> str:
    status = getattr(exc, "status", None)
    if status == 401:
        return "GRAFANA_TOKEN is wrong or expired: create a service account token in Grafana"
    if status == 403:
        return "the token's service account needs the Editor role (Admin to create folders)"
    return f"is Grafana reachable at {url}? check GRAFANA_URL"


# --- all together -------------------------------------------------------------------------------


def run(
    config: Path,
    *,
    prometheus_url: str | None = None,
    templates_dir: Path | None = None,
    policy_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[CheckResult]:
    result, state = check_config(config, templates_dir, policy_file)
    results = [result]
    service = state.spec.name if state.spec else None
    results += check_otlp(service, environ, timeout=timeout)
    results.append(check_instrumentations(environ))
    if not prometheus_url:
        results.append(skip("prometheus", "no --prometheus-url", "pass it to check the series"))
    elif state.spec is None:
        results.append(skip("prometheus", "no service name (config unreadable)"))
    else:
        from platform_obs.provisioning import policy

        the_policy, _ = policy.load_policy(policy.policy_source(templates_dir, policy_file))
        results += check_prometheus(
            prometheus_url, state.spec, timeout=timeout, metric_labels=the_policy.metric_labels
        )
    results += check_grafana(state.rendered, environ, timeout=timeout)
    secrets = _secrets(os.environ if environ is None else environ, prometheus_url)
    return [_scrubbed(r, secrets) for r in results]


def _secrets(environ: Mapping[str, str], prometheus_url: str | None) -> set[str]:
    """Every credential the checks were given: URL passwords, header values, the Grafana token.

    Checks mask what they print themselves; this is the last guard for text they pass on from
    libraries (an exporter's log line may quote the endpoint, password included).
    """
    found = set()
    for name, value in [*environ.items(), ("--prometheus-url", prometheus_url or "")]:
        if not value:
            continue
        if name.endswith("_HEADERS"):
            for item in value.split(","):
                secret = item.partition("=")[2].strip()
                found |= {secret, urllib.parse.unquote(secret)}
        elif name == "GRAFANA_TOKEN":
            found |= {value, value.strip()}
        elif "@" in value and (credential := urls.credential(value)):
            found |= {credential, urllib.parse.unquote(credential)}
    return {s for s in found if len(s) >= 3}  # masking "a" would garble every message


def _scrubbed(result: CheckResult, secrets: set[str]) -> CheckResult:
    detail, hint = result.detail, result.hint
    for secret in sorted(secrets, key=len, reverse=True):
        detail, hint = detail.replace(secret, urls.MASK), hint.replace(secret, urls.MASK)
    if (detail, hint) == (result.detail, result.hint):
        return result
    return CheckResult(result.name, result.status, detail, hint)


SYMBOLS = {"ok": "\u2713", "fail": "\u2717", "skip": "\u2013"}  # ✓ ✗ en dash
ASCII_SYMBOLS = {"ok": "OK  ", "fail": "FAIL", "skip": "SKIP"}


def report(results: Sequence[CheckResult], *, ascii_only: bool = False) -> str:
    symbols = ASCII_SYMBOLS if ascii_only else SYMBOLS
    width = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        lines.append(f"{symbols[r.status]} {r.name:<{width}}  {r.detail}".rstrip())
        if r.hint and r.status != "ok":
            lines.append(f"    {'fix' if r.failed else 'to run it'}: {r.hint}")
    failed = sum(r.failed for r in results)
    lines.append(f"{failed} check(s) failed." if failed else "All checks passed (or were skipped).")
    return "\n".join(lines) + "\n"
