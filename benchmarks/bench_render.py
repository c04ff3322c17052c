"""Render dashboards and rules for 1,000 generated services (target: at most 5 s).

Run: python benchmarks/bench_render.py [--services N]
Prints the total, the cost per service, and the share spent in the foundation-sdk encoder
(measured in the same run) so a regression in our code is told apart from the library's cost.
"""

from __future__ import annotations

import argparse
import json
import time

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from platform_obs.provisioning.pipeline import render_all
from platform_obs.provisioning.spec import LatencySLO, ServiceSpec, SLOs
from platform_obs.provisioning.templates import load_templates
from platform_obs.provisioning.validate import check_rendered

TARGET_SECONDS = 5.0


def generated_specs(count: int) -> list[ServiceSpec]:
    specs = []
    for i in range(count):
        slos = (
            SLOs(
                window="30d" if i % 2 else "28d",
                availability=99.9,
                latency=LatencySLO(0.25, 99.0) if i % 3 else None,
            )
            if i % 4
            else None
        )
        specs.append(
            ServiceSpec(
                name=f"service-{i:04d}",
                team=f"team-{i % 37}",
                receiver=f"team-{i % 37}-oncall",
                file=f"services/service-{i:04d}/platform-obs.yaml",
                tier=1 + i % 3,
                environments=("production", "staging"),
                slos=slos,
                alerts={"high-error-ratio": {"threshold": 0.01 + (i % 5) / 100}},
            )
        )
    return specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument(
        "--validate", action="store_true", help="also run the offline PromQL checks"
    )
    args = parser.parse_args()
    templates = load_templates()
    specs = generated_specs(args.services)

    start = time.perf_counter()
    result = render_all(specs, templates)
    render_seconds = time.perf_counter() - start
    rendered = result.rendered
    dashboards, rules = len(rendered.dashboards), sum(len(g.rules) for g in rendered.rule_groups)

    # Baseline in the same run: encoding a bare 12-panel dashboard per rendered dashboard.
    bare = db.Dashboard("bare").uid("bare")
    start = time.perf_counter()
    for _ in range(dashboards):
        json.dumps(bare.build(), cls=JSONEncoder)
    baseline = time.perf_counter() - start

    print(
        f"services:   {args.services}  dashboards: {dashboards}  alert rules: {rules} (x2 outputs)"
    )
    print(
        f"render:     {render_seconds:.2f} s total, {render_seconds / args.services * 1000:.2f} ms per service"
    )
    print(f"baseline:   bare foundation-sdk dashboard encode x{dashboards}: {baseline:.3f} s")
    print(
        f"target:     <= {TARGET_SECONDS:.1f} s -> {'OK' if render_seconds <= TARGET_SECONDS else 'OVER'}"
    )
    if args.validate:
        start = time.perf_counter()
        problems = check_rendered(rendered, result.definitions, specs, run_promtool=False)
        seconds = time.perf_counter() - start
        print(
            f"validate:   {seconds:.2f} s ({len(problems)} problems), "
            f"{seconds / args.services * 1000:.2f} ms per service"
        )


if __name__ == "__main__":
    main()
