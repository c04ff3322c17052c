"""Concurrent apply: bounded, ordered where Grafana needs it, one back-off for the whole run.

Against the Grafana double with a round trip per request (``latency``), over real HTTP. The double
itself enforces the ordering (a dashboard or rule group in a missing folder is a 400, a folder
under a missing parent a 404), so a clean run proves the order.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from factories import rendered, service_folder_uid, team_folder_uid
from grafana_double import GrafanaDouble

from platform_obs.provisioning.apply import apply_plan, dependencies, ordered
from platform_obs.provisioning.grafana import Grafana, RetryPolicy, Throttle
from platform_obs.provisioning.model import Folder, Rendered
from platform_obs.provisioning.plan import build_plan


def nested(n: int) -> Rendered:
    """``n`` services whose folders sit two levels down (team -> area -> service)."""
    r = rendered(n)
    area = "po-area-core"
    r.folders = [
        Folder(f.uid, f.title, parent_uid=area) if f.parent_uid == team_folder_uid() else f
        for f in r.folders
    ]
    r.folders.insert(1, Folder(area, "core", parent_uid=team_folder_uid()))
    return r


def run(g: GrafanaDouble, r: Rendered, parallelism: int, **kw: Any) -> Any:
    client = Grafana(g.url, g.token, parallelism=parallelism, **kw)
    with client:
        plan = build_plan(r, client)
        return apply_plan(plan, client, message="m", parallelism=parallelism)


def test_changes_run_concurrently_in_folder_order() -> None:
    with GrafanaDouble(latency=0.02) as g:
        result = run(g, nested(12), parallelism=6)
        assert result.ok, result.failures
        assert result.counts()["created"] == 2 + 12 * 3
        assert 2 <= g.max_in_flight <= 6
        # Ordering as Grafana saw it: every folder after its parent, every object after its folder.
        done_at = {}
        for i, req in enumerate(g.requests):
            if req.method == "POST" and req.path == "/api/folders":
                done_at[req.body["uid"]] = i
        for i, req in enumerate(g.requests):
            if req.method == "POST" and req.path == "/api/folders" and req.body.get("parentUid"):
                assert done_at[req.body["parentUid"]] < i
            if req.path == "/api/dashboards/db":
                assert done_at[req.body["folderUid"]] < i
        # Converges: a second run changes nothing.
        again = run(g, nested(12), parallelism=6)
        assert again.counts()["unchanged"] == len(again.outcomes)


def test_parallelism_bounds_requests_in_flight() -> None:
    with GrafanaDouble(latency=0.02) as g:
        assert run(g, rendered(10), parallelism=3).ok
        assert g.max_in_flight <= 3


@pytest.mark.parametrize("parallelism", [1, 8])
def test_same_outcomes_whatever_the_parallelism(parallelism: int) -> None:
    with GrafanaDouble() as g:
        first = run(g, rendered(6, extra_dashboards={"svc001": ["old"]}), parallelism)
        keys = [(o.change.kind, o.change.key, o.status) for o in first.outcomes]
        # Outcomes are reported in plan order, however the writes interleaved.
        assert keys == [(c.kind, c.key, "created") for c in [o.change for o in first.outcomes]]
        assert [k[0] for k in keys] == sorted(
            (k[0] for k in keys), key=["folder", "dashboard", "rule_group"].index
        )
        client = Grafana(g.url, g.token)
        pruned = apply_plan(
            build_plan(rendered(6), client, prune=True),
            client,
            message="m",
            parallelism=parallelism,
        )
        assert pruned.counts() == {
            "created": 0,
            "updated": 0,
            "deleted": 1,
            "unchanged": 19,
            "skipped": 0,
            "failed": 0,
            "not-attempted": 0,
        }


def test_dependencies_folders_before_contents_deletes_last() -> None:
    with GrafanaDouble() as g:
        client = Grafana(g.url, g.token)
        todo = ordered(build_plan(nested(2), client))
    deps = dependencies(todo)
    index = {(c.kind, c.key): i for i, c in enumerate(todo)}
    area = index[("folder", "po-area-core")]
    assert deps[area] == {index[("folder", team_folder_uid())]}
    assert deps[index[("folder", service_folder_uid("svc000"))]] == {area}
    assert deps[index[("dashboard", "svc000-red")]] == {
        index[("folder", service_folder_uid("svc000"))]
    }


def test_a_fatal_error_stops_new_work_and_counts_the_rest() -> None:
    with GrafanaDouble(latency=0.01, viewer_token="viewer") as g:
        client = Grafana(g.url, "viewer", parallelism=4)
        plan = build_plan(rendered(10), client)
        result = apply_plan(plan, client, message="m", parallelism=4)
        sent = [r for r in g.requests if r.method != "GET"]
    n = result.counts()
    assert result.aborted and "403" in result.aborted
    # Only what was already in flight (parallelism 4) fails; everything after it is never sent.
    assert n["failed"] == len(sent) and all(r.status == 403 for r in sent)
    assert len(sent) <= 4
    assert n["not-attempted"] == len(plan.writes) - n["failed"] > 0
    assert n["created"] == n["updated"] == n["deleted"] == 0


def test_429_pauses_every_request_not_just_one() -> None:
    """The shared back-off: after a 429 with Retry-After, no request starts until it is over."""
    with GrafanaDouble(latency=0.01) as g:
        g.inject(
            status=429, times=1, method="POST", path_prefix="/api/dashboards/db", retry_after="1"
        )
        result = run(g, rendered(8), parallelism=8)
        assert result.ok, result.failures
        [throttled] = [i for i, r in enumerate(g.requests) if r.status == 429]
        answered = g.requests[throttled].started + 0.01  # latency, then the 429
        later = [r.started for r in g.requests[throttled + 1 :]]
        # Requests sent before the 429 arrived may still land a moment later; none in the pause.
        assert not [t for t in later if answered + 0.2 < t < answered + 0.9]
        assert any(t >= answered + 0.95 for t in later)


def test_throttle_halves_on_429_and_grows_back() -> None:
    throttle = Throttle(8, sleep=lambda s: None)
    throttle.acquire()
    throttle.release(throttled=True)
    assert throttle.limit == 4
    throttle.acquire()
    throttle.release(throttled=True)
    assert throttle.limit == 2
    for _ in range(2 + 3 + 4 + 5 + 6 + 7):
        throttle.acquire()
        throttle.release()
    assert throttle.limit == 8


def test_throttle_limits_threads_in_flight() -> None:
    throttle = Throttle(2, sleep=lambda s: None)
    seen: list[int] = []
    lock = threading.Lock()
    inside = [0]
    gate = threading.Barrier(6)

    def work() -> None:
        gate.wait()
        for _ in range(50):
            throttle.acquire()
            with lock:
                inside[0] += 1
                seen.append(inside[0])
            with lock:
                inside[0] -= 1
            throttle.release()

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(seen) <= 2


def test_retries_under_concurrency_use_each_threads_own_session() -> None:
    """One session per thread: retries on one thread never disturb another's request."""
    with GrafanaDouble(latency=0.005) as g:
        g.inject(drop=True, times=5, method="POST", path_prefix="/api/dashboards/db")
        sleeps: list[float] = []
        policy = RetryPolicy(sleep=sleeps.append, random=lambda: 0.5)
        result = run(g, rendered(12), parallelism=8, retry=policy)
        assert result.ok, result.failures
        assert len(g.dashboards) == 12
        assert len(sleeps) == 5


