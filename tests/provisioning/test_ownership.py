"""Ownership: platform-obs changes only what it can prove it created, never deletes what a person
added, and refuses two configs owning one object. Real CLI and grafana-client, Grafana double
over real HTTP."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from factories import rendered
from grafana_double import GrafanaDouble
from hypothesis import given, settings
from hypothesis import strategies as st
from test_apply import connect, run
from test_cli import EXAMPLE, invoke

from platform_obs.provisioning import ownership
from platform_obs.provisioning.apply import apply_plan
from platform_obs.provisioning.model import Rendered
from platform_obs.provisioning.plan import build_plan

GROUP = ("po-checkout", "checkout")


def config(tmp_path: Path, name: str = "checkout", team: str = "payments", **kw: str) -> Path:
    text = EXAMPLE.read_text()
    text = text.replace("service: checkout ", f"service: {name} ", 1)
    text = text.replace("team: payments ", f"team: {team} ", 1)
    for old, new in kw.items():
        text = text.replace(old, new)
    path = tmp_path / kw.get("file", f"{team}-{name}.yaml")
    path.write_text(text)
    return path


def apply(grafana: GrafanaDouble, *args: str) -> Any:
    return invoke(grafana, "apply", *args, "--no-promtool")


def http(grafana: GrafanaDouble, method: str, path: str, body: Any = None) -> Any:
    """A person using Grafana's HTTP API (what the UI does), not the tool."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(grafana.url + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {grafana.token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def hand_rule(title: str, folder: str = GROUP[0], group: str = GROUP[1]) -> dict[str, Any]:
    return {
        "title": title,
        "folderUID": folder,
        "ruleGroup": group,
        "condition": "A",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": 600, "to": 0},
                "datasourceUid": "prometheus",
                "model": {"refId": "A", "expr": "vector(1)"},
            }
        ],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": "1m",
        "labels": {"owner": "me"},
        "annotations": {"summary": "added by hand"},
    }


def duplicate_of(rule: dict[str, Any], title: str) -> dict[str, Any]:
    """What Grafana's "Duplicate" does: same labels and annotations, new uid and title."""
    copy_ = {k: copy.deepcopy(v) for k, v in rule.items() if k not in ("id", "uid", "updated")}
    copy_["title"] = title
    return copy_


def rule_titles(grafana: GrafanaDouble) -> set[str]:
    return {r["title"] for r in grafana.all_rules()}


def snapshot(grafana: GrafanaDouble) -> str:
    groups = {"/".join(k): v for k, v in grafana.rule_groups.items()}
    return json.dumps([grafana.dashboards, groups, grafana.folders], sort_keys=True)


def strip_markers(grafana: GrafanaDouble) -> None:
    """Make live objects look as the released version (before the marker) left them."""
    for entry in grafana.dashboards.values():
        model = entry["dashboard"]
        tags = [t for t in model.get("tags") or [] if not t.startswith(("po-owner:", "po-hash:"))]
        model["tags"] = tags
        # The released version's content hash: of what it sent, without a marker.
        model["tags"] = [*tags, f"po-hash:{ownership.content_hash(model, entry['folderUid'])}"]
    for rule in grafana.all_rules():
        rule["annotations"].pop(ownership.OWNER_ANNOTATION, None)


# --- finding 1: rules a person added to a managed group ------------------------------------------


