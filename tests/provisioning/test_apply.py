"""apply against the Grafana double, through the real grafana-client over HTTP."""

from __future__ import annotations

import time
import traceback
from typing import Any

import pytest
from factories import (
    dashboard,
    rendered,
    rule_group,
    service_folder_uid,
    team_folder_uid,
)
from grafana_double import GrafanaDouble

from platform_obs.provisioning.apply import TooManyDeletes, apply_plan, ci_message
from platform_obs.provisioning.grafana import (
    Conflict,
    Forbidden,
    Grafana,
    GrafanaUnavailable,
    RetryPolicy,
    Unauthorized,
    VersionMismatch,
)
from platform_obs.provisioning.model import MANAGER, SERVICE_TAG_PREFIX, Rendered
from platform_obs.provisioning.plan import build_plan


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def connect(
    grafana: GrafanaDouble, token: str | None = None, sleeps: Sleeps | None = None, **kw: Any
) -> Grafana:
    policy = RetryPolicy(sleep=sleeps or Sleeps(), random=lambda: 0.5)
    return Grafana(grafana.url, token or grafana.token, retry=policy, **kw)


def run(grafana: GrafanaDouble, r: Rendered, **kw: Any) -> Any:
    prune = kw.pop("prune", False)
    client = connect(grafana)
    plan = build_plan(r, client, prune=prune)
    return apply_plan(plan, client, message=kw.pop("message", "test"), **kw)


def test_first_apply_creates_everything(grafana: GrafanaDouble) -> None:
    r = rendered(["checkout", "cart"])
    result = run(grafana, r, message="commit abc")
    assert result.ok
    assert result.counts()["created"] == 7  # team + 2 service folders, 2 dashboards, 2 groups

    assert grafana.folders[team_folder_uid()]["parentUid"] is None
    assert grafana.folders[service_folder_uid("checkout")]["parentUid"] == team_folder_uid()
    stored = grafana.dashboards["checkout-red"]
    assert stored["folderUid"] == service_folder_uid("checkout")
    assert stored["message"] == "commit abc"
    assert MANAGER in stored["dashboard"]["tags"]
    assert any(t.startswith("po-hash:") for t in stored["dashboard"]["tags"])
    group = grafana.rule_groups[(service_folder_uid("cart"), "cart-alerts")]
    assert group["interval"] == 60
    assert {x["uid"] for x in group["rules"]} == {"cart-high-error-rate", "cart-high-latency"}
    assert all(x["provenance"] == "api" for x in group["rules"])


def _noop_reads(n: int) -> tuple[int, int]:
    with GrafanaDouble() as g:
        r = rendered(n)
        assert run(g, r).ok
        g.reset_requests()
        result = run(g, r)
        assert result.counts()["unchanged"] == len(r.folders) + 2 * n
        return len(g.writes()), len(g.requests)


def test_second_apply_writes_nothing_and_reads_do_not_grow() -> None:
    writes_small, reads_small = _noop_reads(2)
    writes_large, reads_large = _noop_reads(25)
    assert writes_small == writes_large == 0
    assert reads_small == reads_large
    assert reads_large <= 5


def test_changed_threshold_updates_exactly_one_rule_group(grafana: GrafanaDouble) -> None:
    services = ["a", "b", "c"]
    assert run(grafana, rendered(services)).ok
    versions = {uid: grafana.dashboard_versions(uid) for uid in grafana.dashboards}
    grafana.reset_requests()

    result = run(grafana, rendered(services, thresholds={"b": 0.1}))

    assert result.ok
    writes = grafana.writes()
    assert [(w.method, w.path) for w in writes] == [
        ("PUT", f"/api/v1/provisioning/folder/{service_folder_uid('b')}/rule-groups/b-alerts")
    ]
    stored = grafana.rule_groups[(service_folder_uid("b"), "b-alerts")]["rules"]
    threshold = stored[0]["data"][1]["model"]["conditions"][0]["evaluator"]["params"]
    assert threshold == [0.1]
    assert {uid: grafana.dashboard_versions(uid) for uid in grafana.dashboards} == versions


def test_changed_interval_alone_is_an_update(grafana: GrafanaDouble) -> None:
    r = rendered(["a"])
    assert run(grafana, r).ok
    r.rule_groups[0] = rule_group("a", interval=120)
    grafana.reset_requests()
    assert run(grafana, r).counts()["updated"] == 1
    assert grafana.rule_groups[(service_folder_uid("a"), "a-alerts")]["interval"] == 120


