"""Dashboard templates -> grafana-foundation-sdk builders -> :class:`model.Dashboard`.

Every dashboard gets the same variables: datasource pickers for Prometheus, Loki and Tempo
(defaulting to the service's datasource uids), ``env`` (the environments the service reports)
and a hidden constant ``service``. Panel ids follow the template's file order, so alert rules can
point at them (``__panelId__``) and ids stay stable across renders.
"""

from __future__ import annotations

import enum
import json
from typing import Any
from urllib.parse import quote as url_quote

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import logs, loki, prometheus, stat, table, tempo, timeseries
from grafana_foundation_sdk.builders.gauge import Panel as GaugePanel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import VisibilityMode
from grafana_foundation_sdk.models.dashboard import (
    DashboardLinkType,
    DataSourceRef,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from platform_obs.provisioning import model, ownership
from platform_obs.provisioning.placeholders import Scope, expand
from platform_obs.provisioning.render.scope import ENV_LABEL, SERVICE_LABEL, dashboard_scope
from platform_obs.provisioning.spec import ServiceSpec
from platform_obs.provisioning.templates import DashboardTemplate, PanelTemplate, Templates

#: Kind of datasource -> Grafana plugin type (also the name of the dashboard variable).
DATASOURCE_TYPES = {"prometheus": "prometheus", "loki": "loki", "tempo": "tempo"}
#: Key of per-target metadata the renderer adds to each query (Grafana keeps unknown keys).
TARGET_META_KEY = "platformObs"


def folders_for(spec: ServiceSpec) -> tuple[model.Folder, model.Folder]:
    """The team folder and, inside it, the service folder."""
    team = model.Folder(uid=ownership.team_folder_uid(spec.team), title=spec.team)
    service = model.Folder(
        uid=ownership.service_folder_uid(spec.name), title=spec.name, parent_uid=team.uid
    )
    return team, service


def dashboard_uid(service: str, template_id: str) -> str:
    return model.stable_uid(service, template_id)


def selected_dashboards(spec: ServiceSpec, templates: Templates) -> list[DashboardTemplate]:
    """The dashboard templates a service gets, in display order."""
    if spec.dashboards is None:
        chosen = [t for t in templates.dashboards.values() if all(map(spec.satisfies, t.requires))]
    else:
        chosen = [templates.dashboards[i] for i in spec.dashboards if i in templates.dashboards]
    return sorted(chosen, key=lambda t: (t.order, t.id))


def _ds(kind: str) -> DataSourceRef:
    return DataSourceRef(type_val=DATASOURCE_TYPES[kind], uid=f"${{{kind}}}")


def _variables(spec: ServiceSpec, template: DashboardTemplate, scope: Scope) -> list[Any]:
    uids = {
        "prometheus": spec.datasources.prometheus,
        "loki": spec.datasources.loki,
        "tempo": spec.datasources.tempo,
    }
    out: list[Any] = [
        db.DatasourceVariable(kind)
        .label(kind.capitalize())
        .type(DATASOURCE_TYPES[kind])
        .current(VariableOption(selected=True, text=uid, value=uid))
        for kind, uid in uids.items()
    ]
    env_query = f'label_values({{{SERVICE_LABEL}="$service"}}, {ENV_LABEL})'
    out.append(
        db.QueryVariable("env")
        .label("Environment")
        .datasource(_ds("prometheus"))
        .query(env_query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(selected=True, text="All", value="$__all"))
    )
    out.append(db.ConstantVariable("service").value(spec.name))
    for var in template.variables:
        out.append(
            db.CustomVariable(var.name)
            .label(var.label or var.name)
            .values(expand(var.values, scope))
            .multi(var.multi)
            .include_all(var.include_all)
            .current(VariableOption(selected=True, text="All", value="$__all"))
        )
    return out


def _explore_url(datasource: str, query: str) -> str:
    """A Grafana Explore link; ``${...}`` stays readable so Grafana interpolates it."""
    pane = {
        "datasource": f"${{{datasource}}}",
        "queries": [
            {
                "refId": "A",
                "datasource": {"type": DATASOURCE_TYPES[datasource], "uid": f"${{{datasource}}}"},
                "queryType": "traceql" if datasource == "tempo" else "",
                "query" if datasource == "tempo" else "expr": query,
            }
        ],
        "range": {"from": "${__from}", "to": "${__to}"},
    }
    panes = json.dumps({"a": pane}, separators=(",", ":"), sort_keys=True)
    return "/explore?schemaVersion=1&panes=" + url_quote(panes, safe="${}_.:,-")


def _target(panel: PanelTemplate, index: int, scope: Scope) -> Any:
    target = panel.targets[index]
    ref = chr(ord("A") + index)
    expr = expand(target.expr, scope)
    if panel.datasource == "prometheus":
        query: Any = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(_ds("prometheus"))
        query = query.instant() if target.instant else query.range()
        if target.legend:
            query = query.legend_format(expand(target.legend, scope))
    elif panel.datasource == "loki":
        query = loki.Dataquery().expr(expr).ref_id(ref).datasource(_ds("loki"))
        if target.legend:
            query = query.legend_format(expand(target.legend, scope))
    else:
        query = (
            tempo.TempoQuery()
            .query(expr)
            .query_type("traceql")
            .ref_id(ref)
            .limit(20)
            .datasource(_ds("tempo"))
        )
    return query


def _panel(panel: PanelTemplate, panel_id: int, scope: Scope) -> Any:
    kind = panel.type
    if kind == "stat":
        builder: Any = stat.Panel()
    elif kind == "logs":
        builder = (
            logs.Panel()
            .show_time(True)
            .wrap_log_message(True)
            .enable_log_details(True)
            .prettify_log_message(False)
        )
    elif kind == "table":
        builder = table.Panel()
    elif kind == "gauge":
        builder = GaugePanel()
    else:
        builder = (
            timeseries.Panel().fill_opacity(10).line_width(1).show_points(VisibilityMode.NEVER)
        )
    builder = (
        builder.id(panel_id)
        .title(expand(panel.title, scope))
        .datasource(_ds(panel.datasource))
        .span(panel.width)
        .height(panel.height)
    )
    if panel.description:
        builder = builder.description(expand(panel.description, scope))
    if panel.unit:
        builder = builder.unit(panel.unit)
    if panel.decimals is not None:
        builder = builder.decimals(panel.decimals)
    if panel.min is not None:
        builder = builder.min(panel.min)
    if panel.max is not None:
        builder = builder.max(panel.max)
    for i in range(len(panel.targets)):
        builder = builder.with_target(_target(panel, i, scope))
    if panel.links:
        links = []
        for link in panel.links:
            if link.url is not None:
                url = expand(link.url, scope)
            else:
                url = _explore_url(
                    link.explore_datasource or "tempo", expand(link.explore_query or "", scope)
                )
            links.append(db.DashboardLink(link.title).url(url).target_blank(False))
        builder = builder.data_links(links)
    return builder


def dashboard_tags(spec: ServiceSpec, template: DashboardTemplate) -> list[str]:
    return sorted(
        {model.MANAGER, f"{model.SERVICE_TAG_PREFIX}{spec.name}", spec.team, *template.tags}
    )


def build_dashboard(
    spec: ServiceSpec, template: DashboardTemplate, folder_uid: str
) -> model.Dashboard:
    """Render one dashboard template for one service."""
    scope = dashboard_scope(spec)
    uid = dashboard_uid(spec.name, template.id)
    tags = dashboard_tags(spec, template)
    board = (
        db.Dashboard(expand(template.title, scope))
        .uid(uid)
        .description(template.description)
        .tags(tags)
        .editable()
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .variables(_variables(spec, template, scope))
        .annotation(
            db.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .built_in(1)
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
        )
        .link(
            db.DashboardLink(f"{spec.name} dashboards")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([model.MANAGER, f"{model.SERVICE_TAG_PREFIX}{spec.name}"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    ids = template.panel_ids()
    next_row_id = 1
    for row in template.rows:
        panels = [p for p in row.panels if all(map(spec.satisfies, p.requires))]
        if panels:
            board = board.with_row(db.Row(row.title).id(next_row_id).collapsed(row.collapsed))
            for panel in panels:
                board = board.with_panel(_panel(panel, ids[panel.key], scope))
        next_row_id += len(row.panels) + 1
    as_json = to_json(board.build())
    _attach_target_meta(as_json, template, spec)
    return model.Dashboard(service=spec.name, folder_uid=folder_uid, model=as_json)


def _attach_target_meta(
    board: dict[str, Any], template: DashboardTemplate, spec: ServiceSpec
) -> None:
    """Record per query whether data is expected (read by end-to-end checks) and its template."""
    panels = {p.key: p for row in template.rows for p in row.panels}
    by_id = {pid: panels[key] for key, pid in template.panel_ids().items()}
    for panel in board.get("panels", []):
        source = by_id.get(panel.get("id"))
        if source is None:
            continue
        for target, tmpl in zip(panel.get("targets", []), source.targets, strict=False):
            meta: dict[str, Any] = {
                "template": template.file,
                "path": tmpl.path,
                "expect_data": tmpl.expect_data,
            }
            if tmpl.reason:
                meta["reason"] = tmpl.reason
            target[TARGET_META_KEY] = meta


_PLAIN = frozenset({str, int, float, bool, type(None)})


def to_json(built: Any) -> Any:
    """A foundation-sdk object as plain JSON data: what ``cog.encoder.JSONEncoder`` writes,
    without a text round trip (it dominates rendering 1,000 services otherwise)."""
    kind = type(built)
    if kind in _PLAIN:
        return built
    if kind is dict:
        # leaves inline: most values are plain, and calls are what costs here
        return {k: v if type(v) in _PLAIN else to_json(v) for k, v in built.items()}
    if kind is list or kind is tuple:
        return [v if type(v) in _PLAIN else to_json(v) for v in built]
    if isinstance(built, enum.Enum):
        return built.value
    return to_json(built.to_json())


def encode(built: Any) -> str:
    """Serialise with the foundation-sdk encoder (the reference :func:`to_json` must match)."""
    return json.dumps(built, cls=JSONEncoder, sort_keys=True)


def render_dashboards(
    spec: ServiceSpec, templates: Templates
) -> tuple[list[model.Folder], list[model.Dashboard]]:
    team, service = folders_for(spec)
    boards = [build_dashboard(spec, t, service.uid) for t in selected_dashboards(spec, templates)]
    return [team, service], boards
