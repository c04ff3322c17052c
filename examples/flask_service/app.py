"""checkout: a small Flask service instrumented with nothing but ``platform_obs``.

Run it with ``python examples/flask_service/app.py`` (see README.md). Routes:

* ``GET /orders/<order_id>`` - one order
* ``POST /orders`` - place an order, JSON body ``{"amount": 12.5}``
* ``GET /healthz`` - liveness

Injected faults, so a load generator can produce a known share of errors and slow requests:

* per request: ``?fail=1`` raises inside the handler (HTTP 500, logged with the traceback);
  ``?delay_ms=250`` sleeps before answering (capped at ``MAX_DELAY_MS``);
* per process, at random: ``CHECKOUT_FAIL_RATIO`` / ``CHECKOUT_SLOW_RATIO`` (0..1) and
  ``CHECKOUT_SLOW_MS`` (default 300), for a demo without a load generator.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import signal
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import platform_obs

if TYPE_CHECKING:  # only for annotations: the real import must wait for init(), see create_app()
    from flask import Flask
    from flask.typing import ResponseReturnValue

SERVICE_NAME = "checkout"
MAX_DELAY_MS = 10_000


class InjectedFault(RuntimeError):
    """The failure ``?fail=1`` asks for."""


def _ratio_from_env(name: str) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return 0.0
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {raw!r}")
    return value


def create_app() -> Flask:
    """Build the app. Call it after ``platform_obs.init()``.

    init() instruments Flask through the OpenTelemetry instrumentation entry points, which patch
    the ``Flask`` class; an app created before that would not be traced. Hence the late import.
    """
    from flask import Flask, jsonify, request
    from werkzeug.exceptions import HTTPException

    log = platform_obs.get_logger(__name__)
    app = Flask(SERVICE_NAME)

    fail_ratio = _ratio_from_env("CHECKOUT_FAIL_RATIO")
    slow_ratio = _ratio_from_env("CHECKOUT_SLOW_RATIO")
    slow_ms = int(os.environ.get("CHECKOUT_SLOW_MS") or 300)
    chance = random.Random()

    orders: dict[int, dict[str, Any]] = {}
    orders_lock = threading.Lock()
    order_ids = itertools.count(1000)

    def inject_faults() -> None:
        """Apply the faults this request asks for (query) or the process draws (env)."""
        try:
            delay_ms = int(request.args.get("delay_ms", "0"))
        except ValueError:
            delay_ms = 0
        if not delay_ms and slow_ratio and chance.random() < slow_ratio:
            delay_ms = slow_ms
        if delay_ms > 0:
            time.sleep(min(delay_ms, MAX_DELAY_MS) / 1000)
        if request.args.get("fail") == "1" or (fail_ratio and chance.random() < fail_ratio):
            raise InjectedFault(f"injected failure on {request.method} {request.path}")

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return {"status": "ok"}

    @app.get("/orders/<int:order_id>")
    def get_order(order_id: int) -> ResponseReturnValue:
        inject_faults()
        with orders_lock:
            order = orders.get(order_id)
        if order is None:
            # Orders not placed through this process are synthesised, so a load generator
            # can read any id without seeding data first.
            order = {"order_id": order_id, "amount": round(5 + (order_id % 97) * 1.25, 2)}
        log.info("order fetched", order_id=order_id, amount=order["amount"])
        return jsonify(order)

    @app.post("/orders")
    def place_order() -> ResponseReturnValue:
        payload = request.get_json(silent=True) or {}
        amount = payload.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
            log.warning("order rejected", reason="amount must be a positive number")
            return {"error": "amount must be a positive number"}, 400
        log.info("placing order", amount=amount)
        inject_faults()
        with orders_lock:
            order_id = next(order_ids)
            orders[order_id] = {"order_id": order_id, "amount": amount}
        log.info("order placed", order_id=order_id, amount=amount)
        return {"order_id": order_id, "amount": amount}, 201

    @app.errorhandler(Exception)
    def on_error(exc: Exception) -> ResponseReturnValue:
        if isinstance(exc, HTTPException):  # 404, 405...: client errors, not failures
            return exc
        # One log line with the traceback, tied to the request's trace by the SDK.
        log.exception(
            "request failed",
            method=request.method,
            route=request.url_rule.rule if request.url_rule else request.path,
            **(request.view_args or {}),
        )
        return {"error": "internal error"}, 500

    return app


def _stop(signum: int, frame: FrameType | None) -> None:
    # Unwinds serve_forever() in the main thread so the finally block flushes telemetry.
    raise SystemExit(0)


def main() -> None:
    """Serve on 127.0.0.1:$PORT (default 8080; 0 picks a free port) until SIGTERM/Ctrl-C."""
    handle = platform_obs.init(service_name=SERVICE_NAME)
    try:
        from werkzeug.serving import make_server

        # Spans and metrics already describe every request; werkzeug's access log would repeat them.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = make_server(
            "127.0.0.1", int(os.environ.get("PORT") or 8080), create_app(), threaded=True
        )
        signal.signal(signal.SIGTERM, _stop)
        url = f"http://127.0.0.1:{server.server_port}"
        platform_obs.get_logger(__name__).info("listening", url=url)
        # A plain line on stdout too, for scripts that start the service and need its port.
        print(f"checkout listening on {url}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    finally:
        handle.shutdown()


if __name__ == "__main__":
    sys.exit(main())
