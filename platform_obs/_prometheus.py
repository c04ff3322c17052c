"""The Prometheus pull endpoint, safe under pre-fork servers.

Every process that exports metrics by pull needs its own endpoint: a worker's request metrics live
in that worker only. So each process listens on the lowest free port from the configured one
(``OTEL_EXPORTER_PROMETHEUS_PORT``, 9464 by default): a single process gets 9464; gunicorn or
uvicorn with N workers get 9464 .. 9464+N-1 (one more, 9464, for a ``--preload`` master, whose own
endpoint carries only its runtime metrics). A worker that is replaced reuses the port its
predecessor freed, so the scrape config lists a fixed range. Nothing here ever stops a worker from
booting: with every port of the range taken, the worker runs without an endpoint and says so.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from typing import Any

_log = logging.getLogger("platform_obs.prometheus")

#: How many consecutive ports a pre-fork server's workers may use, from the configured one.
PORT_RANGE = 64


def in_prefork_worker() -> bool:
    """A worker of a pre-fork server: gunicorn's (the app is imported in its worker), uvicorn's
    or any multiprocessing child (spawned workers). Forked children of an initialised process are
    handled after the fork (see ``restart_in_child``)."""
    if "gunicorn" in sys.modules:
        return True
    mp = sys.modules.get("multiprocessing")
    return mp is not None and mp.parent_process() is not None


class PullEndpoint:
    """The HTTP server of this process's ``/metrics`` (started in every process that needs one)."""

    def __init__(self, host: str, base_port: int, port_range: int = PORT_RANGE) -> None:
        self.host = host
        self.base_port = base_port
        self.port_range = port_range
        self.port: int | None = None
        self._server: Any = None
        self._pid = os.getpid()

    @property
    def url(self) -> str | None:
        return None if self.port is None else f"http://{self.host}:{self.port}/metrics"

    def announce(self) -> None:
        if self.port is not None:
            _log.info(
                "serving Prometheus metrics",
                extra={"url.full": self.url, "server.port": self.port, "process.pid": self._pid},
            )

    def start(self, announce: bool = True, worker: bool | None = None) -> None:
        """Listen on the configured port; a pre-fork worker takes the next free one instead.
        Outside a pre-fork server a port in use raises (the caller makes it a ConfigError)."""
        from prometheus_client import start_http_server

        worker = in_prefork_worker() if worker is None else worker
        last = self.base_port + (self.port_range if worker else 1)
        for port in range(self.base_port, min(last, 65536)):
            try:
                self._server, _thread = start_http_server(port, addr=self.host)
            except OSError as exc:
                if worker and exc.errno == errno.EADDRINUSE:
                    continue  # a sibling worker (or something else) has it: try the next one
                raise
            self.port = port
            self._pid = os.getpid()
            if announce:
                self.announce()
            return
        _log.warning(
            "no free port for the Prometheus metrics endpoint in %s:%d-%d; this process's metrics "
            "are not served. Raise the range's start (OTEL_EXPORTER_PROMETHEUS_PORT), run fewer "
            "workers, or export metrics over OTLP (OTEL_METRICS_EXPORTER=otlp)",
            self.host,
            self.base_port,
            self.base_port + self.port_range - 1,
        )

    def close(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        self.port = None
        if os.getpid() == self._pid:
            server.shutdown()
        server.server_close()

    def restart_in_child(self) -> None:
        """After fork: the inherited socket is the parent's (its serving thread did not survive the
        fork); close our copy and listen on a port of our own, serving this process's metrics."""
        if self._server is None and self.port is None:
            return
        server, self._server = self._server, None
        self.port = None
        if server is not None:
            with contextlib.suppress(OSError):
                server.socket.close()
        try:
            self.start(worker=True)
        except Exception as exc:  # never fail a forked worker over its metrics endpoint
            _log.warning("Prometheus metrics endpoint not started in worker: %s", exc)