def test_plan_reads_changed_dashboards_concurrently() -> None:
    with GrafanaDouble(latency=0.02) as g:
        assert run(g, rendered(12), parallelism=8).ok
        changed = rendered(12)
        for d in changed.dashboards:
            d.model["title"] += " v2"
        g.reset_requests()
        g.max_in_flight = 0
        plan = build_plan(changed, Grafana(g.url, g.token, parallelism=4))
        assert plan.counts()["update"] == 12
        gets = [r for r in g.requests if r.path.startswith("/api/dashboards/uid/")]
        assert len(gets) == 12
        assert 2 <= g.max_in_flight <= 4


def test_without_rule_export_groups_are_read_one_by_one_concurrently() -> None:
    with GrafanaDouble(latency=0.02) as g:
        assert run(g, rendered(10), parallelism=8).ok
        g.inject(status=404, times=10, path_prefix="/api/v1/provisioning/alert-rules/export")
        g.reset_requests()
        g.max_in_flight = 0
        changed = rendered(10, thresholds={"svc003": 0.3})
        plan = build_plan(changed, Grafana(g.url, g.token, parallelism=8))
        assert [c.key for c in plan.by_action("update")] == [
            f"{service_folder_uid('svc003')}/svc003-alerts"
        ]
        groups = [r for r in g.requests if "/rule-groups/" in r.path and r.method == "GET"]
        assert len(groups) == 10
        assert g.max_in_flight >= 2
