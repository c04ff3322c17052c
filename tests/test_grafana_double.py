"""The Grafana double, driven over real HTTP by the real grafana-client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import niquests
import pytest
from grafana_client import GrafanaApi, TokenAuth
from grafana_client.client import (
    GrafanaBadInputError,
    GrafanaClientError,
    GrafanaServerError,
    GrafanaTimeoutError,
    GrafanaUnauthorizedError,
)
from grafana_double import GrafanaDouble, format_duration_ms, parse_duration_ms
from hypothesis import given
from hypothesis import strategies as st

VIEWER = "viewer-token"


@pytest.fixture
def double() -> Iterator[GrafanaDouble]:
    with GrafanaDouble(viewer_token=VIEWER) as server:
        yield server


def client(double: GrafanaDouble, token: str | None = None, timeout: float = 5.0) -> GrafanaApi:
    return GrafanaApi.from_url(
        double.url, credential=TokenAuth(token or double.token), timeout=timeout
    )


@pytest.fixture
def api(double: GrafanaDouble) -> GrafanaApi:
    return client(double)


def rule(uid: str, title: str, /, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "uid": uid,
        "title": title,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": 600, "to": 0},
                "datasourceUid": "prom",
                "model": {"expr": "up == 0", "refId": "A"},
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {"type": "threshold", "expression": "A", "refId": "C"},
            },
        ],
        "noDataState": "NoData",
        "execErrState": "Error",
        "for": "300s",
        "labels": {"severity": "page"},
        "annotations": {"summary": "down"},
    }
    body.update(overrides)
    return body


def group(name: str, folder: str, rules: list[dict[str, Any]], interval: int = 60) -> dict:
    return {"title": name, "folderUid": folder, "interval": interval, "rules": rules}


# ---------------------------------------------------------------------------- basics


def test_version_and_health_need_no_token(double: GrafanaDouble) -> None:
    anonymous = client(double, token="wrong")
    assert anonymous.version == "11.6.0"
    assert anonymous.client.GET("/health")["database"] == "ok"


def test_wrong_token_is_unauthorized(double: GrafanaDouble) -> None:
    with pytest.raises(GrafanaUnauthorizedError) as err:
        client(double, token="wrong").folder.get_all_folders()
    assert err.value.response == {"message": "Unauthorized"}


def test_viewer_can_read_but_not_write(double: GrafanaDouble, api: GrafanaApi) -> None:
    api.folder.create_folder("Team", uid="team")
    viewer = client(double, token=VIEWER)
    assert viewer.folder.get_folder("team")["title"] == "Team"
    with pytest.raises(GrafanaClientError) as err:
        viewer.folder.create_folder("Other", uid="other")
    assert err.value.status_code == 403
    assert "other" not in double.folders


def test_unknown_route_is_404_and_malformed_json_is_400(api: GrafanaApi) -> None:
    with pytest.raises(GrafanaClientError) as err:
        api.client.GET("/no/such/thing")
    assert err.value.status_code == 404
    with pytest.raises(GrafanaBadInputError):
        api.client.POST("/folders", data=b"{not json", headers={"Content-Type": "application/json"})


def test_requests_are_recorded_and_writes_only_count_accepted(
    double: GrafanaDouble, api: GrafanaApi
) -> None:
    api.folder.create_folder("Team", uid="team")
    with pytest.raises(GrafanaClientError):
        api.folder.create_folder("Team", uid="team")
    api.search.search_dashboards(tag=["a", "b"])
    assert [(r.method, r.path, r.status) for r in double.requests] == [
        ("POST", "/api/folders", 200),
        ("POST", "/api/folders", 409),
        ("GET", "/api/search", 200),
    ]
    assert double.requests[2].query == {"tag": ["a", "b"]}
    assert [w.body for w in double.writes()] == [{"title": "Team", "uid": "team"}]
    double.reset_requests()
    assert double.requests == []


# ---------------------------------------------------------------------------- folders


def test_folder_create_twice_is_409(api: GrafanaApi) -> None:
    created = api.folder.create_folder("Payments", uid="payments")
    assert created["uid"] == "payments"
    assert created["version"] == 1
    with pytest.raises(GrafanaClientError) as err:
        api.folder.create_folder("Payments", uid="payments")
    assert err.value.status_code == 409
    assert "already exists" in err.value.response["message"]


@pytest.mark.parametrize("uid", ["has space", "a" * 41, "dots.not.allowed"])
def test_folder_bad_uid_is_400(api: GrafanaApi, uid: str) -> None:
    with pytest.raises(GrafanaBadInputError):
        api.folder.create_folder("X", uid=uid)


def test_folder_missing_title_and_unknown_parent(api: GrafanaApi) -> None:
    with pytest.raises(GrafanaBadInputError):
        api.folder.create_folder("", uid="x")
    with pytest.raises(GrafanaClientError) as err:
        api.folder.create_folder("Child", uid="child", parent_uid="nope")
    assert err.value.status_code == 404


def test_folder_get_missing_is_404_and_nested_listing(api: GrafanaApi) -> None:
    with pytest.raises(GrafanaClientError) as err:
        api.folder.get_folder("missing")
    assert err.value.status_code == 404
    api.folder.create_folder("Root", uid="root")
    api.folder.create_folder("Child", uid="child", parent_uid="root")
    assert [f["uid"] for f in api.folder.get_all_folders()] == ["root"]
    assert [f["uid"] for f in api.folder.get_all_folders(parent_uid="root")] == ["child"]
    assert api.folder.get_folder("child")["parentUid"] == "root"


def test_folder_update_checks_version(api: GrafanaApi) -> None:
    api.folder.create_folder("Old", uid="f")
    with pytest.raises(GrafanaClientError) as err:
        api.folder.update_folder("f", title="New", version=7)
    assert err.value.status_code == 412
    updated = api.folder.update_folder("f", title="New", version=1)
    assert (updated["title"], updated["version"]) == ("New", 2)
    assert api.folder.update_folder("f", title="Newer", overwrite=True)["version"] == 3


def test_folder_delete_refuses_rules_unless_forced(double: GrafanaDouble, api: GrafanaApi) -> None:
    api.folder.create_folder("Svc", uid="svc")
    api.dashboard.update_dashboard({"dashboard": {"title": "D", "uid": "d"}, "folderUid": "svc"})
    api.alertingprovisioning.update_rule_group("svc", "g", group("g", "svc", [rule("r1", "R1")]))
    with pytest.raises(GrafanaBadInputError):
        api.folder.delete_folder("svc")
    assert "svc" in double.folders
    api.folder.delete_folder("svc", force_delete_rules=True)
    assert double.folders == {}
    assert double.dashboards == {}
    assert double.rule_groups == {}


# ---------------------------------------------------------------------------- dashboards


def save(api: GrafanaApi, dashboard: dict, folder: str | None = "svc", **kw: Any) -> dict:
    body: dict[str, Any] = {"dashboard": dashboard, "overwrite": False, **kw}
    if folder is not None:
        body["folderUid"] = folder
    return api.dashboard.update_dashboard(body)


@pytest.fixture
def svc(api: GrafanaApi) -> str:
    api.folder.create_folder("Svc", uid="svc")
    return "svc"


def test_dashboard_versions_bump_and_stale_version_is_412(
    double: GrafanaDouble, api: GrafanaApi, svc: str
) -> None:
    first = save(api, {"uid": "svc-overview", "title": "Overview", "schemaVersion": 41})
    assert first["status"] == "success"
    assert first["version"] == 1
    assert first["url"] == "/d/svc-overview/overview"
    second = save(api, {"uid": "svc-overview", "title": "Overview", "version": 1})
    assert second["version"] == 2
    with pytest.raises(GrafanaClientError) as err:
        save(api, {"uid": "svc-overview", "title": "Overview", "version": 1})
    assert err.value.status_code == 412
    assert err.value.response["status"] == "version-mismatch"
    # Grafana compares exactly: omitting the version is stale as well, unless overwrite.
    with pytest.raises(GrafanaClientError):
        save(api, {"uid": "svc-overview", "title": "Overview"})
    assert save(api, {"uid": "svc-overview", "title": "Overview"}, overwrite=True)["version"] == 3
    assert double.dashboard_versions("svc-overview") == 3


def test_dashboard_stored_as_sent_with_meta(
    double: GrafanaDouble, api: GrafanaApi, svc: str
) -> None:
    model = {"uid": "d1", "title": "Latency", "schemaVersion": 41, "panels": [{"id": 1}]}
    save(api, model, message="first push")
    got = api.dashboard.get_dashboard("d1")
    assert got["dashboard"] == {**model, "id": got["dashboard"]["id"], "version": 1}
    assert got["meta"]["folderUid"] == "svc"
    assert got["meta"]["folderTitle"] == "Svc"
    assert got["meta"]["provisioned"] is False
    assert double.dashboards["d1"]["message"] == "first push"


def test_dashboard_unknown_folder_is_400(api: GrafanaApi) -> None:
    with pytest.raises(GrafanaBadInputError) as err:
        save(api, {"uid": "d", "title": "D"}, folder="nope")
    assert err.value.response["message"] == "folder not found"


@pytest.mark.parametrize("uid", ["bad uid", "x" * 41, "ü"])
def test_dashboard_bad_uid_is_400(api: GrafanaApi, svc: str, uid: str) -> None:
    with pytest.raises(GrafanaBadInputError):
        save(api, {"uid": uid, "title": "D"})


def test_dashboard_empty_title_is_400(api: GrafanaApi, svc: str) -> None:
    with pytest.raises(GrafanaBadInputError):
        save(api, {"uid": "d", "title": "  "})


def test_dashboard_without_uid_gets_one_and_without_folder_goes_to_root(
    double: GrafanaDouble, api: GrafanaApi, svc: str
) -> None:
    created = save(api, {"title": "No uid"}, folder=None)
    assert created["uid"]
    assert double.dashboards[created["uid"]]["folderUid"] == ""
    save(api, {"uid": "m", "title": "Moves"})
    save(api, {"uid": "m", "title": "Moves", "version": 1}, folder=None)
    assert api.dashboard.get_dashboard("m")["meta"]["folderUid"] == ""


def test_dashboard_same_title_other_uid_is_name_exists(api: GrafanaApi, svc: str) -> None:
    save(api, {"uid": "one", "title": "Same"})
    with pytest.raises(GrafanaClientError) as err:
        save(api, {"uid": "two", "title": "Same"})
    assert err.value.status_code == 412
    assert err.value.response["status"] == "name-exists"


def test_dashboard_same_title_with_overwrite_takes_over_the_other(
    double: GrafanaDouble, api: GrafanaApi, svc: str
) -> None:
    save(api, {"uid": "one", "title": "Same"})
    saved = save(api, {"uid": "two", "title": "Same"}, overwrite=True)
    # Grafana keeps the existing dashboard's uid: the new uid is silently dropped.
    assert (saved["uid"], saved["version"]) == ("one", 2)
    assert "two" not in double.dashboards


def test_dashboard_delete(double: GrafanaDouble, api: GrafanaApi, svc: str) -> None:
    save(api, {"uid": "gone", "title": "Gone"})
    assert api.dashboard.delete_dashboard("gone")["title"] == "Gone"
    with pytest.raises(GrafanaClientError) as err:
        api.dashboard.get_dashboard("gone")
    assert err.value.status_code == 404
    with pytest.raises(GrafanaClientError) as err:
        api.dashboard.delete_dashboard("gone")
    assert err.value.status_code == 404


def test_file_provisioned_dashboard_refuses_api_changes(
    double: GrafanaDouble, api: GrafanaApi, svc: str
) -> None:
    double.seed_file_provisioned_dashboard({"uid": "prov", "title": "From file"}, "svc")
    assert api.dashboard.get_dashboard("prov")["meta"]["provisioned"] is True
    with pytest.raises(GrafanaBadInputError) as err:
        save(api, {"uid": "prov", "title": "From file", "version": 1}, overwrite=True)
    assert "provisioned" in err.value.response["message"]
    with pytest.raises(GrafanaBadInputError):
        api.dashboard.delete_dashboard("prov")
    assert double.dashboard_versions("prov") == 1


# ---------------------------------------------------------------------------- search


def test_search_tags_are_anded_and_filters_apply(api: GrafanaApi, svc: str) -> None:
    api.folder.create_folder("Other", uid="other")
    save(api, {"uid": "ab", "title": "AB", "tags": ["a", "b"]})
    save(api, {"uid": "a", "title": "A only", "tags": ["a"]})
    save(api, {"uid": "ab2", "title": "AB elsewhere", "tags": ["b", "a"]}, folder="other")
    hits = api.search.search_dashboards(tag=["a", "b"], type_="dash-db")
    assert sorted(h["uid"] for h in hits) == ["ab", "ab2"]
    assert all(h["type"] == "dash-db" and h["isStarred"] is False for h in hits)
    in_svc = api.search.search_dashboards(tag=["a", "b"], folder_uids=["svc"])
    assert [(h["uid"], h["folderUid"], h["folderTitle"]) for h in in_svc] == [("ab", "svc", "Svc")]
    assert [h["uid"] for h in api.search.search_dashboards(query="only")] == ["a"]
    folders = api.search.search_dashboards(type_="dash-folder")
    assert {h["uid"] for h in folders} == {"svc", "other"}


def test_search_pagination_and_limit_cap(api: GrafanaApi, svc: str) -> None:
    for i in range(5):
        save(api, {"uid": f"d{i}", "title": f"Dash {i}"})
    pages = [
        [h["uid"] for h in api.search.search_dashboards(type_="dash-db", limit=2, page=p)]
        for p in (1, 2, 3)
    ]
    assert pages == [["d0", "d1"], ["d2", "d3"], ["d4"]]
    with pytest.raises(GrafanaClientError) as err:
        api.search.search_dashboards(limit=5001)
    assert err.value.status_code == 422


# ---------------------------------------------------------------------------- alerting


def test_rule_group_put_replaces_whole_group(
    double: GrafanaDouble, api: GrafanaApi, svc: str
) -> None:
    ap = api.alertingprovisioning
    ap.update_rule_group("svc", "g", group("g", "svc", [rule("r1", "One"), rule("r2", "Two")]))
    ap.update_rule_group("svc", "g", group("g", "svc", [rule("r1", "One")], interval=120))
    got = ap.get_rule_group("svc", "g")
    assert [r["uid"] for r in got["rules"]] == ["r1"]
    assert got["interval"] == 120
    assert got["rules"][0]["for"] == "5m"
    assert got["rules"][0]["folderUID"] == "svc"
    assert got["rules"][0]["ruleGroup"] == "g"
    with pytest.raises(GrafanaClientError) as err:
        ap.get_alertrule("r2")
    assert err.value.status_code == 404
    assert [r["uid"] for r in ap.get_alertrules_all()] == ["r1"]


def test_rule_group_missing_is_404(api: GrafanaApi, svc: str) -> None:
    with pytest.raises(GrafanaClientError) as err:
        api.alertingprovisioning.get_rule_group("svc", "nope")
    assert err.value.status_code == 404


@pytest.mark.parametrize("interval", [15, 0, -10, 5])
def test_rule_group_interval_must_be_multiple_of_10(
    api: GrafanaApi, svc: str, interval: int
) -> None:
    with pytest.raises(GrafanaBadInputError):
        api.alertingprovisioning.update_rule_group(
            "svc", "g", group("g", "svc", [rule("r1", "One")], interval=interval)
        )


@pytest.mark.parametrize(
    "override",
    [
        {"condition": "Z"},
        {"uid": "bad uid"},
        {"uid": "u" * 41},
        {"title": ""},
        {"title": "t" * 191},
        {"noDataState": "Nope"},
        {"execErrState": "NoData"},
        {"for": "5 minutes"},
        {"data": []},
        {"annotations": {"__dashboardUid__": "d"}},
    ],
)
def test_rule_validation_is_400(api: GrafanaApi, svc: str, override: dict[str, Any]) -> None:
    with pytest.raises(GrafanaBadInputError):
        api.alertingprovisioning.update_rule_group(
            "svc", "g", group("g", "svc", [rule("r1", "One", **override)])
        )


def test_rule_group_folder_must_exist(api: GrafanaApi) -> None:
    with pytest.raises(GrafanaBadInputError):
        api.alertingprovisioning.update_rule_group(
            "nope", "g", group("g", "nope", [rule("r1", "One")])
        )


def test_rule_titles_unique_per_folder(api: GrafanaApi, svc: str) -> None:
    ap = api.alertingprovisioning
    ap.update_rule_group("svc", "g1", group("g1", "svc", [rule("r1", "Same")]))
    with pytest.raises(GrafanaBadInputError):
        ap.update_rule_group("svc", "g2", group("g2", "svc", [rule("r2", "Same")]))


def test_rule_uid_from_another_group_is_moved(
    double: GrafanaDouble, api: GrafanaApi, svc: str
) -> None:
    ap = api.alertingprovisioning
    ap.update_rule_group("svc", "g1", group("g1", "svc", [rule("r1", "One"), rule("r2", "Two")]))
    ap.update_rule_group("svc", "g2", group("g2", "svc", [rule("r2", "Two")]))
    assert [r["uid"] for r in double.rule_groups[("svc", "g1")]["rules"]] == ["r1"]
    assert ap.get_alertrule("r2")["ruleGroup"] == "g2"


def test_rule_uid_generated_when_missing(api: GrafanaApi, svc: str) -> None:
    ap = api.alertingprovisioning
    ap.update_rule_group("svc", "g", group("g", "svc", [rule("", "Anonymous")]))
    (stored,) = ap.get_rule_group("svc", "g")["rules"]
    assert len(stored["uid"]) > 0


def test_provenance_recorded_with_and_without_header(api: GrafanaApi, svc: str) -> None:
    ap = api.alertingprovisioning
    ap.update_rule_group("svc", "api", group("api", "svc", [rule("r1", "One")]))
    ap.update_rule_group(
        "svc", "ui", group("ui", "svc", [rule("r2", "Two")]), disable_provenance=True
    )
    assert ap.get_alertrule("r1")["provenance"] == "api"
    assert ap.get_alertrule("r2")["provenance"] == ""
    # An "api" rule cannot be updated as "" ...
    with pytest.raises(GrafanaClientError) as err:
        ap.update_rule_group(
            "svc", "api", group("api", "svc", [rule("r1", "One")]), disable_provenance=True
        )
    assert err.value.status_code == 409
    # ... but a "" rule can be taken over by the API.
    ap.update_rule_group("svc", "ui", group("ui", "svc", [rule("r2", "Two")]))
    assert ap.get_alertrule("r2")["provenance"] == "api"


def test_file_provisioned_rules_refuse_api_changes(
    double: GrafanaDouble, api: GrafanaApi, svc: str
) -> None:
    double.seed_file_provisioned_rule_group(
        "svc", {"title": "filed", "interval": 60, "rules": [rule("f1", "From file")]}
    )
    ap = api.alertingprovisioning
    assert ap.get_alertrule("f1")["provenance"] == "file"
    for attempt in (
        lambda: ap.update_rule_group("svc", "filed", group("filed", "svc", [rule("f1", "X")])),
        lambda: ap.update_rule_group("svc", "filed", group("filed", "svc", [])),
        lambda: ap.update_alertrule("f1", rule("f1", "X", folderUID="svc", ruleGroup="filed")),
        lambda: ap.delete_alertrule("f1"),
        lambda: api.client.DELETE("/v1/provisioning/folder/svc/rule-groups/filed"),
    ):
        with pytest.raises(GrafanaClientError) as err:
            attempt()
        assert err.value.status_code == 409
    assert double.rule_groups[("svc", "filed")]["rules"][0]["title"] == "From file"


def test_single_rule_endpoints(double: GrafanaDouble, api: GrafanaApi, svc: str) -> None:
    ap = api.alertingprovisioning
    created = ap.create_alertrule(rule("s1", "Single", folderUID="svc", ruleGroup="g"))
    assert created["uid"] == "s1"
    assert created["provenance"] == "api"
    assert double.requests[-1].status == 201
    assert double.rule_groups[("svc", "g")]["interval"] == 60
    with pytest.raises(GrafanaBadInputError):
        ap.create_alertrule(rule("s1", "Dup uid", folderUID="svc", ruleGroup="g"))
    updated = ap.update_alertrule("s1", rule("s1", "Renamed", folderUID="svc", ruleGroup="g"))
    assert updated["title"] == "Renamed"
    assert ap.delete_alertrule("s1") is None
    assert double.requests[-1].status == 204
    assert ("svc", "g") not in double.rule_groups
    with pytest.raises(GrafanaClientError) as err:
        ap.update_alertrule("s1", rule("s1", "Gone", folderUID="svc", ruleGroup="g"))
    assert err.value.status_code == 404


def test_delete_rule_group(double: GrafanaDouble, api: GrafanaApi, svc: str) -> None:
    api.alertingprovisioning.update_rule_group("svc", "g", group("g", "svc", [rule("r", "R")]))
    assert api.client.DELETE("/v1/provisioning/folder/svc/rule-groups/g") is None
    assert double.requests[-1].status == 204
    assert double.rule_groups == {}


def test_group_export(api: GrafanaApi, svc: str) -> None:
    api.alertingprovisioning.update_rule_group("svc", "g", group("g", "svc", [rule("r", "R")]))
    exported = api.client.GET("/v1/provisioning/folder/svc/rule-groups/g/export?format=json")
    assert exported["groups"][0]["name"] == "g"
    assert exported["groups"][0]["interval"] == "1m"
    assert exported["groups"][0]["folder"] == "Svc"


# ---------------------------------------------------------------------------- fault injection


def test_injected_503_fails_once_then_succeeds(double: GrafanaDouble, api: GrafanaApi) -> None:
    double.inject(status=503, method="POST", path_prefix="/api/folders")
    with pytest.raises(GrafanaServerError) as err:
        api.folder.create_folder("Svc", uid="svc")
    assert err.value.status_code == 503
    assert "svc" not in double.folders
    assert api.folder.create_folder("Svc", uid="svc")["uid"] == "svc"
    assert [r.status for r in double.requests] == [503, 200]
    assert len(double.writes()) == 1


def test_injected_429_carries_retry_after(double: GrafanaDouble) -> None:
    double.inject(status=429, retry_after="3", times=2)
    http = niquests.Session()
    headers = {"Authorization": f"Bearer {double.token}"}
    statuses = []
    for _ in range(3):
        resp = http.get(f"{double.url}/api/folders", headers=headers)
        statuses.append((resp.status_code, resp.headers.get("Retry-After")))
    assert statuses == [(429, "3"), (429, "3"), (200, None)]


def test_injection_only_matches_its_filter(double: GrafanaDouble, api: GrafanaApi) -> None:
    double.inject(status=502, method="POST")
    assert api.folder.get_all_folders() == []
    with pytest.raises(GrafanaServerError):
        api.folder.create_folder("X", uid="x")


def test_drop_gives_connection_error(double: GrafanaDouble, api: GrafanaApi) -> None:
    double.inject(drop=True, path_prefix="/api/folders")
    with pytest.raises(niquests.exceptions.ConnectionError):
        api.folder.get_all_folders()
    assert api.folder.get_all_folders() == []


def test_delay_slows_and_can_time_out(double: GrafanaDouble) -> None:
    double.inject(delay=0.3)
    started = time.monotonic()
    assert client(double).folder.get_all_folders() == []
    assert time.monotonic() - started >= 0.3
    double.inject(delay=1.5)
    with pytest.raises(GrafanaTimeoutError):
        client(double, timeout=0.3).folder.get_all_folders()


# ---------------------------------------------------------------------------- state and threads


def test_state_seeded_directly_is_served(double: GrafanaDouble, api: GrafanaApi) -> None:
    double.folders["seeded"] = {"uid": "seeded", "title": "Seeded"}
    double.dashboards["sd"] = {"dashboard": {"title": "Seeded dash"}, "folderUid": "seeded"}
    assert api.folder.get_folder("seeded")["version"] == 1
    got = api.dashboard.get_dashboard("sd")
    assert (got["meta"]["folderTitle"], got["meta"]["version"]) == ("Seeded", 1)
    assert save(api, {"uid": "sd", "title": "Seeded dash", "version": 1}, "seeded")["version"] == 2


def test_concurrent_creates_of_one_uid_admit_exactly_one(
    double: GrafanaDouble, api: GrafanaApi
) -> None:
    def create(_: int) -> int:
        try:
            client(double).folder.create_folder("Race", uid="race")
        except GrafanaClientError as err:
            return err.status_code
        return 200

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(create, range(16)))
    assert statuses == [200] + [409] * 15
    assert len(double.writes()) == 1


# ---------------------------------------------------------------------------- durations


@given(st.integers(min_value=0, max_value=10**12))
def test_duration_format_roundtrips(ms: int) -> None:
    assert parse_duration_ms(format_duration_ms(ms)) == ms


def test_duration_examples() -> None:
    assert format_duration_ms(parse_duration_ms("300s")) == "5m"
    assert format_duration_ms(parse_duration_ms("90m")) == "1h30m"
    with pytest.raises(ValueError):
        parse_duration_ms("5 minutes")
