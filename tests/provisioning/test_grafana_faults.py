"""Grafana answering oddly, careless GRAFANA_* values, lost answers: through the CLI, over HTTP.

Every case runs the real ``platform-obs`` command against the Grafana double (real HTTP, real
grafana-client). What is promised: exit 3 (Grafana) or 1 (our configuration) with one short line
that says what was tried, what came back and what to check; no traceback, no secret, no page
dump; each error printed once; a write whose answer was lost is recognised as our own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from factories import rendered, service_folder_uid, team_folder_uid
from grafana_double import LOGIN_PAGE, GrafanaDouble

from platform_obs import cli as cli_module
from platform_obs.provisioning import grafana as grafana_module
from platform_obs.provisioning.grafana import (
    Grafana,
    RetryPolicy,
    UnexpectedResponse,
    mask_url,
    parse_url,
)
from platform_obs.provisioning.model import Rendered

SECRET = "glsa_faults-SECRET-9d1c7e-never-print"
#: An error line longer than this is a dump, not a message.
MAX_LINE = 600


@pytest.fixture(autouse=True)
def no_real_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries back off without waiting (the delays asked for are recorded)."""
    sleeps: list[float] = []
    monkeypatch.setattr(
        grafana_module, "DEFAULT_RETRY", RetryPolicy(sleep=sleeps.append, random=lambda: 0.5)
    )
    return sleeps


@pytest.fixture
def objects(monkeypatch: pytest.MonkeyPatch) -> list[Rendered]:
    """What the (stubbed) render step returns: change ``objects[0]`` to control the plan."""
    box = [rendered(["a", "b"])]
    monkeypatch.setattr(cli_module, "_build", lambda *a, **kw: box[0])
    return box


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "service.yaml"
    path.write_text("service: placeholder\n")
    return path


def run(*args: str, url: str = "", token: str = "", **env: str) -> Result:
    environ = {"GRAFANA_URL": url, "GRAFANA_TOKEN": token, "GITHUB_SHA": "", "GITHUB_RUN_ID": ""}
    environ |= env
    # catch_exceptions: an exception escaping the CLI is a finding, asserted on below.
    return CliRunner().invoke(cli_module.cli, list(args), env=environ, catch_exceptions=True)


def apply(g: GrafanaDouble, config: Path, *extra: str, token: str = "", **env: str) -> Result:
    return run("apply", str(config), *extra, url=g.url, token=token or g.token, **env)


