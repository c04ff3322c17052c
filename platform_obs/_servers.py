"""The servers' own logs are platform logs: uvicorn, gunicorn, Django and Celery log through the same
pipeline as the service (one JSON line on stdout and one LogRecord each), with access lines as fields.

Each server configures its loggers with console handlers of its own, sometimes after ``init()`` ran
(``uvicorn.run()``, ``django.setup()``, a Celery worker, gunicorn's re-setup on HUP). So besides
adopting the loggers at ``init()``, the hooks below adopt them again right after the server configured
them, without the user touching the server's settings.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from platform_obs import _instrumentation

#: Loggers the servers configure with handlers of their own (and often ``propagate=False``).
SERVER_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "gunicorn",
    "gunicorn.error",
    "gunicorn.access",
    "django",
    "django.server",
    "django.request",
    "celery",
    "celery.task",
    "celery.redirected",
)
_STD_STREAMS = ("<stdout>", "<stderr>")


def _is_console(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    if stream is None or isinstance(handler, logging.FileHandler):
        return False
    return stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) or (
        getattr(stream, "name", None) in _STD_STREAMS
    )


def adopt_server_loggers() -> None:
    """Console handlers of the servers' loggers go; their records propagate to the platform bridge.
    Handlers writing elsewhere (files, syslog, mail) are the user's and stay."""
    known = logging.Logger.manager.loggerDict
    for name in SERVER_LOGGERS:
        logger = known.get(name)
        if not isinstance(logger, logging.Logger):
            continue
        for handler in list(logger.handlers):
            if _is_console(handler):
                logger.removeHandler(handler)
        logger.propagate = True


# --- access lines as fields -------------------------------------------------------------------------


def _uvicorn_access(record: logging.LogRecord) -> dict[str, Any] | None:
    # uvicorn: '%s - "%s %s HTTP/%s" %d' % (client, method, path with query, http version, status)
    args = record.args
    if not isinstance(args, tuple) or len(args) != 5:
        return None
    client, method, full_path, http_version, status = args
    path, _, query = str(full_path).partition("?")
    fields: dict[str, Any] = {
        "http.request.method": method,
        "url.path": path,
        "http.response.status_code": status,
        "network.protocol.version": http_version,
        "client.address": client,
    }
    if query:
        fields["url.query"] = query
    return fields


def _gunicorn_access(record: logging.LogRecord) -> dict[str, Any] | None:
    # gunicorn passes its access-log atoms as the record's args mapping.
    atoms = record.args
    if not isinstance(atoms, dict):
        return None
    fields: dict[str, Any] = {
        "http.request.method": atoms.get("m"),
        "url.path": atoms.get("U"),
        "http.response.status_code": _int(atoms.get("s")),
        "client.address": atoms.get("h"),
        "user_agent.original": atoms.get("a"),
        "network.protocol.version": str(atoms.get("H", "")).removeprefix("HTTP/"),
    }
    if (micros := _int(atoms.get("D"))) is not None:
        fields["http.server.request.duration"] = micros / 1_000_000
    if (query := atoms.get("q")) and query != "-":
        fields["url.query"] = query
    return {k: v for k, v in fields.items() if v not in (None, "", "-")}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


ACCESS_EVENT = "request completed"
#: Access loggers -> the fields of one record (``None``: not an access record, left as it is).
ACCESS_LOGGERS = {"uvicorn.access": _uvicorn_access, "gunicorn.access": _gunicorn_access}


def access_fields(record: logging.LogRecord) -> dict[str, Any] | None:
    parse = ACCESS_LOGGERS.get(record.name)
    if parse is None:
        return None
    try:
        return parse(record)
    except Exception:
        return None


# --- hooks into the servers ------------------------------------------------------------------------


def _patch_uvicorn_config() -> None:
    """``uvicorn.run()`` and every worker apply ``LOGGING_CONFIG`` (again): make it hand records on."""
    import uvicorn.config

    loggers = uvicorn.config.LOGGING_CONFIG.get("loggers", {})
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        if name in loggers:
            loggers[name]["handlers"] = []
            loggers[name]["propagate"] = True
    adopt_server_loggers()


