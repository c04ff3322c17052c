"""`platform-obs apply` end to end against a Grafana with a real round trip.

Runs the real CLI in its own process on a directory of N generated service configs, against the
Grafana double answering every request after ``--latency-ms`` (default 20 ms), and prints per N:

    objects     folders + dashboards + rule groups in the plan
    requests    HTTP requests the first apply made (reads + writes)
    apply s     first apply into an empty Grafana (target: <= 60 s for N = 1,000 at 20 ms)
    dry-run s   the same command with --dry-run: everything but the writes
    writes s    apply s - dry-run s: what the writes add
    floor s     the same requests replayed by a bare HTTP client (niquests, one session per
                thread, same parallelism, folders first) against a fresh double with the same
                latency, in its own process: the network cost with nothing else
    ratio       apply s / floor s (whole command) and writes s / floor s (the HTTP part)
    no-op s     apply again: nothing to write
    no-op reqs  requests of that no-op apply (constant in N where Grafana has the rule export)

    python benchmarks/bench_apply.py                         # N = 10, 100, 1000
    python benchmarks/bench_apply.py --sizes 10,100,1000,3000
    python benchmarks/bench_apply.py --latency-ms 50 --parallelism 16
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from grafana_double import GrafanaDouble  # noqa: E402

EXAMPLE = ROOT / "examples" / "service-config" / "platform-obs.yaml"
TARGET_SECONDS_AT_1000 = 60.0
TEAMS = 37
#: Every receiver the generated configs name exists as a contact point (apply checks them).
RECEIVERS = tuple(f"team-{t:02d}-{kind}" for t in range(TEAMS) for kind in ("oncall", "infra"))

#: Replays recorded requests with a bare client: the floor.
FLOOR = r"""
import json, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
import niquests

base, token, parallelism, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
waves = json.load(open(path))
local = threading.local()

def send(req):
    s = getattr(local, "s", None)
    if s is None:
        s = local.s = niquests.Session()
        s.headers["Authorization"] = "Bearer " + token
    r = s.request(req["method"], base + req["path"], params=req["query"], json=req["body"])
    assert r.status_code < 300, (r.status_code, req["path"], r.text[:200])

started = time.perf_counter()
with ThreadPoolExecutor(parallelism) as pool:
    for wave in waves:
        list(pool.map(send, wave))
print(time.perf_counter() - started)
"""


def write_configs(directory: Path, n: int) -> None:
    """N copies of the example config, one service each, teams of ~27 services."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for i in range(n):
        name = f"svc-{i:04d}"
        team = f"team-{i % TEAMS:02d}"
        body = (
            text.replace("service: checkout", f"service: {name}")
            .replace('service_name="checkout"', f'service_name="{name}"')
            .replace("CheckoutPaymentProviderErrors", f"PaymentProviderErrors{i:04d}")
            .replace("team: payments", f"team: {team}")
            .replace("receiver: payments-oncall", f"receiver: {team}-oncall")
            .replace("receiver: payments-infra", f"receiver: {team}-infra")
        )
        (directory / f"{name}.yaml").write_text(body, encoding="utf-8")


def cli(configs: Path, double: GrafanaDouble, *extra: str) -> tuple[float, str]:
    env = {
        **os.environ,
        "GRAFANA_URL": double.url,
        "GRAFANA_TOKEN": double.token,
        "GITHUB_SHA": "",
        "GITHUB_RUN_ID": "",
    }
    command = [sys.executable, "-c", "from platform_obs.cli import main; main()"]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "apply", str(configs), "--no-progress", *extra],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"apply failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed, done.stdout.strip().splitlines()[-1]


def replay_waves(double: GrafanaDouble) -> list[list[dict[str, object]]]:
    """The first apply's requests in the order a minimal client could send them."""
    reads, top, nested, rest = [], [], [], []
    for r in double.requests:
        req = {
            "method": r.method,
            "path": r.path,
            "query": {k: v for k, v in r.query.items()},
            "body": r.body if r.method != "GET" else None,
        }
        if r.method == "GET":
            reads.append(req)
        elif r.path == "/api/folders" and r.method == "POST":
            (nested if isinstance(r.body, dict) and r.body.get("parentUid") else top).append(req)
        else:
            rest.append(req)
    return [[q] for q in reads] + [top, nested, rest]


def floor(waves: list[list[dict[str, object]]], latency: float, parallelism: int) -> float:
    with GrafanaDouble(latency=latency) as fresh, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "requests.json"
        path.write_text(json.dumps(waves))
        out = subprocess.run(
            [sys.executable, "-c", FLOOR, fresh.url, fresh.token, str(parallelism), str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        return float(out.stdout.strip())


def measure(n: int, latency: float, parallelism: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        configs = Path(tmp) / "services"
        configs.mkdir()
        write_configs(configs, n)
        par = ("--parallelism", str(parallelism))
        with GrafanaDouble(latency=latency, contact_points=RECEIVERS) as double:
            dry, _ = cli(configs, double, "--dry-run", *par)
            double.reset_requests()
            first, _summary = cli(configs, double, *par)
            requests = len(double.requests)
            objects = len(double.folders) + len(double.dashboards) + len(double.rule_groups)
            waves = replay_waves(double)
            double.reset_requests()
            noop, _noop_summary = cli(configs, double, *par)
            noop_requests = len(double.requests)
            assert not double.writes(), "the second apply wrote something"
        base = floor(waves, latency, parallelism)
    return {
        "n": n,
        "objects": objects,
        "requests": requests,
        "apply": first,
        "dry": dry,
        "floor": base,
        "noop": noop,
        "noop_requests": noop_requests,
    }


def _quiet_double_collector() -> None:
    """The Grafana double serves from this process; Grafana is a Go server. Python's collector
    re-scanning the double's state (a fleet's dashboards and rules) would dominate its answers,
    so collect rarely, as the CLI does."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 1_000)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated N")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--parallelism", type=int, default=8)
    args = parser.parse_args(argv)
    _quiet_double_collector()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    latency = args.latency_ms / 1000
    print(
        f"platform-obs apply, Grafana double at {args.latency_ms:g} ms per request, "
        f"--parallelism {args.parallelism}"
    )
    header = (
        f"{'N':>6} {'objects':>8} {'requests':>8} {'apply s':>8} {'dry-run s':>9} "
        f"{'writes s':>8} {'floor s':>8} {'ratio':>6} {'w/floor':>7} {'no-op s':>8} "
        f"{'no-op reqs':>10}"
    )
    print(header)
    rows = []
    for n in sizes:
        r = measure(n, latency, args.parallelism)
        rows.append(r)
        print(
            f"{r['n']:>6} {r['objects']:>8} {r['requests']:>8} {r['apply']:>8.2f} "
            f"{r['dry']:>9.2f} {r['apply'] - r['dry']:>8.2f} {r['floor']:>8.2f} "
            f"{r['apply'] / r['floor']:>6.1f} {(r['apply'] - r['dry']) / r['floor']:>7.1f} "
            f"{r['noop']:>8.2f} {r['noop_requests']:>10}",
            flush=True,
        )
    ok = True
    for r in rows:
        if r["n"] >= 1000:
            budget = TARGET_SECONDS_AT_1000 * r["n"] / 1000
            verdict = "ok" if r["apply"] <= budget else "OVER"
            ok &= r["apply"] <= budget
            print(
                f"N={r['n']}: first apply {r['apply']:.1f} s, target <= {budget:.0f} s: {verdict}"
            )
    noop = {r["noop_requests"] for r in rows}
    print(f"no-op apply requests for every N: {sorted(noop)} (target: one value)")
    return 0 if ok and len(noop) == 1 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
