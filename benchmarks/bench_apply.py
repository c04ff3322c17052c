"""No-op apply cost against the Grafana double, by number of services.

Targets: 0 writes, and a number of reads that does not grow with N. A first apply is run to
create everything; the second (measured) apply must find nothing to do.

    python benchmarks/bench_apply.py [N ...]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests", ROOT / "tests" / "provisioning"):
    sys.path.insert(0, str(extra))

from factories import rendered  # noqa: E402
from grafana_double import GrafanaDouble  # noqa: E402

from platform_obs.provisioning.apply import apply_plan  # noqa: E402
from platform_obs.provisioning.grafana import Grafana  # noqa: E402
from platform_obs.provisioning.plan import build_plan  # noqa: E402


def measure(n: int) -> dict[str, float]:
    with GrafanaDouble() as double:
        client = Grafana(double.url, double.token)
        desired = rendered(n, extra_dashboards={f"svc{i:03d}": ["slo"] for i in range(n)})
        first = apply_plan(build_plan(desired, client), client, message="bench")
        assert first.ok, first.failures
        double.reset_requests()
        started = time.perf_counter()
        second = apply_plan(build_plan(desired, client), client, message="bench")
        elapsed = time.perf_counter() - started
        reads = [r for r in double.requests if r.method == "GET"]
        return {
            "services": n,
            "objects": len(desired.folders) + len(desired.dashboards) + len(desired.rule_groups),
            "unchanged": second.counts()["unchanged"],
            "writes": len(double.writes()),
            "reads": len(reads),
            "seconds": elapsed,
        }


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [10, 50, 200]
    rows = [measure(n) for n in sizes]
    print(f"{'services':>8} {'objects':>8} {'unchanged':>9} {'writes':>6} {'reads':>5} {'secs':>6}")
    for r in rows:
        print(
            f"{r['services']:>8} {r['objects']:>8} {r['unchanged']:>9} {r['writes']:>6} "
            f"{r['reads']:>5} {r['seconds']:>6.2f}"
        )
    base = rows[0]["reads"]
    ratios = ", ".join(f"N={r['services']}: {r['reads'] / base:.2f}x" for r in rows)
    print(f"reads relative to N={rows[0]['services']}: {ratios} (target 1.00x); writes target 0")
    ok = all(r["writes"] == 0 and r["reads"] == base for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
