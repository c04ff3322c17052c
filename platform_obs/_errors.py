"""One structured error event per unhandled exception in a request, whatever the framework.

Servers report an exception that escaped the application after the request's span has ended (no
trace id), as plain text, or not at all (some instrumentations swallow it). The server span, though,
always records it. So when a server span ends with an exception event:

* if the application already logged that exception inside the trace, nothing more is said;
* otherwise one ``error`` event is logged with the exception structured and the span's trace id,
  and the server's own report of the same exception, which follows on the same thread, is dropped.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind

UNHANDLED_EVENT = "unhandled exception in request"
#: Loggers through which servers report exceptions that escaped the application.
SERVER_ERROR_LOGGERS = frozenset({"uvicorn.error", "gunicorn.error", "django.request"})
_FORGET_AFTER = 30.0
_MAX_KEYS = 1024


class _Recent:
    """A small bounded set of keys with a time-to-live (thread-safe)."""

    def __init__(self) -> None:
        self._keys: OrderedDict[Any, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: Any) -> None:
        with self._lock:
            self._keys[key] = time.monotonic()
            self._keys.move_to_end(key)
            while len(self._keys) > _MAX_KEYS:
                self._keys.popitem(last=False)

    def take(self, key: Any) -> bool:
        with self._lock:
            added = self._keys.pop(key, None)
        return added is not None and time.monotonic() - added < _FORGET_AFTER

    def __contains__(self, key: Any) -> bool:
        with self._lock:
            added = self._keys.get(key)
        return added is not None and time.monotonic() - added < _FORGET_AFTER

    def reinit_after_fork(self) -> None:
        self._lock = threading.Lock()


#: (trace id, exception type name, message) of exceptions the application logged inside a trace.
logged_in_trace = _Recent()
#: (thread id, exception type name, message) of exceptions reported here, for the server's echo.
reported = _Recent()


def _exception_key(exc: BaseException) -> tuple[str, str]:
    return type(exc).__name__, str(exc)


def note_logged(trace_id: str, exc_info: Any) -> None:
    """Called by the log pipeline for an event with an exception inside a span."""
    exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
    if isinstance(exc, BaseException):
        logged_in_trace.add((trace_id, *_exception_key(exc)))


def is_server_echo(logger_name: str, exc_info: Any) -> bool:
    """True for a server's report of an exception that was reported already (drop it)."""
    if logger_name not in SERVER_ERROR_LOGGERS or not exc_info:
        return False
    exc = exc_info[1] if isinstance(exc_info, tuple) else None
    if not isinstance(exc, BaseException):
        return False
    return reported.take((threading.get_ident(), *_exception_key(exc)))


class UnhandledExceptionReporter(SpanProcessor):
    """Logs one structured error event when a server span ends with an unreported exception."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def on_end(self, span: ReadableSpan) -> None:
        if span.kind is not SpanKind.SERVER:
            return
        event = next((e for e in reversed(span.events) if e.name == "exception"), None)
        if event is None:
            return
        try:
            self._report(span, dict(event.attributes or {}))
        except Exception:  # telemetry trouble never reaches the service
            return

    def _report(self, span: ReadableSpan, attributes: dict[str, Any]) -> None:
        exc_type = str(attributes.get("exception.type", ""))
        message = str(attributes.get("exception.message", ""))
        context = span.get_span_context()
        if context is None:
            return
        trace_id = format(context.trace_id, "032x")
        if (trace_id, exc_type, message) in logged_in_trace:
            return
        span_attributes = span.attributes or {}
        fields: dict[str, Any] = {
            "trace_id": trace_id,
            "span_id": format(context.span_id, "016x"),
        }
        for key in ("http.request.method", "http.route", "url.path", "http.response.status_code"):
            if key in span_attributes:
                fields[key] = span_attributes[key]
        current = sys.exc_info()
        if current[1] is not None and _exception_key(current[1]) == (exc_type, message):
            fields["exc_info"] = current  # the live exception: frames rendered like any other
        else:
            fields["exception"] = [
                {
                    "exc_type": exc_type,
                    "exc_value": message,
                    "stacktrace": str(attributes.get("exception.stacktrace", "")),
                }
            ]
        reported.add((threading.get_ident(), exc_type, message))
        logged_in_trace.add((trace_id, exc_type, message))
        self._logger.error(UNHANDLED_EVENT, **fields)

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