def test_rule_added_by_hand_survives_plain_apply_and_the_plan_says_so(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    path = config(tmp_path)
    assert apply(grafana, str(path)).exit_code == 0
    http(grafana, "POST", "/api/v1/provisioning/alert-rules", hand_rule("Queue depth (mine)"))
    mine = next(r for r in grafana.all_rules() if r["title"] == "Queue depth (mine)")

    path.write_text(path.read_text().replace("threshold: 0.02", "threshold: 0.03"))
    planned = invoke(grafana, "plan", str(path), "--no-promtool")
    assert planned.exit_code == 0, planned.output
    assert "keeps 1 rule not managed by platform-obs: 'Queue depth (mine)'" in planned.output

    applied = apply(grafana, str(path))
    assert applied.exit_code == 0, applied.output
    after = next(r for r in grafana.all_rules() if r["title"] == "Queue depth (mine)")
    assert {k: after[k] for k in ("uid", "data", "labels", "annotations", "for")} == {
        k: mine[k] for k in ("uid", "data", "labels", "annotations", "for")
    }
    # ...and our change did land.
    thresholds = [
        r["data"][-1]["model"]
        for r in grafana.rule_groups[GROUP]["rules"]
        if r["uid"].startswith("checkout-high-error-ratio")
    ]
    assert thresholds and "0.03" in json.dumps(thresholds)
    assert invoke(grafana, "plan", str(path), "--detailed-exitcode").exit_code == 0


def test_duplicated_managed_rule_is_not_ours_and_survives_prune(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    path = config(tmp_path)
    assert apply(grafana, str(path)).exit_code == 0
    managed = grafana.rule_groups[GROUP]["rules"][0]
    # Labels (managed_by, service, team) and the ownership annotation are all copied.
    http(grafana, "POST", "/api/v1/provisioning/alert-rules", duplicate_of(managed, "My copy"))

    path.write_text(path.read_text().replace("threshold: 0.02", "threshold: 0.03"))
    result = apply(grafana, str(path), "--prune")
    assert result.exit_code == 0, result.output
    assert "My copy" in rule_titles(grafana)
    assert "keeps 1 rule not managed by platform-obs: 'My copy'" in result.output


def test_prune_of_an_undeclared_group_keeps_rules_added_by_hand(grafana: GrafanaDouble) -> None:
    assert run(grafana, rendered(["a"])).ok
    folder, group = next(iter(grafana.rule_groups))
    http(grafana, "POST", "/api/v1/provisioning/alert-rules", hand_rule("Mine", folder, group))
    no_alerts = rendered(["a"])
    no_alerts.rule_groups.clear()

    client = connect(grafana)
    plan = build_plan(no_alerts, client, prune=True)
    [change] = [c for c in plan.changes if c.kind == "rule_group"]
    assert change.action == "update", change  # not a delete of the whole group
    assert any("keeps 1 rule not managed by platform-obs: 'Mine'" in n for n in change.notes)
    assert apply_plan(plan, client, message="t").ok
    assert rule_titles(grafana) == {"Mine"}


def test_rule_added_between_plan_and_apply_survives(grafana: GrafanaDouble) -> None:
    assert run(grafana, rendered(["a"])).ok
    folder, group = next(iter(grafana.rule_groups))
    client = connect(grafana)
    plan = build_plan(rendered(["a"], thresholds={"a": 0.2}), client)
    assert [c.kind for c in plan.writes] == ["rule_group"]
    http(grafana, "POST", "/api/v1/provisioning/alert-rules", hand_rule("Late", folder, group))

    assert apply_plan(plan, client, message="t").ok
    assert "Late" in rule_titles(grafana)


def test_plan_says_in_words_what_a_group_write_keeps_and_removes(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    path = config(tmp_path)
    assert apply(grafana, str(path)).exit_code == 0
    http(grafana, "POST", "/api/v1/provisioning/alert-rules", hand_rule("Mine"))
    text = path.read_text()
    saturation = text[text.index("  saturation:\n") : text.index("\ncustom_alerts:")]
    path.write_text(text.replace(saturation, "  saturation: false\n"))
    assert "saturation: false" in path.read_text()

    planned = invoke(grafana, "plan", str(path), "--no-promtool", "--output", "json")
    assert planned.exit_code == 0, planned.output
    [group] = [c for c in json.loads(planned.output)["changes"] if c["kind"] == "rule_group"]
    assert group["action"] == "update"
    assert "keeps 1 rule not managed by platform-obs: 'Mine'" in group["notes"]
    assert any(n.startswith("removes rule") for n in group["notes"])
    markdown = invoke(grafana, "plan", str(path), "--no-promtool", "--output", "markdown")
    assert "keeps 1 rule not managed by platform-obs" in markdown.output


def test_rule_elsewhere_with_one_of_our_uids_is_refused_not_moved(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    """Grafana moves a rule whose uid is in the PUT body into that group: never a person's."""
    path = config(tmp_path)
    grafana.add_folder("team-rules", "Team rules")
    theirs = hand_rule("Their error ratio", "team-rules", "by-hand")
    theirs["uid"] = "checkout-high-error-ratio-error-ratio"
    http(grafana, "POST", "/api/v1/provisioning/alert-rules", theirs)
    grafana.reset_requests()

    refused = apply(grafana, str(path))
    assert refused.exit_code == 1
    assert "alert rule checkout-high-error-ratio-error-ratio" in refused.output
    assert grafana.writes() == []
    assert ("team-rules", "by-hand") in grafana.rule_groups

    adopted = apply(grafana, str(path), "--adopt")
    assert adopted.exit_code == 0, adopted.output
    assert "Their error ratio" not in rule_titles(grafana)


# --- finding 2: dashboards carrying the tags are not ours ----------------------------------------


@pytest.mark.parametrize("where", ["general", "team-folder", "service-folder"])
def test_hand_made_tagged_dashboard_survives_prune_and_is_never_updated(
    grafana: GrafanaDouble, tmp_path: Path, where: str
) -> None:
    path = config(tmp_path)
    assert apply(grafana, str(path)).exit_code == 0
    grafana.add_folder("team-folder", "Our own dashboards")
    folder = {"general": "", "team-folder": "team-folder", "service-folder": "po-checkout"}[where]
    # The tags the Backstage selector tells teams to put on their dashboards.
    mine = {"title": "Checkout by hand", "tags": ["platform-obs", "service:checkout", "payments"]}
    saved = http(grafana, "POST", "/api/dashboards/db", {"dashboard": mine, "folderUid": folder})
    versions = grafana.dashboard_versions(saved["uid"])

    result = apply(grafana, str(path), "--prune")
    assert result.exit_code == 0, result.output
    assert saved["uid"] in grafana.dashboards
    assert grafana.dashboard_versions(saved["uid"]) == versions
    assert "kept, not deleted" in result.output


@pytest.mark.parametrize("folder", ["", "po-checkout"])
def test_copied_marker_is_not_proof(grafana: GrafanaDouble, tmp_path: Path, folder: str) -> None:
    """A "Save as" copy keeps every tag (platform-obs, service:, po-hash:, po-owner:)."""
    path = config(tmp_path)
    assert apply(grafana, str(path)).exit_code == 0
    original = grafana.dashboards["checkout-overview"]["dashboard"]
    copy_ = {k: v for k, v in copy.deepcopy(original).items() if k not in ("id", "uid", "version")}
    copy_["title"] = "Checkout overview (my copy)"
    assert any(t.startswith("po-owner:") for t in copy_["tags"])
    saved = http(grafana, "POST", "/api/dashboards/db", {"dashboard": copy_, "folderUid": folder})

    result = apply(grafana, str(path), "--prune")
    assert result.exit_code == 0, result.output
    assert saved["uid"] in grafana.dashboards
    assert "does not match its uid" in result.output


def test_unproven_dashboard_at_a_declared_uid_is_refused_then_adopted(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    path = config(tmp_path)
    grafana.add_folder("po-team-payments", "payments")
    grafana.add_folder("po-checkout", "checkout", "po-team-payments")
    squatter = {
        "uid": "checkout-overview",
        "title": "Someone's checkout board",
        "tags": ["platform-obs", "service:checkout"],
    }
    http(grafana, "POST", "/api/dashboards/db", {"dashboard": squatter, "folderUid": ""})
    grafana.reset_requests()

    refused = apply(grafana, str(path))
    assert refused.exit_code == 1
    assert "dashboard checkout-overview would be overwritten" in refused.output
    assert "--adopt" in refused.output
    assert grafana.writes() == []
    assert grafana.dashboards["checkout-overview"]["dashboard"]["title"] == squatter["title"]

    adopted = apply(grafana, str(path), "--adopt")
    assert adopted.exit_code == 0, adopted.output
    tags = grafana.dashboards["checkout-overview"]["dashboard"]["tags"]
    assert any(t.startswith("po-owner:") for t in tags)
    assert invoke(grafana, "plan", str(path), "--detailed-exitcode").exit_code == 0


def test_objects_of_the_released_version_are_adopted_and_pruned(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    path = config(tmp_path)
    assert apply(grafana, str(path)).exit_code == 0
    strip_markers(grafana)

    planned = invoke(grafana, "plan", str(path), "--no-promtool")
    assert planned.exit_code == 0, planned.output
    assert "created by an earlier platform-obs release" in planned.output
    assert "refused" not in planned.output
    assert apply(grafana, str(path)).exit_code == 0
    assert all(
        any(t.startswith("po-owner:") for t in e["dashboard"]["tags"])
        for e in grafana.dashboards.values()
    )
    assert all(ownership.OWNER_ANNOTATION in r["annotations"] for r in grafana.all_rules())
    assert invoke(grafana, "plan", str(path), "--detailed-exitcode").exit_code == 0

    # Legacy objects no longer declared are still recognised as ours by prune.
    strip_markers(grafana)
    path.write_text(
        path.read_text().replace("# dashboards: [overview, runtime", "dashboards: [overview]  #")
    )
    pruned = apply(grafana, str(path), "--prune")
    assert pruned.exit_code == 0, pruned.output
    assert sorted(grafana.dashboards) == ["checkout-overview"]


def test_legacy_dashboard_edited_since_is_not_deleted_by_prune(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    path = config(tmp_path)
    assert apply(grafana, str(path)).exit_code == 0
    strip_markers(grafana)
    grafana.dashboards["checkout-logs"]["dashboard"]["description"] = "my notes, edited in the UI"
    path.write_text(
        path.read_text().replace("# dashboards: [overview, runtime", "dashboards: [overview]  #")
    )
    pruned = apply(grafana, str(path), "--prune")
    assert pruned.exit_code == 0, pruned.output
    assert sorted(grafana.dashboards) == ["checkout-logs", "checkout-overview"]
    assert "changed since" in pruned.output


def test_rule_with_copied_labels_and_a_lookalike_uid_is_kept(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    """Created through the API with a uid that starts like ours and every label copied."""
    path = config(tmp_path)
    assert apply(grafana, str(path)).exit_code == 0
    managed = grafana.rule_groups[GROUP]["rules"][0]
    lookalike = duplicate_of(managed, "Lookalike")
    lookalike["uid"] = "checkout-mine"
    del lookalike["annotations"][ownership.OWNER_ANNOTATION]
    http(grafana, "POST", "/api/v1/provisioning/alert-rules", lookalike)

    path.write_text(path.read_text().replace("threshold: 0.02", "threshold: 0.03"))
    result = apply(grafana, str(path), "--prune")
    assert result.exit_code == 0, result.output
    assert "Lookalike" in rule_titles(grafana)


def test_folder_emptied_by_prune_is_kept_when_a_dashboard_appears_before_the_delete(
    grafana: GrafanaDouble,
) -> None:
    assert run(grafana, rendered(["a", "b"])).ok
    client = connect(grafana)
    # Service b is still in scope but declares nothing: prune deletes its objects and folder.
    only_b_gone = rendered(["a", "b"])
    only_b_gone.dashboards = [d for d in only_b_gone.dashboards if d.service != "b"]
    only_b_gone.rule_groups = [g for g in only_b_gone.rule_groups if g.service != "b"]
    only_b_gone.folders = [f for f in only_b_gone.folders if not f.uid.endswith("-b")]
    plan = build_plan(only_b_gone, client, prune=True)
    [folder_delete] = [c for c in plan.deletes if c.kind == "folder"]
    mine = {"title": "Put here by a person", "tags": []}
    http(grafana, "POST", "/api/dashboards/db", {"dashboard": mine, "folderUid": folder_delete.key})

    result = apply_plan(plan, client, message="t")
    assert folder_delete.key in grafana.folders
    assert any(e["dashboard"]["title"] == mine["title"] for e in grafana.dashboards.values())
    [failed] = result.failures
    assert "not deleted" in failed.error


def test_adopt_takes_over_an_untagged_dashboard_at_a_declared_uid(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    path = config(tmp_path)
    grafana.add_folder("po-team-payments", "payments")
    grafana.add_folder("po-checkout", "checkout", "po-team-payments")
    squatter = {"uid": "checkout-overview", "title": "Someone's board", "tags": []}
    http(grafana, "POST", "/api/dashboards/db", {"dashboard": squatter, "folderUid": ""})

    refused = apply(grafana, str(path))
    assert refused.exit_code == 4
    assert "--adopt" in refused.output
    assert grafana.dashboards["checkout-overview"]["dashboard"]["title"] == squatter["title"]
    adopted = apply(grafana, str(path), "--adopt")
    assert adopted.exit_code == 0, adopted.output
    assert grafana.dashboards["checkout-overview"]["dashboard"]["title"] != squatter["title"]


# --- finding 3: two configs, one object ----------------------------------------------------------


def test_service_named_like_a_team_folder_gets_its_own_folder(
    grafana: GrafanaDouble, tmp_path: Path
) -> None:
    payments = config(tmp_path, "checkout", "payments")
    infra = config(tmp_path, "team-payments", "infra")
    assert invoke(None, "validate", str(payments), str(infra), "--no-promtool").exit_code == 0
    assert apply(grafana, str(payments)).exit_code == 0
    result = apply(grafana, str(infra))
    assert result.exit_code == 0, result.output
    team_folder = grafana.folders["po-team-payments"]
    assert (team_folder["title"], team_folder["parentUid"]) == ("payments", None)
    [svc] = [f for f in grafana.folders.values() if f["title"] == "team-payments"]
    assert svc["uid"] != "po-team-payments"
    assert grafana.folders[svc["parentUid"]]["title"] == "infra"


@pytest.mark.parametrize(
    ("a", "b"),
    [("pay.ments", "pay-ments"), ("pay_ments", "pay-ments"), ("a.b", "a-b")],
)
def test_similar_team_names_get_distinct_folders(
    grafana: GrafanaDouble, tmp_path: Path, a: str, b: str
) -> None:
    first = config(tmp_path, "checkout", a)
    second = config(tmp_path, "basket", b)
    result = apply(grafana, str(first), str(second))
    assert result.exit_code == 0, result.output
    roots = {f["title"]: uid for uid, f in grafana.folders.items() if not f["parentUid"]}
    assert set(roots) == {a, b}
    assert roots[a] != roots[b]


def test_same_service_in_two_files_names_both_files_and_lines(tmp_path: Path) -> None:
    first = config(tmp_path, "checkout", "payments", file="payments.yaml")
    second = config(tmp_path, "checkout", "infra", file="infra.yaml")
    result = invoke(None, "validate", str(first), str(second), "--no-promtool")
    assert result.exit_code == 1
    line = 1 + EXAMPLE.read_text().splitlines().index(
        next(x for x in EXAMPLE.read_text().splitlines() if x.startswith("service:"))
    )
    assert f"infra.yaml:{line}" in result.output
    assert f"payments.yaml:{line}" in result.output


@pytest.mark.parametrize(("a", "b"), [("checkout.api", "checkout-api"), ("a.b-c", "a-b.c")])
def test_dashboard_uid_collision_names_both_files(tmp_path: Path, a: str, b: str) -> None:
    first = config(tmp_path, a, "payments", file="first.yaml")
    second = config(tmp_path, b, "infra", file="second.yaml")
    # The packaged policy forbids dots in service names; a platform may allow them.
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: platform-obs/v1\nkind: Policy\nrules: []\n")
    args = ("--no-promtool", "--policy", str(policy))
    result = invoke(None, "validate", str(first), str(second), *args)
    assert result.exit_code == 1, result.output
    files = r"(first|second)\.yaml"
    found = re.search(
        rf"{files}:\d+: service: dashboard '[^']+' of service .*"
        rf"declared in \S*{files}:\d+",
        result.output,
    )
    assert found and found.group(1) != found.group(2), result.output


@pytest.mark.parametrize("legacy", [False, True], ids=["marked", "released-version"])
def test_same_service_name_of_another_team_is_refused_at_plan(
    grafana: GrafanaDouble, tmp_path: Path, legacy: bool
) -> None:
    theirs = config(tmp_path, "checkout", "payments", file="theirs.yaml")
    assert apply(grafana, str(theirs)).exit_code == 0
    if legacy:
        strip_markers(grafana)
    before = snapshot(grafana)
    ours = config(tmp_path, "checkout", "infra", file="ours.yaml")
    grafana.reset_requests()

    planned = invoke(grafana, "plan", str(ours), "--no-promtool")
    assert planned.exit_code == 1
    assert "team 'payments'" in planned.output or "another team" in planned.output
    applied = apply(grafana, str(ours))
    assert applied.exit_code == 1
    assert "nothing was written" in applied.output
    assert grafana.writes() == []
    after = snapshot(grafana)
    assert after == before


def test_folder_uid_collision_is_detected_naming_both_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should two names ever derive one folder uid (the released derivation here), validate says
    so, naming both files."""
    from platform_obs.provisioning.model import stable_uid

    monkeypatch.setattr(ownership, "service_folder_uid", lambda s: stable_uid("po", s))
    payments = config(tmp_path, "checkout", "payments", file="payments.yaml")
    infra = config(tmp_path, "team-payments", "infra", file="infra.yaml")
    result = invoke(None, "validate", str(payments), str(infra), "--no-promtool")
    assert result.exit_code == 1
    assert "folder 'po-team-payments'" in result.output
    assert re.search(r"infra\.yaml:\d+: service:", result.output)
    assert re.search(r"declared in \S*payments\.yaml:\d+", result.output)


def test_team_rename_needs_adopt_once(grafana: GrafanaDouble, tmp_path: Path) -> None:
    path = config(tmp_path, "checkout", "payments")
    assert apply(grafana, str(path)).exit_code == 0
    path.write_text(path.read_text().replace("team: payments ", "team: payments-core ", 1))

    refused = invoke(grafana, "plan", str(path), "--no-promtool")
    assert refused.exit_code == 1
    assert "pass --adopt" in refused.output
    adopted = apply(grafana, str(path), "--adopt")
    assert adopted.exit_code == 0, adopted.output
    assert invoke(grafana, "plan", str(path), "--detailed-exitcode").exit_code == 0
    new_owner = ownership.Owner("payments-core", "checkout")
    assert all(ownership.rule_verdict(r, new_owner).status == "ours" for r in grafana.all_rules())


# --- markers and uids, directly ------------------------------------------------------------------


def test_markers_bind_uid_and_owner() -> None:
    owner = ownership.Owner("payments", "checkout")
    hit = {"uid": "checkout-overview", "folderUid": "po-checkout"}
    tag = ownership.dashboard_marker("checkout-overview", owner)
    assert ownership.dashboard_verdict({**hit, "tags": [tag]}, owner).status == "ours"
    assert ownership.dashboard_verdict({**hit, "uid": "x", "tags": [tag]}, owner).mine is False
    other = ownership.Owner("infra", "checkout")
    verdict = ownership.dashboard_verdict(
        {**hit, "tags": [tag, "service:checkout", "payments"]}, other
    )
    assert (verdict.status, verdict.detail) == ("other", str(owner))
    rule = ownership.stamp_rule({"uid": "checkout-x", "folderUID": "po-checkout"}, owner)
    assert ownership.rule_verdict(rule, owner).status == "ours"
    assert ownership.rule_verdict(rule, other).status == "other"
    assert ownership.rule_verdict({**rule, "uid": "abc123"}, owner).status == "foreign"


def test_service_folder_inside_another_teams_folder_is_theirs() -> None:
    """Where Grafana reports a folder's parent (search hits with folderUid)."""
    folders = {"po-team-payments": {"title": "payments"}}
    live = {"uid": "po-checkout", "folderUid": "po-team-payments"}
    verdict = ownership.folder_verdict("po-checkout", "po-team-infra", live, folders)
    assert (verdict.status, verdict.detail) == (
        "other",
        "a service of team 'payments' (it is inside that team's folder)",
    )
    moved_by_hand = {"uid": "po-checkout", "folderUid": "somewhere"}
    assert ownership.folder_verdict("po-checkout", "po-team-infra", moved_by_hand, folders).mine


def test_folder_uids_are_injective_and_keep_released_uids() -> None:
    names = ["payments", "pay.ments", "pay-ments", "pay_ments", "team-payments", "svc-x", "x"]
    uids = [ownership.team_folder_uid(n) for n in names]
    uids += [ownership.service_folder_uid(n) for n in names]
    assert len(set(uids)) == len(uids)
    # Names the released version handled without collision keep their uids (no migration).
    assert ownership.team_folder_uid("payments") == "po-team-payments"
    assert ownership.service_folder_uid("checkout") == "po-checkout"
    long = "a" * 63
    assert len(ownership.service_folder_uid(long)) <= 40
    assert ownership.service_folder_uid(long) != ownership.service_folder_uid(long[:-1] + "b")


def test_plan_for_a_rendered_without_teams_still_works(grafana: GrafanaDouble) -> None:
    r: Rendered = rendered(["a"])
    assert r.teams == {}
    assert run(grafana, r).ok
    assert not build_plan(rendered(["a"]), connect(grafana)).has_changes


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["uid", "tags", "folderUid", "folderUID", "labels", "annotations"]), _json
    )
)
def test_any_live_shape_is_classified_never_proven_by_accident(live: dict[str, Any]) -> None:
    """Whatever Grafana (or a person) stored, classification never raises and never finds proof
    in an object that does not carry this owner's marker for its own uid."""
    owner = ownership.Owner("payments", "checkout")
    assert ownership.dashboard_verdict(live, owner).status != "ours"
    assert ownership.rule_verdict(live, owner).status != "ours"
    merged = ownership.merge_group([], [live], owner)
    assert not merged.removed


def _hash_as_earlier_releases(model: dict[str, Any], folder_uid: str) -> str:
    """The po-hash definition: sha256 of json.dumps of the dashboard as sent, keys sorted."""
    body = {k: v for k, v in model.items() if k not in ("id", "version")}
    body["tags"] = [t for t in model.get("tags") or [] if not str(t).startswith("po-hash:")]
    text = json.dumps(
        {"dashboard": body, "folderUid": folder_uid},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def test_content_hash_is_the_one_earlier_releases_wrote(tmp_path: Path) -> None:
    """The hash is computed through a faster JSON encoder; it must stay byte for byte the one
    already stored in Grafana's tags, or every dashboard would show as changed after an
    upgrade."""
    from platform_obs.provisioning.pipeline import build

    paths = [config(tmp_path, f"svc{i}", team=f"team{i % 3}") for i in range(6)]
    fleet = build(paths, run_promtool=False)
    assert len(fleet.dashboards) >= 6
    for d in fleet.dashboards:
        assert ownership.content_hash(d.model, d.folder_uid) == _hash_as_earlier_releases(
            d.model, d.folder_uid
        )
    # Values where the fast encoder writes other bytes or refuses: the slow path takes them.
    odd: list[Any] = [1e-05, 1.5e-07, 0.0001, 1e16, 1e22, -0.0, 2**70, "é \u2028 \x00 \x7f 😀"]
    odd += [{"b": 1, "a": [1, 2.5, None, True]}, {"é": 1, "e": 2, "\uffff": 3, "😀": 4}]
    for value in odd:
        model = {"uid": "x", "title": "t", "tags": [], "panels": [{"value": value}]}
        assert ownership.content_hash(model, "f") == _hash_as_earlier_releases(model, "f")
        shown = json.dumps(model, sort_keys=True, indent=2, ensure_ascii=False)
        assert ownership.json_bytes(model, indent=True) == shown.encode()
    with pytest.raises(TypeError):  # as before: keys of mixed types cannot be sorted
        ownership.content_hash({"panels": {1: "a", "b": 2}}, "f")


@given(
    st.recursive(
        # No NaN or Infinity: JSON has none, so Grafana never stored a dashboard with them.
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.floats(min_value=-1e-4, max_value=1e-4)  # spelled differently by orjson
        | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )
)
@settings(max_examples=300, deadline=None)
def test_content_hash_and_shown_json_match_the_json_module_on_any_json(value: Any) -> None:
    model = {"uid": "x", "title": "t", "tags": ["a"], "panels": [value]}
    assert ownership.content_hash(model, "f") == _hash_as_earlier_releases(model, "f")
    shown = json.dumps(model, sort_keys=True, indent=2, ensure_ascii=False)
    assert ownership.json_bytes(model, indent=True) == shown.encode()


def test_pruning_many_services_deletes_exactly_the_folders_it_empties(
    grafana: GrafanaDouble,
) -> None:
    """Each emptied folder is judged on its own, with the checks made once for all of them."""
    from factories import rule_group, team_folder_uid

    from platform_obs.provisioning.model import Folder

    names = ["a", "b", "c", "d", "e", "f"]
    r = rendered(names)
    for name in names:
        folder = f"po-svc-{name}-legacy"
        r.folders.append(Folder(folder, f"{name} legacy", parent_uid=team_folder_uid()))
        rules = tuple(
            {**x, "uid": x["uid"] + "-l", "title": x["title"] + " legacy"}
            for x in rule_group(name).rules
        )
        r.rule_groups.append(type(r.rule_groups[0])(name, folder, "legacy", 60, rules))
    assert run(grafana, r).ok
    grafana.add_folder("hand-made-child", "child", parent_uid="po-svc-b-legacy")
    http(
        grafana,
        "POST",
        "/api/v1/provisioning/alert-rules",
        hand_rule("Mine", "po-svc-c-legacy", "g"),
    )

    plan = build_plan(rendered(names), connect(grafana), prune=True)

    deleted = {c.key for c in plan.deletes if c.kind == "folder"}
    assert deleted == {f"po-svc-{n}-legacy" for n in ("a", "d", "e", "f")}
    groups = {c.key for c in plan.deletes if c.kind == "rule_group"}
    assert groups == {f"po-svc-{n}-legacy/legacy" for n in names}
