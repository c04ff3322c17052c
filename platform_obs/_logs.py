"""Structured logs: one structlog pipeline for service code and stdlib ``logging`` alike.

Every event goes through the same small processors (structlog style: each takes and returns the
event dict), then is written once as a JSON line (or a readable console line on a terminal) and,
when enabled, emitted as an OpenTelemetry LogRecord whose attributes are the event's fields.

The hot path is deliberately fused: :class:`PlatformFields` adds level, timestamp, trace context and
service fields and applies redaction in one pass, so a log line costs no more than structlog's own
default JSON pipeline.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Final

import structlog
from opentelemetry import trace as trace_api
from opentelemetry._logs import Logger as OtelLogger
from opentelemetry._logs import LoggerProvider as OtelLoggerProvider
from opentelemetry._logs import SeverityNumber

from platform_obs import _errors, _servers
from platform_obs import conventions as c
from platform_obs._redaction import SCALARS, Redactor, mask_url_passwords, type_name
from platform_obs._sanitize import (
    clean_text,
    json_safe_fields,
    one_line,
    otlp_safe_fields,
    safe_str,
)

EventDict = MutableMapping[str, Any]
Processor = Callable[[Any, str, EventDict], Any]

F: Final = c.LOG_FIELDS
LEVELS: Final[dict[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_METHOD_TO_LEVEL: Final = {
    "debug": "debug",
    "info": "info",
    "msg": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
    "exception": "error",
    "critical": "critical",
    "fatal": "critical",
}
_SEVERITY: Final = {
    "debug": SeverityNumber.DEBUG,
    "info": SeverityNumber.INFO,
    "warning": SeverityNumber.WARN,
    "error": SeverityNumber.ERROR,
    "critical": SeverityNumber.FATAL,
}
#: Loggers whose records are printed but never exported: exporting the exporter's own complaints
#: while the collector is down would feed the failure back into itself.
INTERNAL_LOGGER_PREFIXES: Final = (
    "opentelemetry",
    "platform_obs.export",
    "grpc",
    "urllib3",
    "requests",
)
_MARK_INTERNAL: Final = "_platform_obs_internal"


class _UtcClock:
    """ISO-8601 UTC timestamps with the per-second prefix cached (formatting dominates the cost)."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def iso(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        second = int(now)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"


class PlatformFields:
    """Level, UTC timestamp, service fields, W3C trace ids (inside a valid span only), redaction,
    and exceptions as structured data: one pass, because each processor call has a fixed cost."""

    __slots__ = ("_clock", "_ids", "_redactor", "_service")

    def __init__(self, service_fields: Mapping[str, str], redactor: Redactor) -> None:
        self._service = tuple(service_fields.items())
        self._redactor = redactor
        self._clock = _UtcClock()
        # (span_id, trace_id hex, span_id hex) of the last span seen: many lines share a span.
        self._ids: tuple[int, str, str] = (0, "", "")

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        decisions = self._redactor.decisions
        for key, value in event_dict.items():
            sensitive = decisions.get(key)
            if sensitive is None:
                sensitive = self._redactor.is_sensitive(key)
            if sensitive:
                event_dict[key] = "[REDACTED]"
            elif type(value) not in SCALARS:
                # Any mapping or sequence, at any depth; a redacted copy, never the caller's object.
                redacted = self._redactor.redact_value(value)
                if redacted is not value:
                    event_dict[key] = redacted
        if F.level not in event_dict:
            event_dict[F.level] = _METHOD_TO_LEVEL.get(method_name, method_name)
        if F.logger not in event_dict and (name := getattr(logger, "name", None)):
            event_dict[F.logger] = name
        if F.timestamp not in event_dict:
            event_dict[F.timestamp] = self._clock.iso()
        for key, value in self._service:
            if key not in event_dict:
                event_dict[key] = value
        ctx = trace_api.get_current_span().get_span_context()
        if ctx.is_valid:
            ids = self._ids
            if ids[0] != ctx.span_id:
                ids = self._ids = (
                    ctx.span_id,
                    format(ctx.trace_id, "032x"),
                    format(ctx.span_id, "016x"),
                )
            event_dict[F.trace_id] = ids[1]
            event_dict[F.span_id] = ids[2]
        if "exc_info" in event_dict:
            if method_name == "exception" and event_dict["exc_info"] is True:
                event_dict["exc_info"] = sys.exc_info()
            if ctx.is_valid:  # the request's error is told once: see _errors
                _errors.note_logged(self._ids[1], event_dict["exc_info"])
            return _format_exception(logger, method_name, event_dict)
        return event_dict


# No locals: they leak secrets past redaction and bloat every error line.
_format_exception = structlog.processors.ExceptionRenderer(
    structlog.processors.ExceptionDictTransformer(show_locals=False)
)


