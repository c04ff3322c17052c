"""init() / shutdown(): the process-wide lifecycle, fork handling and exit handling.

OpenTelemetry's global providers can be set once per process. So ``init()`` builds everything
first and sets the globals last (a failure leaves nothing half-configured), a second identical
call returns the same handle, and a conflicting one raises instead of silently keeping either.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any

from opentelemetry import _logs as logs_api
from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource

from platform_obs import _errors, _forksafe, _instrumentation, _logs, _resource, _servers
from platform_obs._config import ConfigError, Settings, load_settings
from platform_obs._export import DropReporter, ProcessResource, renew_connections_after_fork
from platform_obs._redaction import Redactor
from platform_obs._signals import Providers, Sinks, build_providers

_log = logging.getLogger("platform_obs")


class AlreadyInitialized(ConfigError):
    """``init()`` was called again with different settings."""


@dataclass(eq=False)
class Telemetry:
    """The handle ``init()`` returns: flush, shut down, and inspect what was set up."""

    settings: Settings
    providers: Providers | None
    _discovery: _instrumentation.Instrumentation | None = field(default=None, repr=False)
    _process_resource: ProcessResource | None = field(default=None, repr=False)
    _base_attributes: dict[str, Any] = field(default_factory=dict, repr=False)
    _drops: DropReporter = field(default_factory=DropReporter, repr=False)
    _bridge: _logs.StdlibBridge | None = field(default=None, repr=False)
    _emitter: _logs.OtlpEmitter | None = field(default=None, repr=False)
    _rate_limit: _logs.RateLimitFilter = field(default_factory=_logs.RateLimitFilter, repr=False)
    _redactor: Redactor = field(default_factory=Redactor, repr=False)
    _shut_down: bool = field(default=False, repr=False)

    @property
    def instrumented(self) -> list[str]:
        """Names of the instrumentations active now (a library imported after ``init()`` is
        instrumented on its first import, and joins this list then)."""
        return [] if self._discovery is None else self._discovery.instrumented

    @property
    def instrumentations(self) -> dict[str, _instrumentation.InstrumentationStatus]:
        """Every installed instrumentation and what became of it: ``instrumented``, ``waiting for
        import``, ``not installed``, ``unsupported version`` (with the installed version and the
        supported range), ``failed`` (with the error), ``disabled`` or ``already instrumented``."""
        return {} if self._discovery is None else dict(self._discovery.statuses)

    @property
    def metrics_endpoint(self) -> str | None:
        """This process's Prometheus pull endpoint, when metrics are exported by pull."""
        for close in self.providers.closers if self.providers is not None else ():
            endpoint = getattr(close, "__self__", None)
            if endpoint is not None and hasattr(endpoint, "url"):
                return endpoint.url  # type: ignore[no-any-return]
        return None

    @property
    def disabled(self) -> bool:
        """True for ``OTEL_SDK_DISABLED=true``: no providers, no threads; logs still printed."""
        return self.providers is None

    @property
    def is_shut_down(self) -> bool:
        return self._shut_down

    @property
    def resource(self) -> Resource:
        """This process's resource (a forked child has its own ``service.instance.id``)."""
        if self._process_resource is None:
            return Resource(self._base_attributes)
        return self._process_resource.current

    @property
    def dropped(self) -> dict[str, int]:
        """Telemetry items dropped so far, by signal (also exported as a metric)."""
        return dict(self._drops.totals)

    def force_flush(self, timeout: float | None = None) -> bool:
        """Export everything buffered; returns False if the deadline passed first."""
        if self.providers is None or self._shut_down:
            return True
        providers = self.providers
        return _within(
            timeout if timeout is not None else self.settings.shutdown_timeout,
            lambda remaining: (
                providers.tracer.force_flush(int(remaining() * 1000))
                and providers.logger.force_flush(int(remaining() * 1000))
                and providers.meter.force_flush(int(remaining() * 1000))
            ),
        )

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush and stop all three signals within one total deadline (default ``shutdown_timeout``).

        Returns False when the deadline passed (e.g. the collector hangs): whatever was not exported
        by then is dropped, the service is not held up. Logs keep printing to stdout afterwards.
        """
        return self._shutdown(timeout)

    def _shutdown(self, timeout: float | None) -> bool:
        if self._shut_down:
            return True
        self._shut_down = True
        # Logs keep printing; only their OTLP export stops with the provider.
        if self._emitter is not None:
            self._emitter.enabled = False
        if self.providers is None:
            return True
        providers = self.providers

        def stop(remaining: Any) -> bool:
            # Traces and logs first: the meter's final collection also reports what they dropped.
            providers.tracer.shutdown()
            providers.logger.shutdown()
            providers.meter.shutdown(timeout_millis=max(remaining() * 1000, 0))
            for close in providers.closers:
                close()
            return True

        return _within(timeout if timeout is not None else self.settings.shutdown_timeout, stop)


def _within(timeout: float, work: Any) -> bool:
    """Run ``work(remaining)`` on a daemon thread and wait at most ``timeout`` seconds for it.

    The SDK's own timeouts are per processor and per exporter (and some are ignored); only a thread
    we can stop waiting for gives one total deadline.
    """
    deadline = time.monotonic() + timeout
    outcome: list[bool] = []

    def remaining() -> float:
        return max(deadline - time.monotonic(), 0.0)

    def run() -> None:
        try:
            outcome.append(bool(work(remaining)))
        except Exception as exc:
            _log.warning("telemetry flush failed: %s", exc)
            outcome.append(False)

    worker = threading.Thread(target=run, name="platform-obs-flush", daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(outcome and outcome[0])


_lock = threading.RLock()
_state: Telemetry | None = None
_globals_set = False
_sinks: Sinks | None = None
_hooks_registered = False


def use_sinks(sinks: Sinks | None) -> None:
    """Send all telemetry of the next ``init()`` to in-memory sinks (``platform_obs.testing``)."""
    global _sinks
    _sinks = sinks


def current() -> Telemetry | None:
    return _state


def _install_logging(handle: Telemetry, otlp: bool) -> None:
    settings = handle.settings
    emitter = None
    # No exporter, no LogRecord: building records nobody exports costs every log line.
    exporting = bool(settings.logs_exporter) or _sinks is not None
    if otlp and handle.providers is not None and settings.log_to_otlp and exporting:
        emitter = handle._emitter = _logs.OtlpEmitter(handle.providers.logger)
    processors = _logs.build_processors(
        _logs.service_fields(handle._base_attributes),
        handle._redactor,
        _logs.choose_renderer(settings.log_format),
        emitter,
    )
    previous = handle._bridge
    handle._bridge = _logs.install(processors, settings.log_level, handle._rate_limit)
    if previous is not None and previous is not handle._bridge:
        logging.getLogger().removeHandler(previous)
    _servers.install_hooks()


def _differences(old: Settings, new: Settings) -> list[str]:
    # Shown as describe() shows them: no header value or URL password in the message.
    before, after = old.describe(), new.describe()
    return [
        f"{f.name}: {before[f.name]!r} -> {after[f.name]!r}"
        for f in fields(Settings)
        if f.compare and getattr(old, f.name) != getattr(new, f.name)
    ]


def init(**arguments: Any) -> Telemetry:
    """Set up traces, metrics and logs for this process. See ``platform_obs.init``."""
    global _state, _globals_set
    settings = load_settings({k: v for k, v in arguments.items() if v is not None})
    with _lock:
        if _state is not None and not _state.is_shut_down:
            if _state.settings == settings or _sinks is not None:
                # Under the test kit the capture owns telemetry: the application's own init() joins it.
                return _state
            changes = "; ".join(_differences(_state.settings, settings))
            raise AlreadyInitialized(
                "platform_obs.init() was already called with different settings "
                f"({changes}). Call it once at start-up, or platform_obs.shutdown() before re-initialising."
            )
        redactor = Redactor(settings.redact_keys)
        attributes = _resource.base_attributes(settings)
        if settings.sdk_disabled:
            handle = Telemetry(settings, None, _base_attributes=attributes, _redactor=redactor)
            _install_logging(handle, otlp=False)
            _state = handle
            return handle
        if _globals_set:
            raise AlreadyInitialized(
                "platform_obs was shut down in this process; OpenTelemetry allows one set of global providers "
                "per process, so telemetry cannot be re-initialised. Restart the process instead."
            )
        foreign = not isinstance(trace_api.get_tracer_provider(), trace_api.ProxyTracerProvider)
        if foreign:
            return _adopt_foreign(settings, attributes, redactor)
        _instrumentation.opt_into_stable_http_semconv()
        process_resource = ProcessResource(
            _resource.build_resource(attributes, _resource.new_instance_id())
        )
        drops = DropReporter()
        providers = build_providers(settings, process_resource, drops, redactor, _sinks)
        handle = Telemetry(
            settings,
            providers,
            _process_resource=process_resource,
            _base_attributes=attributes,
            _drops=drops,
            _redactor=redactor,
        )
        # Everything is built: only now touch process-wide state.
        trace_api.set_tracer_provider(providers.tracer)
        metrics_api.set_meter_provider(providers.meter)
        logs_api.set_logger_provider(providers.logger)
        # Propagation: the API's default is W3C tracecontext + baggage and honours OTEL_PROPAGATORS,
        # so there is nothing to set here.
        _globals_set = True
        _install_logging(handle, otlp=True)
        for close in providers.closers:
            endpoint: Any = getattr(close, "__self__", None)
            if hasattr(endpoint, "announce"):
                endpoint.announce()
        providers.tracer.add_span_processor(
            _errors.UnhandledExceptionReporter(_logs.get_logger("platform_obs.http"))
        )
        _register_process_hooks()
        _state = handle
        if settings.instrument:
            disabled = set(settings.disabled_instrumentations)
            if settings.runtime_metrics:
                # Same metric names as our runtime metrics: both would double every runtime panel.
                disabled.add(_instrumentation.SYSTEM_METRICS)
            _instrumentation.pass_http_options(
                settings.excluded_urls,
                settings.capture_request_headers,
                settings.capture_response_headers,
            )
            handle._discovery = _instrumentation.instrument_installed(
                providers.tracer, providers.meter, disabled
            )
        return handle


def _adopt_foreign(settings: Settings, attributes: dict[str, Any], redactor: Redactor) -> Telemetry:
    """Someone (``opentelemetry-instrument``, another distro) already set the global providers.

    We keep theirs (replacing them is impossible and would duplicate exports), set up logging
    only, and do not instrument again.
    """
    global _state
    _log.warning(
        "OpenTelemetry was already configured in this process (e.g. by opentelemetry-instrument); "
        "platform_obs keeps those providers and exporters and only sets up logging"
    )
    handle = Telemetry(settings, None, _base_attributes=attributes, _redactor=redactor)
    _install_logging(handle, otlp=False)
    _state = handle
    return handle


def shutdown(timeout: float | None = None) -> bool:
    """Flush and stop telemetry within one deadline; see :meth:`Telemetry.shutdown`."""
    with _lock:
        handle = _state
    if handle is None:
        return True
    return handle._shutdown(timeout)


def _after_fork_in_child() -> None:
    """A forked worker is a new instance: new ``service.instance.id``, fresh locks.

    The SDK restarts its batch and metric threads in the child itself and clears the inherited
    queues (the parent still exports those: nothing duplicated).
    """
    global _fork_held
    _fork_held = []  # the child's copies are replaced below (and by the SDK's own fork hooks)
    handle = _state
    if handle is None or handle._process_resource is None:
        return
    handle._process_resource.current = _resource.build_resource(
        handle._base_attributes, _resource.new_instance_id()
    )
    handle._drops.reinit_after_fork()
    handle._rate_limit.reinit_after_fork()
    if handle.providers is not None:
        _forksafe.renew_locks(handle.providers.meter)
    renew_connections_after_fork()
    _errors.logged_in_trace.reinit_after_fork()
    _errors.reported.reinit_after_fork()
    if handle.providers is not None and not handle._shut_down:
        # Pull metrics: this worker's own endpoint (the parent's socket is not ours to serve).
        for close in handle.providers.closers:
            endpoint = getattr(close, "__self__", None)
            if endpoint is not None and hasattr(endpoint, "restart_in_child"):
                endpoint.restart_in_child()


_fork_held: list[Any] = []


def _before_fork() -> None:
    global _fork_held
    handle = _state
    if handle is not None and handle.providers is not None and not handle._shut_down:
        _fork_held = _forksafe.before_fork(handle.providers)


def _after_fork_in_parent() -> None:
    global _fork_held
    held, _fork_held = _fork_held, []
    _forksafe.after_fork_in_parent(held)


def _at_exit() -> None:
    shutdown()


def _register_process_hooks() -> None:
    global _hooks_registered
    if _hooks_registered:
        return
    _hooks_registered = True
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(
            before=_before_fork,
            after_in_parent=_after_fork_in_parent,
            after_in_child=_after_fork_in_child,
        )
    atexit.register(_at_exit)
