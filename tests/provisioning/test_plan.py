"""plan: normalisation of server-side fields, diffs and report formats."""

from __future__ import annotations

import copy
import json

import pytest
from factories import dashboard, rendered, rule, service_folder_uid
from grafana_double import GrafanaDouble
from hypothesis import given
from hypothesis import strategies as st
from test_apply import connect, run

from platform_obs.provisioning import ownership
from platform_obs.provisioning.grafana import GrafanaError
from platform_obs.provisioning.plan import (
    HASH_TAG_PREFIX,
    build_plan,
    desired_dashboard,
    duration_seconds,
    normalise_rule,
)
from platform_obs.provisioning.plan_view import render_json, render_markdown, render_text


def test_server_fields_never_show_as_changes(grafana: GrafanaDouble) -> None:
    r = rendered(["a", "b"])
    assert run(grafana, r).ok
    # deep: fetch every dashboard and compare full contents, not just the hash tag.
    plan = build_plan(r, connect(grafana), deep=True)
    assert not plan.has_changes, render_text(plan)
    assert plan.counts()["unchanged"] == len(r.folders) + 4


def test_live_rule_normalises_to_the_rendered_rule(grafana: GrafanaDouble) -> None:
    r = rendered(["a"])
    assert run(grafana, r).ok
    live = grafana.rule_groups[(service_folder_uid("a"), "a-alerts")]["rules"][0]
    assert {"id", "orgID", "updated", "provenance"} <= set(live)
    # What was sent: the rendered rule plus its ownership marker.
    sent = ownership.stamp_rule(rule("a", "high-error-rate"), ownership.Owner("", "a"))
    assert normalise_rule(live) == normalise_rule(sent)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300), ("5m0s", 300), ("1h30m", 5400), ("0s", 0), (90, 90), ("", 0), ("2x", None)],
)
def test_duration_seconds(text: object, seconds: float | None) -> None:
    assert duration_seconds(text) == seconds


def test_for_duration_spelling_is_not_a_change() -> None:
    assert normalise_rule({**rule("a", "x"), "for": "5m0s"}) == normalise_rule(rule("a", "x"))
    assert normalise_rule({**rule("a", "x"), "for": "0s"}) == normalise_rule(
        {k: v for k, v in rule("a", "x").items() if k != "for"}
    )


@given(st.lists(st.text(min_size=1, max_size=8), max_size=5))
def test_hash_tag_is_deterministic_and_ignores_old_hash_tags(extra_tags: list[str]) -> None:
    d = dashboard("a")
    d.model["tags"] = [*d.model["tags"], *extra_tags]
    first = desired_dashboard(d)
    d.model["tags"] = [*first["tags"], f"{HASH_TAG_PREFIX}stale"]
    second = desired_dashboard(d)
    assert first == second
    assert sum(t.startswith(HASH_TAG_PREFIX) for t in first["tags"]) == 1


def test_update_shows_a_readable_diff(grafana: GrafanaDouble) -> None:
    assert run(grafana, rendered(["a", "b"])).ok
    changed = rendered(["a", "b"], thresholds={"a": 0.2})
    changed.dashboards[1] = dashboard("b", title="b / RED (new)")

    plan = build_plan(changed, connect(grafana))

    updates = {c.key: c for c in plan.by_action("update")}
    assert set(updates) == {"b-red", f"{service_folder_uid('a')}/a-alerts"}
    dash_diff = updates["b-red"].diff
    assert '-    "title": "b / RED",' in dash_diff
    assert '+    "title": "b / RED (new)",' in dash_diff
    assert "po-hash" not in dash_diff  # our bookkeeping tag is not noise in the diff
    rule_diff = updates[f"{service_folder_uid('a')}/a-alerts"].diff
    assert "-" + " " * 20 + "0.05" in rule_diff
    assert "+" + " " * 20 + "0.2" in rule_diff
    assert "updated" not in rule_diff and '"id"' not in rule_diff

    text = render_text(plan)
    assert '  ~ dashboard b-red "b / RED (new)"' in text
    assert '~ title: "b / RED" → "b / RED (new)"' in text
    assert "~ threshold: 0.05 → 0.2" in text
    assert '"relativeTimeRange"' not in text and "rendered/" not in text  # JSON only on request
    assert "rendered/rule_group" in render_text(plan, show_json=True)
    assert "Plan: 0 to create, 2 to update, 0 to delete" in text


def test_ui_edit_keeping_tags_is_found_by_deep_plan(grafana: GrafanaDouble) -> None:
    r = rendered(["a"])
    assert run(grafana, r).ok
    client = connect(grafana)
    live = grafana.dashboards["a-red"]["dashboard"]
    client.save_dashboard({**live, "panels": []}, service_folder_uid("a"), "ui", overwrite=True)

    assert not build_plan(r, client).has_changes  # documented trade-off of the fast path
    deep = build_plan(r, client, deep=True)
    assert [c.key for c in deep.by_action("update")] == ["a-red"]


