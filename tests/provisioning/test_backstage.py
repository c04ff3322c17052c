"""Backstage catalog annotations from ``render``: the keys the Grafana plugin reads, and selectors
that pick exactly what ``apply`` created (checked against the Grafana double after a real apply)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from fixtures_render import EXAMPLE, config, write
from grafana_double import GrafanaDouble

from platform_obs import cli as cli_module
from platform_obs.provisioning.pipeline import build

# Annotation keys of @k-phoen/backstage-plugin-grafana (src/components/grafanaData.ts).
KEYS = {"grafana/dashboard-selector", "grafana/alert-label-selector", "grafana/overview-dashboard"}


def invoke(*args: str, grafana: GrafanaDouble | None = None) -> Result:
    env = {"GRAFANA_URL": grafana.url if grafana else "", "GRAFANA_TOKEN": ""}
    if grafana:
        env["GRAFANA_TOKEN"] = grafana.token
    return CliRunner().invoke(cli_module.cli, list(args), env=env, catch_exceptions=False)


def catalog(out: Path, service: str) -> dict[str, Any]:
    path = out / "backstage" / f"{service}.catalog-info.yaml"
    text = path.read_text()
    assert text.startswith("# Backstage catalog annotations for")
    return yaml.safe_load(text)


def select_dashboards(selector: str, hits: list[dict[str, Any]]) -> set[str]:
    """The plugin's query language, for the form we emit: `tags @> 'a' && tags @> 'b'`."""
    clauses = [c.strip() for c in selector.split("&&")]
    wanted = []
    for clause in clauses:
        match = re.fullmatch(r"tags @> '([^']*)'", clause)
        assert match, f"unexpected selector clause {clause!r}"
        wanted.append(match.group(1))
    return {h["uid"] for h in hits if all(t in h.get("tags", []) for t in wanted)}


def test_render_writes_a_component_with_the_plugin_annotations(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(
        "render", str(EXAMPLE), "--out", str(out), "--no-promtool",
        "--grafana-url", "https://grafana.acme.test/",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert str(out / "backstage" / "checkout.catalog-info.yaml") in result.output
    entity = catalog(out, "checkout")
    assert entity["apiVersion"] == "backstage.io/v1alpha1" and entity["kind"] == "Component"
    assert entity["metadata"]["name"] == "checkout"
    assert entity["spec"]["owner"] == "payments"
    annotations = entity["metadata"]["annotations"]
    assert set(annotations) == KEYS
    assert annotations["grafana/alert-label-selector"] == "service=checkout"
    assert (
        annotations["grafana/overview-dashboard"]
        == "https://grafana.acme.test/d/checkout-overview?orgId=1&kiosk"
    )
    links = {link["url"] for link in entity["metadata"]["links"]}
    assert "https://grafana.acme.test/d/checkout-slo?orgId=1" in links


def test_without_grafana_url_links_are_relative(tmp_path: Path) -> None:
    cfg = write(tmp_path, config(dashboards=["runtime", "logs"]))
    out = tmp_path / "out"
    assert invoke("render", str(cfg), "--out", str(out), "--no-promtool").exit_code == 0
    entity = catalog(out, "checkout")
    # No overview dashboard: the first of the service's dashboards is embedded instead.
    assert entity["metadata"]["annotations"]["grafana/overview-dashboard"].startswith(
        "/d/checkout-runtime?"
    )
    assert "links" not in entity["metadata"]


def test_build_alone_adds_no_catalog_files() -> None:
    assert build([EXAMPLE], run_promtool=False).extra_files == {}


def test_selectors_match_what_apply_created(tmp_path: Path, grafana: GrafanaDouble) -> None:
    services = tmp_path / "services"
    services.mkdir()
    shutil.copy(EXAMPLE, services / "checkout.yaml")
    write(services, config(service="search", team="discovery", receiver="search-oncall"), "s.yaml")
    assert invoke("apply", str(services), "--no-promtool", grafana=grafana).exit_code == 0
    out = tmp_path / "out"
    assert invoke("render", str(services), "--out", str(out), "--no-promtool").exit_code == 0

    hits = [
        {"uid": uid, "tags": d["dashboard"].get("tags", [])}
        for uid, d in grafana.dashboards.items()
    ]
    for service in ("checkout", "search"):
        annotations = catalog(out, service)["metadata"]["annotations"]
        selected = select_dashboards(annotations["grafana/dashboard-selector"], hits)
        owned = {uid for uid in grafana.dashboards if uid.startswith(f"{service}-")}
        assert selected == owned and len(owned) >= 3

        label, _, value = annotations["grafana/alert-label-selector"].partition("=")
        matching = {r["uid"] for r in grafana.all_rules() if r["labels"].get(label) == value}
        in_folder = {r["uid"] for r in grafana.all_rules() if r["folderUID"] == f"po-{service}"}
        assert matching == in_folder and matching

        uid = re.fullmatch(
            r"/d/([^?]+)\?orgId=1&kiosk", annotations["grafana/overview-dashboard"]
        ).group(1)  # type: ignore[union-attr]
        assert uid == f"{service}-overview" and uid in grafana.dashboards


def test_a_fleet_s_catalog_files_are_serialised_once_per_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entities differ only in the service's values: their text is made once and filled in,
    and is exactly each entity serialised (names YAML would read as other types included)."""
    from platform_obs.provisioning import backstage
    from platform_obs.provisioning.outputs import dump_yaml
    from platform_obs.provisioning.pipeline import render_all
    from platform_obs.provisioning.spec import load_specs
    from platform_obs.provisioning.templates import load_templates

    names = [f"svc-{i}" for i in range(8)] + ["on", "123", "pay"]
    for name in names:
        write(tmp_path, config(service=name, team="payments", receiver="r", tier=2), f"{name}.yaml")
    specs = load_specs([tmp_path])
    rendered = render_all(specs, load_templates()).rendered
    dumped: list[Any] = []
    monkeypatch.setattr(backstage, "dump_yaml", lambda data: dumped.append(data) or dump_yaml(data))
    files = backstage.catalog_files(rendered, specs, grafana_url="https://grafana.example.com")
    assert len(dumped) < len(names) / 2, "serialised per shape, not per service"
    for spec in specs:
        uids = [b.uid for b in rendered.dashboards if b.service == spec.name]
        overview = next(u for u in uids if u.endswith("overview"))
        entity = backstage.catalog_entity(spec, uids, overview, "https://grafana.example.com")
        expected = backstage._HEADER.format(service=spec.name) + dump_yaml(entity)
        assert files[f"backstage/{spec.name}.catalog-info.yaml"] == expected, spec.name