def test_prune_removes_only_managed_undeclared_objects(grafana: GrafanaDouble) -> None:
    before = rendered(["a", "b"], extra_dashboards={"a": ["old"]})
    assert run(grafana, before).ok
    folder_a = service_folder_uid("a")
    # An unmanaged dashboard in our folder, and a file-provisioned one carrying our tags.
    grafana.add_folder("team-owned", "Team owned")
    unmanaged = {"uid": "hand-made", "title": "Hand made", "tags": ["service:a"]}
    saved = connect(grafana).save_dashboard(unmanaged, folder_a, "by hand")
    assert saved["status"] == "success"
    provisioned = {"uid": "from-file", "title": "From file", "tags": [MANAGER, "service:a"]}
    grafana.seed_file_provisioned_dashboard(provisioned, "team-owned")
    # Service "b" is out of scope in the next run: its objects must survive prune.
    after = rendered(["a"])
    grafana.reset_requests()

    result = run(grafana, after, prune=True)

    assert result.ok, result.failures
    assert result.counts()["deleted"] == 1
    assert "a-old" not in grafana.dashboards
    assert {"hand-made", "from-file", "a-red", "b-red"} <= set(grafana.dashboards)
    assert (service_folder_uid("b"), "b-alerts") in grafana.rule_groups
    skipped = [o for o in result.outcomes if o.status == "skipped"]
    assert [o.change.key for o in skipped] == ["from-file"]
    # Tags without the ownership marker are not proof: kept (it is file-provisioned, too).
    assert "kept, not deleted" in skipped[0].error
    deletes = [w for w in grafana.writes() if w.method == "DELETE"]
    assert [w.path for w in deletes] == ["/api/dashboards/uid/a-old"]


def test_prune_deletes_rule_group_and_emptied_managed_folder(grafana: GrafanaDouble) -> None:
    r = rendered(["a"])
    extra = rule_group("a")
    moved = type(extra)(
        service="a",
        folder_uid="po-svc-a-legacy",
        title="legacy",
        interval_seconds=60,
        rules=tuple(
            {**x, "uid": x["uid"] + "-l", "title": x["title"] + " legacy"} for x in extra.rules
        ),
    )
    from platform_obs.provisioning.model import Folder

    r.folders.append(Folder("po-svc-a-legacy", "a legacy", parent_uid=team_folder_uid()))
    r.rule_groups.append(moved)
    assert run(grafana, r).ok

    result = run(grafana, rendered(["a"]), prune=True)

    assert result.ok, result.failures
    assert ("po-svc-a-legacy", "legacy") not in grafana.rule_groups
    assert "po-svc-a-legacy" not in grafana.folders
    assert service_folder_uid("a") in grafana.folders
    kinds = [o.change.kind for o in result.outcomes if o.status == "deleted"]
    assert kinds == ["rule_group", "folder"]


def test_without_prune_nothing_is_deleted(grafana: GrafanaDouble) -> None:
    assert run(grafana, rendered(["a"], extra_dashboards={"a": ["old"]})).ok
    grafana.reset_requests()
    assert run(grafana, rendered(["a"])).counts()["deleted"] == 0
    assert grafana.writes() == []
    assert "a-old" in grafana.dashboards


def test_prune_over_limit_refuses_without_force(grafana: GrafanaDouble) -> None:
    kinds = [f"k{i}" for i in range(3)]
    assert run(grafana, rendered(["a"], extra_dashboards={"a": kinds})).ok
    grafana.reset_requests()

    with pytest.raises(TooManyDeletes, match="--max-deletes=2"):
        run(grafana, rendered(["a"]), prune=True, max_deletes=2)
    assert grafana.writes() == []

    result = run(grafana, rendered(["a"]), prune=True, max_deletes=2, force=True)
    assert result.counts()["deleted"] == 3


def test_failed_object_is_recorded_and_others_continue(grafana: GrafanaDouble) -> None:
    r = rendered(["a", "b"])
    bad = rule_group("a")
    r.rule_groups[0] = type(bad)(
        service="a",
        folder_uid=bad.folder_uid,
        title=bad.title,
        interval_seconds=45,  # not a multiple of 10: Grafana answers 400
        rules=bad.rules,
    )
    result = run(grafana, r)
    assert not result.ok
    assert [o.change.key for o in result.failures] == [f"{service_folder_uid('a')}/a-alerts"]
    assert "400" in result.failures[0].error
    assert (service_folder_uid("b"), "b-alerts") in grafana.rule_groups


# --- retries ------------------------------------------------------------------------------------