# Fields the LogRecord carries natively (body, severity, time, context) or the resource already has.
_OTLP_SKIP: Final = frozenset(
    {F.event, F.level, F.timestamp, F.trace_id, F.span_id, F.service, F.environment, _MARK_INTERNAL}
)
_PRIMITIVES: Final = (str, bool, int, float, bytes)


def _attribute_value(value: Any) -> Any:
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, Mapping):
        # An empty key would be dropped by the SDK with a warning line of its own.
        return {(str(k) or "<empty>"): _attribute_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_attribute_value(v) for v in value]
    return str(value)


class OtlpEmitter:
    """Emits each event as an OTel LogRecord: body = event, attributes = the other fields."""

    __slots__ = ("_loggers", "_provider", "enabled")

    def __init__(self, provider: OtelLoggerProvider) -> None:
        self._provider = provider
        self._loggers: dict[str, OtelLogger] = {}
        #: Switched off at shutdown: cached loggers keep this processor, the provider is gone.
        self.enabled = True

    def _logger(self, name: str) -> OtelLogger:
        logger = self._loggers.get(name)
        if logger is None:
            logger = self._loggers[name] = self._provider.get_logger(name or "platform_obs")
        return logger

    def __call__(self, _logger: Any, _method_name: str, event_dict: EventDict) -> EventDict:
        if not self.enabled or event_dict.get(_MARK_INTERNAL):
            return event_dict
        try:
            self._emit(event_dict)
        except Exception:
            # A value the fast conversion cannot take (a raising __str__, odd keys): retry with
            # every value made safe; if even that fails the record is dropped, the line still printed.
            with contextlib.suppress(Exception):
                self._emit(otlp_safe_fields(event_dict))
        return event_dict

    def _emit(self, event_dict: Mapping[str, Any]) -> None:
        level = str(event_dict.get(F.level, "info"))
        attributes = {
            k: (v if isinstance(v, _PRIMITIVES) else _attribute_value(v))
            for k, v in event_dict.items()
            if k not in _OTLP_SKIP
        }
        exc = event_dict.get(F.exception)
        if type(exc) is list and exc and type(exc[0]) is dict:
            # Semantic-convention keys too, which backends know how to show (first = the raised one).
            attributes["exception.type"] = str(exc[0].get("exc_type", ""))
            attributes["exception.message"] = str(exc[0].get("exc_value", ""))
        self._logger(str(event_dict.get(F.logger, ""))).emit(
            timestamp=time.time_ns(),
            severity_number=_SEVERITY.get(level, SeverityNumber.INFO),
            severity_text=level.upper(),
            body=_attribute_value(event_dict.get(F.event, "")),
            attributes=attributes,
        )


def drop_internal_marker(_logger: Any, _method_name: str, event_dict: EventDict) -> EventDict:
    event_dict.pop(_MARK_INTERNAL, None)
    return event_dict


def _json_default(value: Any) -> Any:
    return sorted(map(str, value)) if isinstance(value, (set, frozenset)) else repr(value)


# Built once: json.dumps() with any option builds a new encoder on every call. allow_nan=False: a
# bare NaN is not JSON; such a value sends the event down the safe path instead (see json_renderer).
_ENCODER = json.JSONEncoder(default=_json_default, ensure_ascii=False, allow_nan=False)


def json_renderer(_logger: Any, _method_name: str, event_dict: EventDict) -> str:
    """One strict-JSON line. The C encoder takes the common event; anything it rejects (NaN and
    infinities, cycles, keys that are not strings, a raising ``__repr__``) is re-rendered from a
    safe copy (:func:`platform_obs._sanitize.json_safe_fields`), so the line is always written."""
    event_dict.pop(_MARK_INTERNAL, None)
    try:
        line = _ENCODER.encode(event_dict)
    except Exception:
        line = _ENCODER.encode(json_safe_fields(event_dict))
    if "@" in line:  # a URL with a password in it, in any field or message: masked
        line = mask_url_passwords(line)
    return line if line.isascii() else one_line(line)


class SafeConsoleRenderer:
    """structlog's console renderer, falling back to a safe copy of the event when it raises."""

    def __init__(self, inner: Processor) -> None:
        self._inner = inner

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> Any:
        snapshot = dict(event_dict)
        try:
            line = self._inner(logger, method_name, event_dict)
        except Exception:
            line = self._inner(logger, method_name, json_safe_fields(snapshot))
        return one_line(mask_url_passwords(line))


