"""Every service shape, as a real server with two workers, against the real OTLP receiver.

FastAPI on uvicorn ``--workers 2``, Django on gunicorn (two sync workers, ``init()`` in the gunicorn
config as the guide says) and a Celery prefork worker: traffic with some errors, then every span and
log line arrives exactly once, with the service name, one instance id per worker and the request's
trace id; stdout holds JSON lines only; unhandled exceptions are one structured error each.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from typing import Any

import pytest
from otlp_receiver import OtlpReceiver, ReceivedMetric
from shape_servers import BIN, EXAMPLES, ROOT, ServerProcess, free_port, service_env, traffic

from platform_obs import conventions as c

pytestmark = pytest.mark.e2e


def _instances(items: list[Any]) -> set[str]:
    return {i.resource.get(c.SERVICE_INSTANCE_ID) for i in items}


def _requests_counted(metrics: list[ReceivedMetric]) -> int:
    """Requests in the cumulative duration histogram: the highest total of every instance, summed
    (exports of one process may arrive out of order)."""
    totals: dict[str, int] = {}
    for metric in metrics:
        instance = metric.resource[c.SERVICE_INSTANCE_ID]
        total = sum(p.count or 0 for p in metric.points)
        totals[instance] = max(total, totals.get(instance, 0))
    return sum(totals.values())


def _common_checks(
    server: ServerProcess, rx: OtlpReceiver, service: str, requests: int, failures: int
) -> None:
    assert server.non_json_stdout() == [], server.non_json_stdout()[:5]
    assert "Traceback" not in "".join(server.stderr_lines), server.output()

    spans = [s for s in rx.spans() if s.kind == "server"]
    warnings = [line for line in server.json_lines() if line["level"] == "warning"]
    assert len(spans) == requests, (  # health checks excluded
        Counter(s.resource[c.SERVICE_INSTANCE_ID] for s in spans),
        warnings,
        server.output(),
    )
    assert len({s.span_id for s in spans}) == len(spans)  # each exactly once
    assert {s.resource[c.SERVICE_NAME] for s in rx.spans()} == {service}
    assert {s.resource[c.DEPLOYMENT_ENVIRONMENT] for s in spans} == {"test"}
    assert sum(s.status_code == "error" for s in spans) == failures
    # Every process (two workers at least) reports as an instance of its own.
    assert len(_instances(rx.metrics())) >= 2
    assert _requests_counted(rx.metric(c.HTTP_SERVER_REQUEST_DURATION.name)) == requests


def test_fastapi_on_uvicorn_with_two_workers() -> None:
    with OtlpReceiver() as rx:
        port = free_port()
        server = ServerProcess(
            [
                str(BIN / "uvicorn"),
                "--app-dir",
                str(EXAMPLES / "fastapi_service"),
                "app:app",
                "--workers",
                "2",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            service_env(rx.env("grpc")),
            ROOT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            server.wait_http(url + "/healthz")
            paths = [f"/orders/{i}" + ("?fail=1" if i % 5 == 0 else "") for i in range(1, 31)]
            codes = traffic(url, [*paths, "/healthz", "/healthz"])
        finally:
            assert server.stop() == 0, server.output()
        assert Counter(codes) == {200: 26, 500: 6}

        _common_checks(server, rx, "orders-api", requests=30, failures=6)
        spans = [s for s in rx.spans() if s.kind == "server"]
        failed = {s.trace_id for s in spans if s.status_code == "error"}

        lines = server.json_lines()
        fetched = [line for line in lines if line["event"] == "order fetched"]
        assert len(fetched) == 24
        assert {line["trace_id"] for line in fetched} <= {s.trace_id for s in spans}
        # uvicorn's access lines: fields, not text, and the request's trace id.
        access = [
            line
            for line in lines
            if line.get("logger") == "uvicorn.access" and line["url.path"] != "/healthz"
        ]
        assert Counter(line["http.response.status_code"] for line in access) == {200: 24, 500: 6}
        assert all(line["http.request.method"] == "GET" for line in access)
        assert {line["trace_id"] for line in access} == {s.trace_id for s in spans}
        # One structured error per unhandled exception, in its trace; uvicorn's own echo is gone.
        errors = [line for line in lines if line["level"] == "error"]
        assert [line["event"] for line in errors] == ["unhandled exception in request"] * 6
        assert {line["trace_id"] for line in errors} == failed
        assert all(line["exception"][0]["exc_type"] == "RuntimeError" for line in errors)

        logs = rx.logs()
        assert Counter(log.body for log in logs)["order fetched"] == 24
        exported_errors = [log for log in logs if log.severity_number >= 17]
        assert len(exported_errors) == 6
        assert {log.trace_id for log in exported_errors} == failed
        assert {log.attributes["exception.type"] for log in exported_errors} == {"RuntimeError"}
        # One LogRecord per stdout line: the exported records are exactly the printed ones.
        assert Counter(log.body for log in logs) == Counter(
            "request completed" if line.get("logger") == "uvicorn.access" else line["event"]
            for line in lines
            if not line.get("logger", "").startswith("platform_obs.instrumentation")
        )


def test_django_on_gunicorn_with_two_workers() -> None:
    with OtlpReceiver() as rx:
        port = free_port()
        server = ServerProcess(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "inventory.wsgi"],
            service_env(
                {**rx.env("http/protobuf"), "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2"}
            ),
            EXAMPLES / "django_service",
        )
        url = f"http://127.0.0.1:{port}"
        try:
            server.wait_http(url + "/healthz")
            paths = [f"/items/{i}" + ("?fail=1" if i % 6 == 0 else "") for i in range(1, 25)]
            codes = traffic(url, [*paths, "/healthz"])
        finally:
            assert server.stop() == 0, server.output()
        assert Counter(codes) == {200: 21, 500: 4}

        _common_checks(server, rx, "inventory", requests=24, failures=4)
        spans = [s for s in rx.spans() if s.kind == "server"]
        failed = {s.trace_id for s in spans if s.status_code == "error"}
        lines = server.json_lines()
        # gunicorn's master and workers log JSON (init() in gunicorn.conf.py reaches the master).
        assert any(line["event"].startswith("Booting worker") for line in lines)
        access = [
            line
            for line in lines
            if line.get("logger") == "gunicorn.access" and line["url.path"] != "/healthz"
        ]
        assert Counter(line["http.response.status_code"] for line in access) == {200: 20, 500: 4}
        assert all(line["http.server.request.duration"] >= 0 for line in access)
        # Django reports each failure inside the request: one error, with the trace id.
        errors = [line for line in lines if line["level"] == "error"]
        assert len(errors) == 4, errors
        assert {line["logger"] for line in errors} == {"django.request"}
        assert {line["trace_id"] for line in errors} == failed
        logs = rx.logs()
        assert Counter(log.body for log in logs)["item fetched"] == 20
        assert {log.trace_id for log in logs if log.severity_number >= 17} == failed


def test_celery_prefork_worker_logs_every_task_line_once(tmp_path: Any) -> None:
    with OtlpReceiver() as rx:
        env = service_env({**rx.env("grpc"), "CELERY_DATA_DIR": str(tmp_path)})
        cwd = EXAMPLES / "celery_worker"
        produced = subprocess.run(
            [str(BIN / "python"), "tasks.py", "12"],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert produced.returncode == 0, produced.stderr
        worker = ServerProcess(
            [str(BIN / "celery"), "-A", "tasks", "worker", "-c", "2", "--loglevel", "INFO"],
            env,
            cwd,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = [
                    line
                    for line in list(worker.stdout_lines)
                    if '"celery.app.trace"' in line and "mailer.send_welcome" in line
                ]
                if len(done) >= 12:
                    break
                time.sleep(0.2)
        finally:
            worker.stop()
        assert worker.non_json_stdout() == [], worker.non_json_stdout()[:5]
        lines = worker.json_lines()
        task_lines = [line for line in lines if line["event"] == "sending welcome mail"]
        assert sorted(line["user_id"] for line in task_lines) == list(range(12))

        task_spans = [s for s in rx.spans() if s.name.startswith("run/")]
        assert len(task_spans) == 12
        assert {line["trace_id"] for line in task_lines} == {s.trace_id for s in task_spans}
        failures = [line for line in lines if line["level"] == "error"]
        assert len(failures) == 3 and all("DeliveryFailed" in line["event"] for line in failures)

        logs = rx.logs()
        exported = [log for log in logs if log.body == "sending welcome mail"]
        assert sorted(log.attributes["user_id"] for log in exported) == list(range(12))
        # Nothing exported twice as a WARNING whose body is the JSON text (stdout redirection).
        assert not [log for log in logs if str(log.body).startswith("{")]
        assert {log.resource[c.SERVICE_NAME] for log in logs} == {"mailer"}
        # The main process and both pool processes: an instance each.
        assert len(_instances(rx.metrics())) >= 3
