"""The example's load generator: exact fault shares and a local-only target."""

from __future__ import annotations

import random

import pytest
from service_process import example_module

traffic = example_module("traffic")


@pytest.mark.parametrize(
    ("requests", "error_ratio", "slow_ratio"), [(100, 0.1, 0.05), (7, 0.5, 0.0), (50, 0.0, 1.0)]
)
def test_plan_has_exact_disjoint_fault_shares(
    requests: int, error_ratio: float, slow_ratio: float
) -> None:
    calls = traffic.plan(requests, error_ratio, slow_ratio, 250, random.Random(1))
    assert len(calls) == requests
    failing = [c for c in calls if "fail=1" in c.path]
    slow = [c for c in calls if "delay_ms=250" in c.path]
    assert len(failing) == round(requests * error_ratio)
    assert len(slow) == round(requests * slow_ratio)
    assert not set(map(id, failing)) & set(map(id, slow))
    assert all(c.method in ("GET", "POST") for c in calls)
    assert all((c.body is None) == (c.method == "GET") for c in calls)


def test_plan_is_reproducible_with_a_seed() -> None:
    assert traffic.plan(30, 0.1, 0.1, 1, random.Random(5)) == traffic.plan(
        30, 0.1, 0.1, 1, random.Random(5)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requests": 0}, "requests"),
        ({"error_ratio": 1.5}, "error_ratio"),
        ({"slow_ratio": -0.1}, "slow_ratio"),
        ({"error_ratio": 0.6, "slow_ratio": 0.6}, "exceed"),
        ({"slow_ms": 60_000}, "slow_ms"),
    ],
)
def test_generate_rejects_bad_parameters(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        traffic.generate("http://127.0.0.1:9", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    ["http://example.com", "https://127.0.0.1:8080", "http://10.0.0.1:80", "127.0.0.1:8080"],
)
def test_generate_only_targets_this_machine(url: str) -> None:
    with pytest.raises(ValueError, match="target"):
        traffic.generate(url, requests=1)