class StdoutWriter:
    """Writes rendered lines to whatever ``sys.stdout`` is at the time (survives redirection).

    One per logger name: processors read the name from it, like structlog's ``add_logger_name``.
    """

    __slots__ = ("name",)

    def __init__(self, name: str = "") -> None:
        self.name = name

    def msg(self, message: str) -> None:
        # Flushed per line, like structlog's own loggers: a pre-fork worker may leave by os._exit()
        # (Celery's pool, gunicorn), which would drop a block-buffered pipe's content.
        try:
            out = sys.stdout
            out.write(message + "\n")
            out.flush()
        except UnicodeEncodeError:  # a stdout that is not UTF-8: escape, still one line
            _write_ascii(message)
        except Exception:  # stdout closed or gone: telemetry trouble is never the service's
            pass

    debug = info = warning = warn = error = critical = exception = fatal = log = msg

    def flush(self) -> None:
        sys.stdout.flush()


class _StdoutWriterFactory:
    def __init__(self) -> None:
        self._writers: dict[str, StdoutWriter] = {}

    def __call__(self, *args: Any) -> StdoutWriter:
        name = str(args[0]) if args and args[0] is not None else ""
        writer = self._writers.get(name)
        if writer is None:
            writer = self._writers[name] = StdoutWriter(name)
        return writer


def choose_renderer(log_format: str) -> Processor:
    if log_format == "auto":
        log_format = "console" if sys.stdout.isatty() else "json"
    if log_format == "console":
        return SafeConsoleRenderer(
            structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty(), event_key=F.event)
        )
    return json_renderer


def build_processors(
    service_fields: Mapping[str, str],
    redactor: Redactor,
    renderer: Processor,
    otlp: OtlpEmitter | None,
) -> list[Processor]:
    chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        PlatformFields(service_fields, redactor),
    ]
    if otlp is not None:
        chain.append(otlp)
    if renderer is not json_renderer:  # the JSON renderer drops the marker itself
        chain.append(drop_internal_marker)
    chain.append(renderer)
    return chain


# --- stdlib logging bridge -----------------------------------------------------------------------

_STD_RECORD_KEYS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "taskName", "color_message"}
)


class StdlibBridge(logging.Handler):
    """Root handler: stdlib records (third-party libraries) go through the same processors."""

    def __init__(
        self, processors: list[Processor], level: int, rate_limit: RateLimitFilter
    ) -> None:
        super().__init__(level)
        self._processors = processors
        self._rate_limit = rate_limit
        self._clock = _UtcClock()
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        # A processor that logs (e.g. the OTel SDK warning about a dropped attribute) must not recurse.
        if getattr(self._local, "busy", False):
            return
        internal = record.name.startswith(INTERNAL_LOGGER_PREFIXES)
        if internal and not self._rate_limit.filter(record):
            return
        if record.exc_info and _errors.is_server_echo(record.name, record.exc_info):
            return  # the server repeating an exception already logged with its trace id
        self._local.busy = True
        try:
            event: dict[str, Any] = {
                F.event: _message(record),
                F.level: record.levelname.lower(),
                F.logger: record.name,
                F.timestamp: self._clock.iso(record.created),
            }
            event.update(
                (k, v)
                for k, v in vars(record).items()
                if k not in _STD_RECORD_KEYS and k[:1] != "_"
            )
            if record.exc_info and record.exc_info[0] is not None:
                event["exc_info"] = record.exc_info
            if record.name in _servers.ACCESS_LOGGERS and (
                access := _servers.access_fields(record)
            ):
                event[F.event] = _servers.ACCESS_EVENT
                event.update(access)
            if internal:
                event[_MARK_INTERNAL] = True
            method = record.levelname.lower()
            line: Any = event
            for processor in self._processors:
                line = processor(None, method, line)
            _STDOUT.msg(str(line))
        except Exception as exc:
            # Logging must never raise into the caller, nor print the record's arguments (what
            # Handler.handleError does): one placeholder line instead.
            _STDOUT.msg(fallback_line(record.name, record.levelname.lower(), record.msg, exc))
        finally:
            self._local.busy = False


class RateLimitFilter(logging.Filter):
    """Lets one record per (logger, message template) through per ``interval`` seconds.

    Applied to the SDK's own loggers (OpenTelemetry, gRPC, ours): with the collector down they would
    otherwise log every failed export attempt.
    """

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self._interval = interval
        self._last: dict[tuple[str, Any], float] = {}
        self._suppressed: dict[tuple[str, Any], int] = {}
        self._lock = threading.Lock()

    def reinit_after_fork(self) -> None:
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            if len(self._last) > 1000:
                self._last.clear()
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            record.suppressed_similar = suppressed
        return True