def assert_clean(result: Result, code: int, *secrets: str) -> list[str]:
    """Exit ``code`` through the CLI's own error path; short lines; no traceback or secret."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert " object at 0x" not in result.output
    assert "<html" not in result.output.lower()
    for secret in secrets:
        assert secret not in result.output
    lines = result.output.splitlines()
    assert all(len(line) < MAX_LINE for line in lines), max(lines, key=len)
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return lines


# --- GRAFANA_URL and GRAFANA_TOKEN as people get them wrong (finding 14, 4, 6) --------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://[::1", "unbalanced '['"),
        ("http://grafana.example.com:notaport", "port must be a number"),
        ("http://grafana.example.com:99999", "port must be a number"),
        ("http://grafana.example.com:0", "port must be a number"),
        ("grafana.example.com", "must start with http:// or https://"),
        ("ftp://grafana.example.com", "must start with http:// or https://"),
        ("http://", "has no host"),
        ("http://grafana.example.com/?orgId=1", "query or fragment"),
        ("http://grafana example.com", "whitespace"),
        ("https://grafana.example.com/api/", "ends in /api"),
    ],
)
def test_malformed_grafana_url_is_one_line_exit_1(
    objects: list[Rendered], config: Path, url: str, expected: str
) -> None:
    for command in ("plan", "apply"):
        result = run(command, str(config), url=url, token=SECRET)
        lines = assert_clean(result, 1, SECRET)
        assert "GRAFANA_URL" in lines[-1] and expected in lines[-1]


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://[::1]:3000/grafana/", "http://[::1]:3000/grafana"),
        ("https://Grafana.Example.com", "https://grafana.example.com"),
        ("https://user:pw@example.com:8443/a/b/", "https://example.com:8443/a/b"),
    ],
)
def test_base_url_keeps_sub_path_ipv6_and_drops_credentials(url: str, base: str) -> None:
    assert parse_url(url) == (base, base)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://admin:s3cret@host/x", "http://admin:***@host/x"),
        ("admin:s3cret@host:3000", "admin:***@host:3000"),
        ("got 'https://:s3cret@host'", "got 'https://:***@host'"),
        ("http://host:3000/path", "http://host:3000/path"),
    ],
)
def test_mask_url(text: str, shown: str) -> None:
    assert mask_url(text) == shown


def test_password_in_a_schemeless_grafana_url_is_masked(
    objects: list[Rendered], config: Path
) -> None:
    result = run("plan", str(config), url="admin:hunter2-pw@grafana:3000", token=SECRET)
    lines = assert_clean(result, 1, SECRET, "hunter2-pw")
    assert "admin:***@grafana:3000" in lines[-1]


def test_password_in_grafana_url_is_masked_in_grafana_errors(
    objects: list[Rendered], config: Path
) -> None:
    with GrafanaDouble() as g:
        port = g.base_url.rsplit(":", 1)[1]
    result = run(
        "apply", str(config), url=f"http://admin:hunter2-pw@127.0.0.1:{port}", token=SECRET
    )
    lines = assert_clean(result, 3, SECRET, "hunter2-pw")
    assert "connection refused" in lines[-1]
    retries = [line for line in lines if line.startswith("warning: retrying")]
    assert len(retries) == 4  # each retry says so, once, on one line


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (SECRET[:10] + "\n" + SECRET[10:], "a line break at position 11"),
        (SECRET[:10] + "\r\n" + SECRET[10:], "a line break at position 11"),
        (SECRET[:10] + " " + SECRET[10:], "a space"),
        (SECRET + "\u20ac", "a non-ASCII character (U+20AC)"),
        (SECRET + "\u00e9", "a non-ASCII character (U+00E9)"),
        (SECRET[:5] + "\x07" + SECRET[5:], "a control character (U+0007)"),
    ],
)
def test_bad_characters_in_token_are_named_not_shown(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path, token: str, expected: str
) -> None:
    result = apply(grafana, config, token=token)
    lines = assert_clean(result, 1, SECRET, SECRET[:10], SECRET[10:])
    assert "GRAFANA_TOKEN" in lines[-1] and expected in lines[-1]
    assert grafana.requests == []


@pytest.mark.parametrize("value", ["soon", "-1", "0", "nan", "inf"])
def test_bad_grafana_timeout_is_one_line_exit_1(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path, value: str
) -> None:
    lines = assert_clean(apply(grafana, config, GRAFANA_TIMEOUT=value), 1)
    assert "GRAFANA_TIMEOUT" in lines[-1]


# --- sub-path, retries, each error once (must-have 4) -------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/"])
def test_grafana_under_a_sub_path(objects: list[Rendered], config: Path, suffix: str) -> None:
    with GrafanaDouble(mount="/grafana") as g:
        result = run("apply", str(config), url=g.url + suffix, token=g.token)
        assert result.exit_code == 0, result.output
        assert "Apply: 7 created" in result.output
        assert all(r.path.startswith("/grafana/api/") for r in g.requests)
        again = run("plan", str(config), "--detailed-exitcode", url=g.url + suffix, token=g.token)
        assert again.exit_code == 0, again.output


def test_sub_path_left_out_says_what_answered(objects: list[Rendered], config: Path) -> None:
    with GrafanaDouble(mount="/grafana") as g:
        result = run("plan", str(config), url=g.base_url, token=SECRET)
    lines = assert_clean(result, 3, SECRET)
    assert f"GET {g.base_url}/api/search answered 404" in lines[-1]
    assert "404 Not Found" in lines[-1]  # the page's title, not the page
    assert "is GRAFANA_URL pointing at Grafana" in lines[-1]


def test_wrong_sub_path_on_a_real_grafana_says_so(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path
) -> None:
    # Grafana itself answers (JSON 404), but the path is not its API.
    result = run("plan", str(config), url=grafana.url + "/grafana", token=grafana.token)
    lines = assert_clean(result, 3)
    assert "not found (404)" in lines[-1] and "is GRAFANA_URL pointing at Grafana" in lines[-1]


def test_each_retry_is_announced_on_one_line(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path, no_real_sleeps: list[float]
) -> None:
    grafana.inject(status=503, times=2, method="POST", path_prefix="/api/dashboards/db")
    result = apply(grafana, config, "--parallelism", "1")
    assert result.exit_code == 0, result.output
    retries = [line for line in result.output.splitlines() if "retrying" in line]
    assert len(retries) == 2 == len(no_real_sleeps)
    assert all("POST " + grafana.url + "/api/dashboards/db HTTP 503" in r for r in retries)
    assert "attempt 2 of 5" in retries[0] and "attempt 3 of 5" in retries[1]


def test_forbidden_is_printed_once(objects: list[Rendered], config: Path) -> None:
    with GrafanaDouble(viewer_token="viewer-token") as g:
        result = apply(g, config, "--parallelism", "4", token="viewer-token")
    assert_clean(result, 3)
    assert result.output.count("permission denied (403)") == 1
    assert "not attempted" in result.output


def test_unknown_host_is_not_retried(
    objects: list[Rendered], config: Path, no_real_sleeps: list[float]
) -> None:
    result = run("plan", str(config), url="http://grafana.invalid", token=SECRET)
    lines = assert_clean(result, 3, SECRET)
    assert "cannot resolve host name 'grafana.invalid'" in lines[-1]
    assert no_real_sleeps == []


def test_tls_to_a_plain_http_server_is_not_retried(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path, no_real_sleeps: list[float]
) -> None:
    url = grafana.url.replace("http://", "https://")
    lines = assert_clean(run("plan", str(config), url=url, token=SECRET), 3, SECRET)
    assert "TLS failed" in lines[-1] and "http:// vs https://" in lines[-1]
    assert no_real_sleeps == []


# --- Grafana answering oddly (finding 12) -------------------------------------------------------


def test_sso_login_page_is_exit_3_with_hint(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path
) -> None:
    grafana.inject(status=200, times=1000, body=LOGIN_PAGE, content_type="text/html")
    for command in ("plan", "apply"):
        result = run(command, str(config), url=grafana.url, token=SECRET)
        lines = assert_clean(result, 3, SECRET)
        assert "an HTML page titled 'Sign in - Example SSO'" in lines[-1]
        assert "is GRAFANA_URL pointing at Grafana" in lines[-1]
        assert f"GET {grafana.url}/api/search" in lines[-1]
    assert grafana.writes() == []


def test_login_page_answering_a_write_stops_the_run(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path
) -> None:
    # The session expires between the reads and the writes.
    grafana.inject(status=200, times=1000, method="POST", body=LOGIN_PAGE, content_type="text/html")
    result = apply(grafana, config, "--parallelism", "1")
    lines = assert_clean(result, 3)
    assert any("HTML page titled 'Sign in - Example SSO'" in line for line in lines)
    assert "not attempted" in result.output
    assert grafana.folders == {}


WRONG_SHAPES = [
    ("/api/search", {"message": "ok"}, "expected a list, got an object with keys message"),
    ("/api/search", [1, 2, 3], "expected search hits with a uid"),
    ("/api/search", "just text", "JSON of another shape"),
    ("/api/v1/provisioning/alert-rules", {"rules": []}, "expected a list"),
    ("/api/v1/provisioning/alert-rules", ["rule"], "expected a list of rule objects"),
    ("/api/v1/provisioning/contact-points", {"name": "x"}, "expected a list"),
]


@pytest.mark.parametrize(("path", "body", "expected"), WRONG_SHAPES)
def test_json_of_the_wrong_shape_is_exit_3(
    grafana: GrafanaDouble,
    objects: list[Rendered],
    config: Path,
    path: str,
    body: Any,
    expected: str,
) -> None:
    grafana.inject(status=200, times=1000, path_prefix=path, body=json.dumps(body))
    lines = assert_clean(run("plan", str(config), url=grafana.url, token=grafana.token), 3)
    assert expected in lines[-1] and "is GRAFANA_URL pointing at Grafana" in lines[-1]


def test_invalid_json_is_exit_3(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path
) -> None:
    grafana.inject(status=200, times=1000, path_prefix="/api/search", body="{not json")
    lines = assert_clean(run("plan", str(config), url=grafana.url, token=SECRET), 3)
    assert "not valid JSON" in lines[-1]


def test_dashboard_of_the_wrong_shape_is_exit_3(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path
) -> None:
    assert apply(grafana, config).exit_code == 0
    objects[0] = rendered(["a", "b"], thresholds={"a": 0.2})
    objects[0].dashboards[0].model["title"] = "changed"
    grafana.inject(status=200, times=10, path_prefix="/api/dashboards/uid/", body="[]")
    lines = assert_clean(run("plan", str(config), url=grafana.url, token=grafana.token), 3)
    assert "get dashboard a-red" in lines[-1] and "expected an object" in lines[-1]


def test_search_that_ignores_paging_stops(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path
) -> None:
    for i in range(grafana_module.SEARCH_PAGE_SIZE):
        grafana.add_folder(f"f{i:05d}", f"folder {i:05d}")
    grafana.search_paging = "repeat"
    lines = assert_clean(run("plan", str(config), url=grafana.url, token=grafana.token), 3)
    assert "the server ignores paging" in lines[-1]
    searches = [r for r in grafana.requests if r.path == "/api/search"]
    assert len(searches) == 2


def test_search_that_never_ends_stops(grafana: GrafanaDouble) -> None:
    grafana.search_paging = "endless"
    client = Grafana(grafana.url, grafana.token)
    client.max_search_pages = 3
    with pytest.raises(UnexpectedResponse, match="kept returning full pages"):
        client.list_folders()
    assert len([r for r in grafana.requests if r.path == "/api/search"]) == 3


@pytest.mark.parametrize("status", [400, 500])
def test_huge_error_message_is_cut(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path, status: int
) -> None:
    huge = json.dumps({"message": "boom " * 1_000_000})  # 5 MB
    grafana.inject(status=status, times=1, method="POST", path_prefix="/api/folders", body=huge)
    result = apply(grafana, config, "--parallelism", "1")
    assert isinstance(result.exception, SystemExit)
    assert result.exit_code in (3, 4)
    assert len(result.output) < 5000
    assert "boom boom" in result.output


def test_html_error_page_is_summarised(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path
) -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body>" + b"x" * 100_000
    grafana.inject(
        status=500, times=1, path_prefix="/api/search", body=page, content_type="text/html"
    )
    lines = assert_clean(run("plan", str(config), url=grafana.url, token=SECRET), 3)
    assert "an HTML page titled '502 Bad Gateway'" in lines[-1]


def test_retry_after_beyond_the_limit_fails_at_once(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path, no_real_sleeps: list[float]
) -> None:
    grafana.inject(status=429, times=1000, path_prefix="/api/search", retry_after="100000")
    lines = assert_clean(run("plan", str(config), url=grafana.url, token=SECRET), 3)
    assert "retry after 100000 s" in lines[-1]
    assert "after 1 attempt)" in lines[-1] and "5 attempts" not in lines[-1]
    assert no_real_sleeps == []
    assert len(grafana.requests) == 1


@pytest.mark.parametrize("value", ["soon", "nan", "-5", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_odd_retry_after_values_are_survived(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path, value: str
) -> None:
    grafana.inject(status=429, times=1, path_prefix="/api/search", retry_after=value)
    result = run("plan", str(config), url=grafana.url, token=grafana.token)
    assert result.exit_code == 0, result.output


# --- a write whose answer is lost (finding 13) --------------------------------------------------


LOST = [
    ("POST", "/api/folders"),
    ("POST", "/api/dashboards/db"),
    ("PUT", "/api/v1/provisioning/folder/"),
]


@pytest.mark.parametrize("how", ["dropped", "too late"])
@pytest.mark.parametrize(("method", "path"), LOST)
def test_first_apply_with_lost_answers_is_a_clean_success(
    grafana: GrafanaDouble,
    objects: list[Rendered],
    config: Path,
    method: str,
    path: str,
    how: str,
) -> None:
    if how == "dropped":
        grafana.inject(lose_answer=True, times=2, method=method, path_prefix=path)
    else:
        grafana.inject(answer_delay=1.0, times=2, method=method, path_prefix=path)
    result = apply(grafana, config, GRAFANA_TIMEOUT="0.4")
    assert result.exit_code == 0, result.output
    assert "Apply: 7 created, 0 updated, 0 deleted, 0 unchanged, 0 failed." in result.output
    assert "retrying" in result.output
    assert len(grafana.dashboards) == 2 and len(grafana.rule_groups) == 2
    plan = run("plan", str(config), "--detailed-exitcode", url=grafana.url, token=grafana.token)
    assert plan.exit_code == 0, plan.output


def test_update_with_lost_answer_is_not_a_version_mismatch(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path
) -> None:
    assert apply(grafana, config).exit_code == 0
    objects[0].dashboards[0].model["title"] = "a / RED v2"
    grafana.inject(lose_answer=True, times=1, method="POST", path_prefix="/api/dashboards/db")
    result = apply(grafana, config)
    assert result.exit_code == 0, result.output
    assert "Apply: 0 created, 1 updated" in result.output
    assert "version mismatch" not in result.output
    assert grafana.dashboards["a-red"]["dashboard"]["title"] == "a / RED v2"


@pytest.mark.parametrize(
    ("path", "gone"),
    [
        ("/api/dashboards/uid/", "dashboard"),
        ("/api/v1/provisioning/folder/", "rule group"),
        ("/api/folders/", "folder"),
    ],
)
def test_prune_with_lost_answers_is_not_a_404(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path, path: str, gone: str
) -> None:
    from factories import rule_group

    from platform_obs.provisioning.model import Folder

    legacy = rule_group("a")
    legacy = type(legacy)(
        service="a",
        folder_uid="po-svc-a-legacy",
        title="legacy",
        interval_seconds=60,
        rules=tuple(
            {**x, "uid": x["uid"] + "-l", "title": x["title"] + " l"} for x in legacy.rules
        ),
    )
    before = rendered(["a"], extra_dashboards={"a": ["old"]})
    before.folders.append(Folder("po-svc-a-legacy", "a legacy", parent_uid=team_folder_uid()))
    before.rule_groups.append(legacy)
    objects[0] = before
    assert apply(grafana, config).exit_code == 0
    objects[0] = rendered(["a"])
    grafana.inject(lose_answer=True, times=1, method="DELETE", path_prefix=path)
    result = apply(grafana, config, "--prune")
    assert result.exit_code == 0, result.output
    assert "Apply: 0 created, 0 updated, 3 deleted" in result.output
    assert "not found" not in result.output
    assert "a-old" not in grafana.dashboards and "po-svc-a-legacy" not in grafana.folders
    assert service_folder_uid("a") in grafana.folders


def test_real_conflict_after_a_lost_answer_is_still_reported(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path
) -> None:
    """Recognising our own write must not hide someone else's: a hand-made dashboard wins."""
    grafana.add_folder(team_folder_uid(), "Payments")
    grafana.add_folder(service_folder_uid("a"), "a", team_folder_uid())
    Grafana(grafana.url, grafana.token).save_dashboard(
        {"uid": "a-red", "title": "Someone else's"}, service_folder_uid("a"), "by hand"
    )
    grafana.inject(drop=True, times=1, method="POST", path_prefix="/api/dashboards/db")
    result = apply(grafana, config, "--parallelism", "1")
    assert result.exit_code == 4, result.output
    assert "not managed by platform-obs" in result.output
    assert grafana.dashboards["a-red"]["dashboard"]["title"] == "Someone else's"


