"""The provisioner CLI end to end, as a platform team runs it on a directory of service configs.

Times the real commands in their own processes (start-up, config loading, rendering, validation,
promtool, writing files, HTTP to a Grafana double) for N generated configs:

    validate DIR                  target: <= 5 s for N = 1,000
    render DIR --out OUT          target: <= 5 s for N = 1,000
    plan DIR                      target: <= 10 s for N = 1,000 (plus requests)
    apply DIR --yes  (no-op)      target: <= 10 s for N = 1,000 (plus requests)

and a floor measured in the same run: a Python process that reads the same configs (libyaml) and
writes the same files as `render`, with nothing else. Each row prints N, seconds, the Grafana
requests the command made, seconds per 1,000 services (linear cost keeps this flat as N grows) and
the ratio to the floor.

`render*` and `floor*` repeat both with the output on a memory file system where there is one:
a fleet's output is thousands of small files, and on a busy virtual disk creating them costs
seconds of kernel time that vary from run to run, for the floor as much as for the command.

    python benchmarks/bench_cli.py                    # N = 10, 100, 1000, 3000
    python benchmarks/bench_cli.py --max 1000         # stop at 1,000
    python benchmarks/bench_cli.py --sizes 50,500     # any sizes
    python benchmarks/bench_cli.py --latency-ms 20    # Grafana double answers after 20 ms
    python benchmarks/bench_cli.py --repeat 5         # median of 5 runs (a shared machine is noisy)

The first apply that fills the double is not timed here (benchmarks/bench_apply.py covers it).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from grafana_double import GrafanaDouble  # noqa: E402

#: Where the same render is repeated without a disk (Linux's shared-memory file system).
MEMORY_FS = Path("/dev/shm")
TARGETS = {"validate": 5.0, "render": 5.0, "plan": 10.0, "apply": 10.0}
DEFAULT_SIZES = (10, 100, 1000, 3000)
TEAMS = 37

FLOOR = r"""
import sys, yaml
from pathlib import Path
configs, rendered, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
for p in sorted(configs.iterdir()):
    yaml.load(p.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
for p in sorted(rendered.rglob("*")):
    if p.is_file():
        target = out / p.relative_to(rendered)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
"""


def service_config(i: int) -> str:
    """A realistic, varied config: tiers, SLOs on most, overrides, a custom alert on some."""
    name = f"service-{i:04d}"
    team = f"team-{i % TEAMS:02d}"
    lines = [
        "apiVersion: platform-obs/v1",
        "kind: Service",
        f"service: {name}",
        f"team: {team}",
        f"tier: {2 + i % 2 if i % 4 == 0 else 1 + i % 3}",  # tier 1 needs an SLO (policy)
        "environments: [production, staging]",
        f"receiver: {team}-oncall",
        f"runbook_base_url: https://runbooks.example.com/{team}",
    ]
    if i % 4:
        lines += ["slos:", f"  window: {'30d' if i % 2 else '28d'}", "  availability:"]
        lines += ["    objective: 99.9"]
        if i % 3:
            lines += ["  latency:", "    threshold: 250ms", "    objective: 99"]
    lines += [
        "alerts:",
        "  high-error-ratio:",
        f"    threshold: {0.01 + (i % 5) / 100:.2f}",
        f"    for: {5 + i % 3 * 5}m",
    ]
    if i % 5 == 0:
        lines += [
            "custom_alerts:",
            f"  - name: Service{i:04d}QueueBacklog",
            "    expr: >-",
            f'      sum(queue_backlog_items{{service_name="{name}"}}) > {100 + i}',
            "    for: 10m",
            "    severity: warning",
            f'    summary: "{name}: queue backlog above {100 + i}"',
        ]
    return "\n".join(lines) + "\n"


def write_configs(directory: Path, n: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (directory / f"service-{i:04d}.yaml").write_text(service_config(i), encoding="utf-8")


#: Runs of each command; the median is reported (``--repeat``).
REPEAT = 1


def timed(cmd: Sequence[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Median wall seconds, median CPU seconds (user + system) and the spread of wall seconds
    (max - min) of ``REPEAT`` runs of one command, each in its own process."""
    runs = []
    for _ in range(REPEAT):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd[:3])} ... exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        runs.append(
            (seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        )
    walls = sorted(wall for wall, _ in runs)
    return statistics.median(walls), statistics.median(cpu for _, cpu in runs), walls[-1] - walls[0]


Row = tuple[str, tuple[float, float, float], int | None]


def measure(n: int, work: Path, latency: float) -> list[Row]:
    configs, out, floor_out = work / "services", work / "out", work / "floor"
    write_configs(configs, n)
    script = Path(sys.executable).with_name("platform-obs")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "platform_obs"]
    env = {**os.environ, "NO_COLOR": "1"}
    rows: list[Row] = []
    rows.append(("validate", timed([*cli, "validate", str(configs)], env), None))
    rows.append(("render", timed([*cli, "render", str(configs), "--out", str(out)], env), None))
    floor = timed([sys.executable, "-c", FLOOR, str(configs), str(out), str(floor_out)], env)
    rows.append(("floor", floor, None))
    if MEMORY_FS.is_dir() and os.access(MEMORY_FS, os.W_OK):  # the same without the disk
        with tempfile.TemporaryDirectory(prefix="po-bench-", dir=MEMORY_FS) as memory:
            rendered = [*cli, "render", str(configs), "--out", f"{memory}/out"]
            rows.append(("render*", timed(rendered, env), None))
            floor_cmd = [sys.executable, "-c", FLOOR, str(configs), str(out), f"{memory}/floor"]
            rows.append(("floor*", timed(floor_cmd, env), None))
    receivers = [f"team-{t:02d}-oncall" for t in range(TEAMS)]  # apply checks they exist
    with GrafanaDouble(contact_points=receivers) as grafana:
        if latency > 0:
            grafana.inject(delay=latency, times=10**9)
        env |= {"GRAFANA_URL": grafana.url, "GRAFANA_TOKEN": grafana.token}
        fill = [*cli, "apply", str(configs), "--yes", "--no-progress"]
        subprocess.run(fill, env=env, capture_output=True, check=True)  # untimed
        for command in ("plan", "apply"):
            grafana.reset_requests()
            extra = ["--yes", "--no-progress"] if command == "apply" else []
            seconds = timed([*cli, command, str(configs), *extra], env)
            if grafana.writes():
                sys.exit(f"{command} on an up-to-date Grafana wrote {len(grafana.writes())}")
            rows.append((command, seconds, len(grafana.requests) // REPEAT))  # per run
    shutil.rmtree(work)
    return rows


def _quiet_double_collector() -> None:
    """The Grafana double serves from this process; Grafana is a Go server. Python's collector
    re-scanning the double's state (a fleet's dashboards and rules) would dominate its answers,
    so collect rarely, as the CLI does."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 1_000)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", help="comma-separated N values (default 10,100,1000,3000)")
    parser.add_argument("--max", type=int, help="only sizes up to this N")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="double's delay per request")
    parser.add_argument("--repeat", type=int, default=1, help="runs per command (median shown)")
    args = parser.parse_args(argv)
    global REPEAT
    REPEAT = max(1, args.repeat)
    _quiet_double_collector()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(DEFAULT_SIZES)
    if args.max is not None:
        sizes = [n for n in sizes if n <= args.max]
    print(
        f"{'N':>6} {'command':<9} {'seconds':>8} {'spread':>7} {'cpu s':>7} {'requests':>8} "
        f"{'s/1000':>7} {'x floor':>8}"
    )
    over = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="po-bench-") as tmp:
            rows = measure(n, Path(tmp) / "work", args.latency_ms / 1000)
        floors = {c: s[0] for c, s, _ in rows if c.startswith("floor")}
        for command, (seconds, cpu, spread), requests in rows:
            floor = floors["floor*" if command.endswith("*") else "floor"]
            per_k = seconds / n * 1000
            req = "" if requests is None else str(requests)
            print(
                f"{n:>6} {command:<9} {seconds:>8.2f} {spread:>7.2f} {cpu:>7.2f} {req:>8} "
                f"{per_k:>7.2f} {seconds / floor:>7.1f}x"
            )
            target = TARGETS.get(command)
            if target is not None and n == 1000 and seconds > target:
                over.append(f"{command} N={n}: {seconds:.2f} s > {target:.0f} s (cpu {cpu:.2f} s)")
        sys.stdout.flush()
    print("targets for N=1000: validate, render <= 5 s; plan, no-op apply <= 10 s (plus requests)")
    print(f"*: output written to a memory file system ({MEMORY_FS}), without the disk's cost")
    for line in over:
        print(f"OVER: {line}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
