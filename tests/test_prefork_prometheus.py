"""Pre-fork servers with the Prometheus pull exporter, against a real Prometheus.

Every worker of gunicorn (sync and gthread, with and without ``--preload``) and of uvicorn
``--workers`` boots, serves its own ``/metrics`` on the lowest free port from
``OTEL_EXPORTER_PROMETHEUS_PORT``, and Prometheus, scraping that range as the guide's scrape config
says, counts every request exactly once. Before, workers 2.. died with "Address already in use"
(gunicorn: "Worker failed to boot") and a ``--preload`` master served no request metrics at all.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_servers import PROMETHEUS_BINARIES, PrometheusServer, require_binary, wait_for
from shape_servers import (
    BIN,
    EXAMPLES,
    ROOT,
    ServerProcess,
    free_port_range,
    service_env,
    traffic,
)

from platform_obs import conventions as c

pytestmark = pytest.mark.e2e

WORKERS = 2
#: The scrape range: one port per worker, one for a ``--preload`` master, one spare.
RANGE = WORKERS + 2
REQUESTS = 20
COUNT = c.HTTP_SERVER_REQUEST_DURATION.series("count")


def _pull_env(base: int) -> dict[str, str]:
    return service_env(
        {
            "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
            "OTEL_EXPORTER_PROMETHEUS_PORT": str(base),
        }
    )


def _requests_in_prometheus(prom: PrometheusServer, service: str) -> float:
    result = prom.query(f'sum({COUNT}{{{c.prom_label(c.SERVICE_NAME)}="{service}"}})')
    return float(result[0]["value"][1]) if result else 0.0


def _check(server: ServerProcess, prom: PrometheusServer, service: str, processes: int) -> None:
    output = server.output()
    assert "Worker failed to boot" not in output and "Address already in use" not in output

    def endpoints_logged() -> list[dict[str, Any]]:
        return [
            line for line in server.json_lines() if line["event"] == "serving Prometheus metrics"
        ]

    # A worker may still be writing its start-up line when the first responses come back.
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: len(endpoints_logged()) >= processes, 15, what="every endpoint logged")
    endpoints = endpoints_logged()
    ports = sorted(line["server.port"] for line in endpoints)
    assert len(ports) == processes and len(set(ports)) == processes, endpoints
    # Every worker's request metrics reach Prometheus: the sum over the range is every request.
    wait_for(
        lambda: _requests_in_prometheus(prom, service) == REQUESTS,
        30,
        what=f"{REQUESTS} requests counted in Prometheus",
    )

    def scraped() -> list[int]:
        up = prom.query('up{job="service"} == 1')
        return sorted(int(u["metric"]["instance"].rsplit(":", 1)[1]) for u in up)

    # Every endpoint is scraped (a target turns up after its first successful scrape).
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: scraped() == ports, 15, what="every endpoint scraped")
    assert scraped() == ports


@pytest.mark.parametrize(
    ("worker_class", "preload"),
    [("sync", False), ("sync", True), ("gthread", False), ("gthread", True)],
)
def test_gunicorn_workers_each_serve_their_metrics(
    worker_class: str, preload: bool, tmp_path: Path
) -> None:
    require_binary(PROMETHEUS_BINARIES)
    base = free_port_range(RANGE + 1)
    port = base + RANGE  # the server's own port, outside the scrape range
    # Command-line settings only (the example's gunicorn.conf.py runs init() in the master).
    config = tmp_path / "empty.conf.py"
    config.write_text("", encoding="utf-8")
    argv = [
        str(BIN / "gunicorn"),
        "--config",
        str(config),
        "--workers",
        str(WORKERS),
        "--worker-class",
        worker_class,
        "--bind",
        f"127.0.0.1:{port}",
        *(["--threads", "2"] if worker_class == "gthread" else []),
        *(["--preload"] if preload else []),
        "inventory.wsgi",
    ]
    targets = [f"127.0.0.1:{p}" for p in range(base, base + RANGE)]
    with PrometheusServer(scrape_targets=targets) as prom:
        server = ServerProcess(argv, _pull_env(base), EXAMPLES / "django_service")
        try:
            server.wait_http(f"http://127.0.0.1:{port}/healthz")
            codes = traffic(f"http://127.0.0.1:{port}", [f"/items/{i}" for i in range(REQUESTS)])
            assert codes == [200] * REQUESTS
            # The --preload master runs init() too: its endpoint serves its own runtime metrics.
            _check(server, prom, "inventory", WORKERS + (1 if preload else 0))
        finally:
            assert server.stop() == 0, server.output()


def _overview_queries(service: str, tmp: Path) -> list[str]:
    from platform_obs.provisioning.pipeline import build

    (tmp / "platform-obs.yaml").write_text(
        "apiVersion: platform-obs/v1\nkind: Service\n"
        f"service: {service}\nteam: shop\nenvironments: [test]\nreceiver: shop-oncall\n",
        encoding="utf-8",
    )
    rendered = build([tmp])
    (board,) = [b for b in rendered.dashboards if b.uid.endswith("-overview")]

    def panels(items: list[dict[str, Any]]) -> Any:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    queries = []
    for panel in panels(board.model["panels"]):
        for target in panel.get("targets", []):
            if target.get("expr") and target["platformObs"]["expect_data"]:
                expr = target["expr"].replace("$service", service).replace("$env", "test")
                queries.append(re.sub(r"\$__\w+", "1m", expr))
    return queries


def test_uvicorn_workers_each_serve_their_metrics_and_the_overview_has_data(
    tmp_path: Path,
) -> None:
    require_binary(PROMETHEUS_BINARIES)
    base = free_port_range(RANGE + 1)
    port = base + RANGE  # the server's own port, outside the scrape range
    queries = _overview_queries("orders-api", tmp_path)
    assert queries
    argv = [
        str(BIN / "uvicorn"),
        "--app-dir",
        str(EXAMPLES / "fastapi_service"),
        "app:app",
        "--workers",
        str(WORKERS),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    targets = [f"127.0.0.1:{p}" for p in range(base, base + RANGE)]
    with PrometheusServer(scrape_targets=targets) as prom:
        server = ServerProcess(argv, _pull_env(base), ROOT)
        try:
            server.wait_http(f"http://127.0.0.1:{port}/healthz")
            # Two rounds a few scrapes apart: rate() panels need the counters to grow between
            # scrapes, not to be complete at the first one.
            half = REQUESTS // 2
            codes = traffic(f"http://127.0.0.1:{port}", [f"/orders/{i}" for i in range(half)])
            time.sleep(3)
            codes += traffic(
                f"http://127.0.0.1:{port}", [f"/orders/{i}" for i in range(half, REQUESTS)]
            )
            assert codes == [200] * REQUESTS
            _check(server, prom, "orders-api", WORKERS)
            # rate() needs two scrapes of a series: give the 1 s scrapes a moment.
            empty: list[str] = []

            def overview_has_data() -> bool:
                empty[:] = [q for q in queries if not prom.query(q)]
                return not empty

            with contextlib.suppress(TimeoutError):
                wait_for(overview_has_data, 20, what="data for every overview query")
            assert not empty, empty
        finally:
            assert server.stop() == 0, server.output()
