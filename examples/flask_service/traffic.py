"""A bounded load generator for the checkout example.

It sends a fixed number of requests with an exact share of injected errors (``?fail=1``) and slow
requests (``?delay_ms=...``), so dashboards and alerts can be checked against known numbers::

    python examples/flask_service/traffic.py http://127.0.0.1:8080 --requests 200 --error-ratio 0.1

It only talks to this machine (127.0.0.1 / localhost): a demo and test tool, not a load tester.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_REQUESTS = 100_000
MAX_SLOW_MS = 10_000  # the service caps delays at the same value

# Proxies from the environment must not see local traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    body: bytes | None


def _check_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme != "http" or parts.hostname not in LOCAL_HOSTS:
        raise ValueError(f"target must be http://127.0.0.1 or http://localhost, got {base_url!r}")
    return base_url.rstrip("/")


def plan(
    requests: int,
    error_ratio: float,
    slow_ratio: float,
    slow_ms: int,
    rng: random.Random,
) -> list[_Call]:
    """The requests to send: exactly round(n * ratio) errors and slow ones, never both at once."""
    if not 0 < requests <= MAX_REQUESTS:
        raise ValueError(f"requests must be 1..{MAX_REQUESTS}, got {requests}")
    for name, ratio in (("error_ratio", error_ratio), ("slow_ratio", slow_ratio)):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {ratio}")
    if not 0 <= slow_ms <= MAX_SLOW_MS:
        raise ValueError(f"slow_ms must be 0..{MAX_SLOW_MS}, got {slow_ms}")
    errors = round(requests * error_ratio)
    slow = round(requests * slow_ratio)
    if errors + slow > requests:
        raise ValueError("error_ratio + slow_ratio must not exceed 1")

    # Disjoint sets keep each share exact: a slow request that also failed would count twice.
    faults = ["fail=1"] * errors + [f"delay_ms={slow_ms}"] * slow
    faults += [""] * (requests - len(faults))
    rng.shuffle(faults)
    calls = []
    for fault in faults:
        query = f"?{fault}" if fault else ""
        if rng.random() < 0.7:  # reads dominate, as in a real shop
            calls.append(_Call("GET", f"/orders/{rng.randint(1, 5000)}{query}", None))
        else:
            amount = round(rng.uniform(5, 500), 2)
            calls.append(_Call("POST", f"/orders{query}", json.dumps({"amount": amount}).encode()))
    return calls


def _send(base_url: str, call: _Call, timeout: float) -> int:
    request = urllib.request.Request(
        base_url + call.path,
        data=call.body,
        method=call.method,
        headers={"Content-Type": "application/json"} if call.body is not None else {},
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as err:  # 4xx/5xx are results, not failures of the generator
        err.read()
        return err.code


def generate(
    base_url: str,
    requests: int = 100,
    error_ratio: float = 0.1,
    slow_ratio: float = 0.05,
    slow_ms: int = 300,
    *,
    concurrency: int = 4,
    seed: int | None = 0,
    timeout: float = 15.0,
) -> Counter[int]:
    """Send ``requests`` requests to the checkout service; return how many got each status code.

    Connection failures raise (``urllib.error.URLError``): a service that is down is not traffic.
    ``seed`` makes the request mix reproducible (``None`` for a different mix each run).
    """
    base = _check_base_url(base_url)
    if not 1 <= concurrency <= 64:
        raise ValueError(f"concurrency must be 1..64, got {concurrency}")
    calls = plan(requests, error_ratio, slow_ratio, slow_ms, random.Random(seed))
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="traffic") as pool:
        return Counter(pool.map(lambda call: _send(base, call, timeout), calls))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", nargs="?", default="http://127.0.0.1:8080")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--error-ratio", type=float, default=0.1)
    parser.add_argument("--slow-ratio", type=float, default=0.05)
    parser.add_argument("--slow-ms", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    counts = generate(
        args.base_url,
        args.requests,
        args.error_ratio,
        args.slow_ratio,
        args.slow_ms,
        concurrency=args.concurrency,
        seed=args.seed,
    )
    print(" ".join(f"{code}={n}" for code, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