class _FlushingSignals:
    """uvicorn's view of the ``signal`` module, where re-raising a caught signal flushes first."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def raise_signal(self, signum: int) -> None:
        from platform_obs import _lifecycle

        try:
            _lifecycle.shutdown()
        finally:
            self._real.raise_signal(signum)


def _patch_uvicorn_server() -> None:
    """uvicorn re-raises the SIGTERM it caught once the server has stopped, and the default action
    ends the process without ``atexit``: telemetry is flushed just before, or the last batch is lost.
    (The server is often running already when ``init()`` runs, so its methods cannot be wrapped.)"""
    from uvicorn import server

    if not isinstance(server.signal, _FlushingSignals):
        server.signal = _FlushingSignals(server.signal)  # type: ignore[assignment]


def _patch_gunicorn_logger() -> None:
    """gunicorn sets its loggers up at start and again on HUP; adopt them each time."""
    from gunicorn import glogging

    original = glogging.Logger.setup
    if getattr(original, "_platform_obs", False):
        return

    def setup(self: Any, cfg: Any) -> None:
        original(self, cfg)
        adopt_server_loggers()

    setup._platform_obs = True  # type: ignore[attr-defined]
    glogging.Logger.setup = setup  # type: ignore[method-assign]
    adopt_server_loggers()


def _connect_celery() -> None:
    """A ``setup_logging`` receiver tells Celery that logging is configured: it then neither installs
    its own handlers nor redirects stdout into logging (which swallowed every JSON line and exported
    each one a second time as a WARNING)."""
    from celery import signals

    def on_setup_logging(**_: Any) -> None:
        adopt_server_loggers()

    def on_after_setup(sender: Any = None, instance: Any = None, **_: Any) -> None:
        # The banner is plain text on stdout: say the same as one structured line instead.
        if instance is not None and not getattr(instance, "quiet", True):
            instance.quiet = True
            logging.getLogger("celery.worker").info(
                "celery worker starting",
                extra={
                    "celery.hostname": str(sender),
                    "celery.concurrency": getattr(instance, "concurrency", None),
                    "celery.pool": getattr(getattr(instance, "pool_cls", None), "__module__", None),
                },
            )

    def on_child_shutdown(**_: Any) -> None:
        # Pool children leave through os._exit(): no atexit, so flush here or lose the last batch.
        from platform_obs import _lifecycle

        _lifecycle.shutdown()

    signals.setup_logging.connect(on_setup_logging, weak=False, dispatch_uid="platform_obs")
    signals.worker_process_shutdown.connect(
        on_child_shutdown, weak=False, dispatch_uid="platform_obs"
    )
    signals.celeryd_after_setup.connect(on_after_setup, weak=False, dispatch_uid="platform_obs")
    adopt_server_loggers()


def _patch_celery_say() -> None:
    """Celery prints shutdown notices as plain text from its signal handlers (``safe_say``); they
    become one structured line each, written directly (no logging locks inside a signal handler)."""
    import json
    import time

    from celery.apps import worker

    from platform_obs import _lifecycle, _logs

    if getattr(worker.safe_say, "_platform_obs", False):
        return
    handle = _lifecycle.current()
    service = _logs.service_fields(handle._base_attributes) if handle is not None else {}

    def safe_say(msg: str, f: Any = None) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = {"event": str(msg).strip(), "level": "info", "logger": "celery.worker"}
        try:
            sys.stdout.write(json.dumps({**line, "timestamp": stamp, **service}) + "\n")
            sys.stdout.flush()
        except Exception:
            pass

    safe_say._platform_obs = True  # type: ignore[attr-defined]
    worker.safe_say = safe_say


def install_hooks() -> None:
    """Adopt the servers' loggers now and whenever a server (re)configures them."""
    adopt_server_loggers()
    _instrumentation.when_imported("uvicorn.config", _patch_uvicorn_config)
    _instrumentation.when_imported("uvicorn.server", _patch_uvicorn_server)
    _instrumentation.when_imported("gunicorn.glogging", _patch_gunicorn_logger)
    _instrumentation.when_imported("celery.signals", _connect_celery)
    _instrumentation.when_imported("celery.apps.worker", _patch_celery_say)