def install(
    processors: list[Processor],
    level: str,
    rate_limit: RateLimitFilter,
) -> StdlibBridge:
    """Configure structlog and the stdlib root logger; returns the bridge handler (for removal)."""
    numeric = LEVELS[level]
    structlog.configure(
        processors=processors,
        wrapper_class=safe_bound_logger(numeric),
        logger_factory=_StdoutWriterFactory(),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    # No line printed twice: our bridge replaces console handlers (ours from an earlier init, or a
    # basicConfig() someone ran); handlers writing elsewhere (files, syslog) are left alone.
    for handler in list(root.handlers):
        stream = getattr(handler, "stream", None)
        if isinstance(handler, StdlibBridge) or (
            type(handler) is logging.StreamHandler
            and stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
        ):
            root.removeHandler(handler)
    bridge = StdlibBridge(processors, numeric, rate_limit)
    root.addHandler(bridge)
    root.setLevel(numeric)
    return bridge


def uninstall(bridge: StdlibBridge | None) -> None:
    if bridge is not None:
        logging.getLogger().removeHandler(bridge)
    structlog.reset_defaults()


def service_fields(attributes: Mapping[str, Any]) -> dict[str, str]:
    fields = {F.service: str(attributes.get(c.SERVICE_NAME, ""))}
    if env := attributes.get(c.DEPLOYMENT_ENVIRONMENT):
        fields[F.environment] = str(env)
    return fields


def get_logger(name: str | None = None, **initial_values: Any) -> Any:
    """A structlog logger; its events carry ``logger=<name>``. Safe to call before ``init()``."""
    return structlog.get_logger(name, **initial_values)


# --- a log call never raises ------------------------------------------------------------------------


def _write_ascii(line: str) -> None:
    """``line`` for a stdout that cannot take UTF-8: JSON lines re-escaped (still valid JSON)."""
    try:
        try:
            text = json.dumps(json.loads(line), ensure_ascii=True, allow_nan=False)
        except ValueError:
            text = line.encode("ascii", "backslashreplace").decode("ascii")
        sys.stdout.write(text + "\n")
    except Exception:
        pass


_STDOUT: Final = StdoutWriter()


def _message(record: logging.LogRecord) -> str:
    """``record.getMessage()``; a format string and arguments that do not match keep the template."""
    try:
        return clean_text(record.getMessage())
    except Exception:
        return f"{safe_str(record.msg)} <arguments did not match the format>"


def fallback_line(logger_name: Any, level: str, event: Any, error: BaseException) -> str:
    """The line written when an event cannot be processed at all: its message, not its fields."""
    return _ENCODER.encode(
        {
            F.event: safe_str(event) if event is not None else "",
            F.level: level if level in _SEVERITY else "error",
            F.logger: safe_str(logger_name or ""),
            F.timestamp: _UtcClock().iso(),
            "log_error": f"the event's fields could not be rendered ({type_name(error)}); "
            "they were dropped",
        }
    )


def _interpolate(event: Any, args: tuple[Any, ...]) -> Any:
    """structlog's positional formatting (``log.info("%s done", x)``), without raising."""
    try:
        if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
            return event % args[0]
        return event % args
    except Exception:
        return f"{safe_str(event)} <arguments did not match the format>"


def safe_bound_logger(min_level: int) -> type:
    """structlog's filtering bound logger for ``min_level`` whose calls never raise.

    Whatever goes wrong while processing an event (a processor raising, a value that cannot be
    rendered, a format string and arguments that do not match) still gives one JSON line.
    """
    base: Any = structlog.make_filtering_bound_logger(min_level)

    def _proxy_to_logger(self: Any, method_name: str, event: Any = None, **event_kw: Any) -> Any:
        try:
            args, kw = self._process_event(method_name, event, event_kw)
            return getattr(self._logger, method_name)(*args, **kw)
        except structlog.DropEvent:
            return None
        except Exception as exc:
            line = fallback_line(
                getattr(self._logger, "name", ""), _METHOD_TO_LEVEL.get(method_name, ""), event, exc
            )
            with contextlib.suppress(Exception):
                self._logger.msg(line)
            return None

    def level_method(name: str) -> Callable[..., Any]:
        def method(self: Any, event: Any = None, *args: Any, **kw: Any) -> Any:
            return self._proxy_to_logger(name, _interpolate(event, args) if args else event, **kw)

        method.__name__ = name
        return method

    def log(self: Any, level: int, event: Any = None, *args: Any, **kw: Any) -> Any:
        if level < min_level:
            return None
        name = logging.getLevelName(level).lower()
        name = name if name in _SEVERITY else "info"
        return self._proxy_to_logger(name, _interpolate(event, args) if args else event, **kw)

    namespace: dict[str, Any] = {"_proxy_to_logger": _proxy_to_logger, "log": log}
    for name, number in LEVELS.items():
        if number >= min_level:
            namespace[name] = level_method(name)
    for alias, name in (("msg", "info"), ("warn", "warning"), ("fatal", "critical")):
        if name in namespace:
            namespace[alias] = namespace[name]
    return type(f"Safe{base.__name__}", (base,), namespace)