def test_503s_are_retried_with_backoff(grafana: GrafanaDouble) -> None:
    grafana.inject(status=503, times=2, method="POST", path_prefix="/api/dashboards/db")
    sleeps = Sleeps()
    client = connect(grafana, sleeps=sleeps)
    result = apply_plan(build_plan(rendered(["a"]), client), client, message="m")
    assert result.ok
    assert "a-red" in grafana.dashboards
    assert sleeps.calls == [0.25, 0.5]  # full jitter with random()=0.5: base*2^n/2


def test_429_honours_retry_after(grafana: GrafanaDouble) -> None:
    grafana.inject(status=429, times=1, path_prefix="/api/search", retry_after="7")
    sleeps = Sleeps()
    client = connect(grafana, sleeps=sleeps)
    assert client.list_managed_dashboards() == []
    assert sleeps.calls == [pytest.approx(7.0, abs=0.1)]  # the shared pause, slept once


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_errors_are_retried(grafana: GrafanaDouble, status: int) -> None:
    grafana.inject(status=status, times=1, path_prefix="/api/v1/provisioning/alert-rules")
    assert connect(grafana).list_alert_rules() == []


def test_dropped_connection_is_retried(grafana: GrafanaDouble) -> None:
    grafana.inject(drop=True, times=2, method="GET", path_prefix="/api/search")
    sleeps = Sleeps()
    assert connect(grafana, sleeps=sleeps).list_folders() == []
    assert len(sleeps.calls) == 2


def test_timeout_is_retried(grafana: GrafanaDouble) -> None:
    grafana.inject(delay=1.0, times=1, path_prefix="/api/search")
    started = time.monotonic()
    assert connect(grafana, timeout=0.3).list_folders() == []
    assert time.monotonic() - started < 5


def test_retries_are_bounded(grafana: GrafanaDouble) -> None:
    grafana.inject(status=503, times=100, path_prefix="/api/search")
    sleeps = Sleeps()
    with pytest.raises(GrafanaUnavailable, match="after 5 attempts"):
        connect(grafana, sleeps=sleeps).list_folders()
    assert len(sleeps.calls) == 4
    assert len([q for q in grafana.requests if q.path == "/api/search"]) == 5


def test_500_is_not_retried(grafana: GrafanaDouble) -> None:
    grafana.inject(status=500, times=1, path_prefix="/api/search")
    sleeps = Sleeps()
    with pytest.raises(Exception, match="HTTP 500"):
        connect(grafana, sleeps=sleeps).list_folders()
    assert sleeps.calls == []


# --- typed errors -------------------------------------------------------------------------------

SECRET = "glsa_SeCrEt-7f3a9c1e-do-not-print"


def test_401_is_clear_and_never_shows_the_token(grafana: GrafanaDouble) -> None:
    client = connect(grafana, token=SECRET)
    assert SECRET not in repr(client)
    with pytest.raises(Unauthorized) as info:
        build_plan(rendered(["a"]), client)
    text = str(info.value)
    assert "GRAFANA_TOKEN" in text
    assert SECRET not in text
    assert SECRET not in repr(info.value)
    assert info.value.__suppress_context__  # the client's own exception is not chained in
    assert SECRET not in "".join(traceback.format_exception(info.value))
    assert grafana.writes() == []


def test_unauthorized_stops_apply(grafana: GrafanaDouble) -> None:
    client = connect(grafana)
    plan = build_plan(rendered(["a", "b"]), client)
    grafana.token = "rotated"  # the token expires between plan and apply
    result = apply_plan(plan, client, message="m")
    assert "GRAFANA_TOKEN" in result.aborted
    assert result.counts()["failed"] == 1
    assert result.counts()["not-attempted"] == len(plan.writes) - 1


def test_403_is_forbidden_with_role_hint() -> None:
    with GrafanaDouble(viewer_token="viewer") as g:
        client = connect(g, token="viewer")
        with pytest.raises(Forbidden, match="Editor or Admin"):
            client.create_folder("po-x", "X")


def test_409_is_conflict(grafana: GrafanaDouble) -> None:
    grafana.inject(status=409, times=1, path_prefix="/api/v1/provisioning")
    with pytest.raises(Conflict, match="409"):
        connect(grafana).list_alert_rules()


def test_existing_folder_on_create_is_fine(grafana: GrafanaDouble) -> None:
    grafana.add_folder(team_folder_uid(), "Payments")
    client = connect(grafana)
    assert client.create_folder(team_folder_uid(), "Payments") is False