def test_nothing_written_and_a_failure_is_exit_3_not_4(
    grafana: GrafanaDouble, objects: list[Rendered], config: Path
) -> None:
    assert apply(grafana, config).exit_code == 0
    objects[0] = rendered(["a", "b"], thresholds={"a": 0.2})
    grafana.inject(status=400, times=1, method="PUT", path_prefix="/api/v1/provisioning")
    result = apply(grafana, config)
    assert result.exit_code == 3, result.output
    assert "Apply: 0 created, 0 updated, 0 deleted, 6 unchanged, 1 failed." in result.output


def test_real_config_under_a_sub_path_with_a_lost_answer(tmp_path: Path) -> None:
    """No stubs: the example config rendered for real, Grafana behind /grafana, one answer lost."""
    example = Path(__file__).resolve().parents[2] / "examples" / "service-config"
    config = tmp_path / "platform-obs.yaml"
    config.write_text((example / "platform-obs.yaml").read_text())
    points = ("payments-oncall", "payments-infra")
    with GrafanaDouble(mount="/grafana", latency=0.005, contact_points=points) as g:
        g.inject(lose_answer=True, times=1, method="POST", path_prefix="/api/dashboards/db")
        first = run("apply", str(config), "--no-promtool", url=g.url, token=g.token)
        assert first.exit_code == 0, first.output
        assert "0 failed" in first.output and "retrying save dashboard" in first.output
        again = run("plan", str(config), "--detailed-exitcode", url=g.url, token=g.token)
        assert again.exit_code == 0, again.output