def test_json_output(grafana: GrafanaDouble) -> None:
    plan = build_plan(rendered(["a"]), connect(grafana))
    doc = json.loads(render_json(plan))
    assert doc["has_changes"] is True
    assert doc["summary"] == {
        "create": 4,
        "update": 0,
        "delete": 0,
        "unchanged": 0,
        "skip": 0,
        "refuse": 0,
    }
    kinds = [c["kind"] for c in doc["changes"]]
    assert kinds == ["folder", "folder", "dashboard", "rule_group"]
    assert all("payload" not in c for c in doc["changes"])
    assert doc["changes"][2] == {
        "action": "create",
        "kind": "dashboard",
        "key": "a-red",
        "service": "a",
        "title": "a / RED",
    }


def test_markdown_output(grafana: GrafanaDouble) -> None:
    assert run(grafana, rendered(["a"])).ok
    plan = build_plan(rendered(["a"], thresholds={"a": 0.3}), connect(grafana))
    md = render_markdown(plan)
    assert "**Plan: 0 to create, 1 to update, 0 to delete, 3 unchanged.**" in md
    assert "| a | 0 | 1 | 0 | ~ rule group (1 alert(s) changed) |" in md
    assert "```diff" in md and "<details><summary><b>a</b>: 1 to update</summary>" in md
    assert "~         threshold: 0.05 → 0.3" in md


def test_no_changes_message(grafana: GrafanaDouble) -> None:
    r = rendered(["a"])
    assert run(grafana, r).ok
    text = render_text(build_plan(r, connect(grafana)))
    assert "No changes." in text
    assert "Plan: 0 to create, 0 to update, 0 to delete, 4 unchanged." in text


def test_moved_dashboard_is_an_update(grafana: GrafanaDouble) -> None:
    r = rendered(["a", "b"])
    assert run(grafana, r).ok
    r.dashboards[0] = type(r.dashboards[0])("a", service_folder_uid("b"), r.dashboards[0].model)
    plan = build_plan(r, connect(grafana))
    assert [c.key for c in plan.by_action("update")] == ["a-red"]
    assert '+  "folderUid": "po-svc-b"' in plan.by_action("update")[0].diff


def test_file_provisioned_rule_group_is_skipped(grafana: GrafanaDouble) -> None:
    grafana.add_folder(service_folder_uid("a"), "a")
    body = rendered(["a"]).rule_groups[0].api_body()
    grafana.seed_file_provisioned_rule_group(service_folder_uid("a"), body)
    plan = build_plan(rendered(["a"]), connect(grafana))
    skipped = plan.by_action("skip")
    assert [c.kind for c in skipped] == ["rule_group"]
    assert "file-provisioned" in skipped[0].reason


def test_missing_hash_tag_is_refreshed_with_a_visible_diff(grafana: GrafanaDouble) -> None:
    r = rendered(["a"])
    assert run(grafana, r).ok
    client = connect(grafana)
    live = grafana.dashboards["a-red"]["dashboard"]
    tags = [t for t in live["tags"] if not t.startswith(HASH_TAG_PREFIX)]
    client.save_dashboard({**live, "tags": tags}, service_folder_uid("a"), "ui", overwrite=True)

    plan = build_plan(r, client)
    [update] = plan.by_action("update")
    assert HASH_TAG_PREFIX in update.diff
    assert run(grafana, r).ok
    assert not build_plan(r, client).has_changes


def test_planning_and_showing_the_plan_leave_rendered_objects_untouched(
    grafana: GrafanaDouble,
) -> None:
    """Planning copies only the top level of what it compares, and the raw diff is made when
    first shown: neither may change what apply sends, and showing the plan twice reads the same."""
    assert run(grafana, rendered(["a", "b"])).ok
    changed = rendered(["a", "b"], thresholds={"a": 0.2})
    changed.dashboards[1] = dashboard("b", title="b / RED (new)")
    snapshot = copy.deepcopy(changed)

    plan = build_plan(changed, connect(grafana), deep=True)
    first = [render_json(plan), render_text(plan, show_json=True), render_markdown(plan)]
    second = [render_json(plan), render_text(plan, show_json=True), render_markdown(plan)]

    assert changed == snapshot
    assert first == second
    assert '+    "title": "b / RED (new)",' in first[1]
    assert json.loads(first[0])["summary"]["update"] == 2
    again = build_plan(changed, connect(grafana), deep=True)
    assert render_json(again) == first[0]


def test_reads_cost_the_same_requests_and_report_the_first_failure(
    grafana: GrafanaDouble,
) -> None:
    """The rule list is read beside the dashboard search; when both fail, the error reported
    is still the one of the earlier read (the rule list), as when they ran one after another."""
    r = rendered(["a", "b"])
    assert run(grafana, r).ok
    grafana.reset_requests()
    assert not build_plan(r, connect(grafana)).has_changes
    paths = sorted(q.path for q in grafana.requests)
    assert paths == [
        "/api/search",
        "/api/search",
        "/api/v1/provisioning/alert-rules",
        "/api/v1/provisioning/alert-rules/export",
    ]

    grafana.inject(delay=0.01, times=1, path_prefix="/api/search")  # the folder list passes
    grafana.inject(status=500, times=1, path_prefix="/api/search")  # the dashboard search fails
    rules = "/api/v1/provisioning/alert-rules"
    grafana.inject(status=500, delay=0.3, times=1, path_prefix=rules)  # fails, later
    with pytest.raises(GrafanaError, match=r"^list alert rules: .*HTTP 500"):
        build_plan(r, connect(grafana))
