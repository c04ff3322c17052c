"""The demo on embedded defaults: no collector, no Grafana, no Prometheus needed.

1. The checkout example service, set up by ``platform_obs.init()`` alone, serves a few requests
   (one of them fails). Its JSON log lines appear as they are written; its spans, metrics and log
   records go to the in-memory receiver of ``platform_obs.testing`` and are summarised.
2. The provisioner renders the standard dashboards and alerts for the same service from
   ``examples/service-config/`` into ``out/demo/``, as ``platform-obs render`` does in CI.

    make demo        (or: python examples/demo.py)
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "flask_service"))


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 76 - len(text)), flush=True)


def run_service() -> None:
    from platform_obs import conventions as c
    from platform_obs.testing import capture

    # The in-memory receiver stands in for the collector; the service code is unchanged.
    telemetry = capture(
        service_name="checkout", team="payments", environment="demo", instrument=True
    )
    import app as checkout  # the example service: it calls only init() and get_logger()

    banner("checkout serves 6 requests (JSON log lines as the service writes them)")
    client = checkout.create_app().test_client()
    for path in ("/orders/17", "/orders/18", "/orders/19?fail=1", "/healthz"):
        client.get(path)
    client.post("/orders", json={"amount": 12.5})
    client.post("/orders", json={"amount": -1})

    banner("what the collector would have received")
    spans = telemetry.spans()
    print(f"spans: {len(spans)}")
    for span in spans:
        print(
            f"  {span.name:32} status={span.status.status_code.name:5} trace={span.context.trace_id:032x}"
        )
    requests = Counter(
        (p.attributes.get(c.HTTP_ROUTE), p.attributes.get(c.HTTP_RESPONSE_STATUS_CODE))
        for p in telemetry.metric_points(c.HTTP_SERVER_REQUEST_DURATION.name)
        for _ in range(p.count or 0)
    )
    print(
        f"{c.HTTP_SERVER_REQUEST_DURATION.name} ({c.HTTP_SERVER_REQUEST_DURATION.prom_name} in Prometheus):"
    )
    for (route, status), n in sorted(requests.items(), key=str):
        print(f"  route={route!s:24} status={status}  count={n}")
    span_traces = {f"{s.context.trace_id:032x}" for s in spans}
    logs = telemetry.logs()
    correlated = sum(1 for entry in logs if entry["trace_id"] in span_traces)
    print(f"log records: {len(logs)}, {correlated} carry the trace id of a received span")


def run_provisioner() -> None:
    from platform_obs.cli import main as cli

    out = ROOT / "out" / "demo"
    banner(f"platform-obs render examples/service-config --out {out.relative_to(ROOT)}")
    try:
        cli(["render", str(ROOT / "examples" / "service-config"), "--out", str(out)])
    except SystemExit as done:  # the CLI always exits with its documented code
        if done.code not in (0, None):
            raise
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(ROOT)}  ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    run_service()
    run_provisioner()
    banner("done: see README.md for plan/apply against Grafana")