def test_412_when_dashboard_was_edited_since_plan(grafana: GrafanaDouble) -> None:
    assert run(grafana, rendered(["a"])).ok
    changed = rendered(["a"])
    changed.dashboards[0] = dashboard("a", title="a / RED v2")
    client = connect(grafana)
    plan = build_plan(changed, client)
    # Someone saves the dashboard in the UI after the plan was made.
    live = grafana.dashboards["a-red"]["dashboard"]
    client.save_dashboard({**live, "title": "edited in UI"}, service_folder_uid("a"), "ui")

    result = apply_plan(plan, client, message="m")

    assert len(result.failures) == 1
    assert "run plan again" in result.failures[0].error
    assert grafana.dashboards["a-red"]["dashboard"]["title"] == "edited in UI"
    with pytest.raises(VersionMismatch):
        client.save_dashboard({**live, "version": 1}, service_folder_uid("a"), "m", overwrite=False)


def test_unmanaged_dashboard_with_same_uid_is_not_taken_over(grafana: GrafanaDouble) -> None:
    grafana.add_folder(service_folder_uid("a"), "a")
    connect(grafana).save_dashboard(
        {"uid": "a-red", "title": "Someone else's"}, service_folder_uid("a"), "by hand"
    )
    result = run(grafana, rendered(["a"]))
    assert [o.change.key for o in result.failures] == ["a-red"]
    assert "not managed by platform-obs" in result.failures[0].error
    assert grafana.dashboards["a-red"]["dashboard"]["title"] == "Someone else's"


def test_allow_ui_edits_disables_provenance(grafana: GrafanaDouble) -> None:
    assert run(grafana, rendered(["a"]), allow_ui_edits=True).ok
    rules = grafana.rule_groups[(service_folder_uid("a"), "a-alerts")]["rules"]
    assert {x["provenance"] for x in rules} == {""}
    puts = [w for w in grafana.writes() if w.method == "PUT"]
    assert all("x-disable-provenance" in w.headers for w in puts)


def test_ci_message_names_commit_and_run() -> None:
    env = {"GITHUB_SHA": "0123456789abcdef", "GITHUB_RUN_ID": "42", "GITHUB_REPOSITORY": "o/r"}
    text = ci_message(env)
    assert "commit 0123456789ab" in text
    assert "run 42" in text
    assert "https://github.com/o/r/actions/runs/42" in text
    assert ci_message({"CI_COMMIT_SHA": "feed", "CI_PIPELINE_ID": "9"}) == (
        "platform-obs apply, commit feed, run 9"
    )
    assert ci_message(env, explicit="hotfix") == "hotfix"


def test_service_tag_added_to_dashboards(grafana: GrafanaDouble) -> None:
    r = rendered(["a"])
    r.dashboards[0].model["tags"] = []
    assert run(grafana, r).ok
    tags = grafana.dashboards["a-red"]["dashboard"]["tags"]
    assert MANAGER in tags and f"{SERVICE_TAG_PREFIX}a" in tags


def test_renamed_folder_is_updated_in_place(grafana: GrafanaDouble) -> None:
    from platform_obs.provisioning.model import Folder

    r = rendered(["a"])
    assert run(grafana, r).ok
    r.folders[0] = Folder(team_folder_uid(), "Payments & Billing")
    grafana.reset_requests()
    result = run(grafana, r)
    assert result.counts()["updated"] == 1
    assert grafana.folders[team_folder_uid()]["title"] == "Payments & Billing"
    assert [w.method for w in grafana.writes()] == ["PUT"]


def test_prune_keeps_an_emptied_folder_that_holds_a_hand_made_subfolder(
    grafana: GrafanaDouble,
) -> None:
    """Grafana deletes a folder's subfolders with it: a person's folder inside ours is kept."""
    r = rendered(["a"])
    from platform_obs.provisioning.model import Folder

    r.folders.append(Folder("po-svc-a-legacy", "a legacy", parent_uid=team_folder_uid()))
    r.dashboards.append(
        type(r.dashboards[0])(
            "a", "po-svc-a-legacy", {**r.dashboards[0].model, "uid": "a-legacy", "title": "legacy"}
        )
    )
    assert run(grafana, r).ok
    grafana.add_folder("notes-by-hand", "Notes", parent_uid="po-svc-a-legacy")

    result = run(grafana, rendered(["a"]), prune=True)

    assert result.ok, result.failures
    assert "a-legacy" not in grafana.dashboards  # ours: pruned
    assert {"po-svc-a-legacy", "notes-by-hand"} <= set(grafana.folders)
    assert all(o.change.kind != "folder" for o in result.outcomes if o.status == "deleted")
