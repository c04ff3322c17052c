"""Dashboard templates -> grafana-foundation-sdk builders -> :class:`model.Dashboard`.

Every dashboard gets the same variables: datasource pickers for Prometheus, Loki and Tempo
(defaulting to the service's datasource uids), ``env`` (one environment at a time, the service's
first by default; "All" splits panels by environment, never sums them) and a hidden constant
``service``. Panel ids follow the template's file order, so alert rules can point at them
(``__panelId__``) and ids stay stable across renders.

A query may be an alert rule's own expression (``alert: <template>.<rule>``, with the rule's
threshold drawn) and a burn-rate panel plots the recorded error ratios of a tier's windows against
its factors: the panel an alert links to shows exactly what the alert evaluates.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote as url_quote

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import logs, loki, prometheus, stat, table, tempo, timeseries
from grafana_foundation_sdk.builders.gauge import Panel as GaugePanel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    GraphThresholdsStyleMode,
    VisibilityMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from platform_obs.provisioning import model, ownership
from platform_obs.provisioning.placeholders import Scope, expand, expand_query, expand_value
from platform_obs.provisioning.render import recording
from platform_obs.provisioning.render.scope import ENV_LABEL, dashboard_scope, env_values_query
from platform_obs.provisioning.spec import ServiceSpec
from platform_obs.provisioning.templates import (
    DashboardTemplate,
    PanelTemplate,
    TargetTemplate,
    Templates,
    ThresholdStep,
)

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
    env_query = env_values_query(spec)
    # One environment at a time, the service's primary one by default: production and staging
    # never blend. "All" stays available; every panel keeps the environment label, so it splits.
    primary = spec.environments[0]
    out.append(
        db.QueryVariable("env")
        .label("Environment")
        .datasource(_ds("prometheus"))
        .query(env_query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(False)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(selected=True, text=primary, value=primary))
    )
    out.append(db.ConstantVariable("service").value(spec.name))
    for var in template.variables:
        if var.query is not None:
            out.append(
                db.QueryVariable(var.name)
                .label(var.label or var.name)
                .datasource(_ds("prometheus"))
                .query(expand(var.query, scope))
                .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
                .sort(VariableSort.ALPHABETICAL_ASC)
                .multi(var.multi)
                .include_all(var.include_all)
                .all_value(".*")
                .current(VariableOption(selected=True, text="All", value="$__all"))
            )
            continue
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


@dataclass(frozen=True)
class _Query:
    """One rendered query of a panel: text, legend, and where it came from."""

    expr: str
    source: TargetTemplate
    legend: str | None = None
    #: ``<alert template>.<rule>`` or ``burn_rate:<slo>.<tier>`` the query plots.
    plots: str | None = None


def _query(panel: PanelTemplate, query: _Query, ref: str, scope: Scope) -> Any:
    target = query.source
    legend = query.legend if query.legend is not None else target.legend
    if panel.datasource == "prometheus":
        built: Any = (
            prometheus.Dataquery().expr(query.expr).ref_id(ref).datasource(_ds("prometheus"))
        )
        built = built.instant() if target.instant else built.range()
        if target.exemplars:
            built = built.exemplar(True)
        if legend:
            built = built.legend_format(expand(legend, scope))
    elif panel.datasource == "loki":
        built = loki.Dataquery().expr(query.expr).ref_id(ref).datasource(_ds("loki"))
        if legend:
            built = built.legend_format(expand(legend, scope))
    else:
        built = (
            tempo.TempoQuery()
            .query(query.expr)
            .query_type("traceql")
            .ref_id(ref)
            .limit(20)
            .datasource(_ds("tempo"))
        )
    return built


def _alert_query(
    spec: ServiceSpec, templates: Templates, ref: str, scope: Scope
) -> tuple[str, float | None, str | None]:
    """(expression, threshold, operator) of an alert rule, selecting with the dashboard's
    variables: the alert's own aggregation, windows and parameters for this service."""
    # Imported here: definitions imports this module (dashboard uids, selected dashboards).
    from platform_obs.provisioning.render.definitions import resolve_params

    template_id, _, rule_id = ref.partition(".")
    template = templates.alerts[template_id]
    rule = next(r for r in template.rules if r.id == rule_id)
    params = resolve_params(spec, template)
    alert_scope = Scope(
        values=scope.values,
        params=params,
        slo=scope.slo,
        functions=scope.functions,
        query_rewrite=scope.query_rewrite,
    )
    expr = " ".join(expand_query(rule.expr, alert_scope).split())
    threshold = expand_value(rule.threshold, alert_scope) if rule.op else None
    return expr, (float(threshold) if threshold is not None else None), rule.op


def _queries(
    spec: ServiceSpec, templates: Templates, panel: PanelTemplate, scope: Scope
) -> tuple[list[_Query], list[ThresholdStep]]:
    """The panel's queries and the threshold steps its alerts add."""
    queries: list[_Query] = []
    steps: list[ThresholdStep] = []
    for target in panel.targets:
        if target.alert is None:
            expand_expr = expand_query if panel.datasource == "prometheus" else expand
            queries.append(_Query(expand_expr(target.expr, scope), target))
            continue
        expr, threshold, op = _alert_query(spec, templates, target.alert, scope)
        queries.append(_Query(expr, target, plots=target.alert))
        if threshold is not None:
            steps.append(ThresholdStep("red", threshold if op in (">", ">=") else None))
            if op in ("<", "<="):
                steps.append(ThresholdStep("green", threshold))
    if panel.burn_rate is not None and spec.slos is not None:
        slo, _, tier = panel.burn_rate.partition(".")
        burn = next(
            t.burn_rate
            for t in templates.alerts.values()
            if t.burn_rate is not None and t.burn_rate.slo == slo
        )
        budget = float(scope.slo[f"{slo}.budget"])
        source = TargetTemplate(expr="", path=join_path(panel.path, "burn_rate"))
        pairs = burn.windows.get(spec.slos.window, {}).get(tier, ())
        windows = sorted(
            {w for p in pairs for w in (p.long, p.short)}, key=recording.window_seconds
        )
        for window in windows:
            selected = recording.sli_error_selector(slo, window, scope.values["selector"])
            queries.append(
                _Query(
                    f"{selected} / {fmt_number(budget)}",
                    source,
                    legend=f"{{{{{ENV_LABEL}}}}} {window}",
                    plots=f"burn_rate:{panel.burn_rate}",
                )
            )
        for pair in sorted(pairs, key=lambda p: p.factor):
            steps.append(ThresholdStep("orange" if tier != "page" else "red", pair.factor))
    return queries, steps


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}"


def fmt_number(value: float) -> str:
    return format(round(value, 12), ".15g")


def _thresholds(panel: PanelTemplate, extra: list[ThresholdStep], scope: Scope) -> Any:
    """The template's steps plus the thresholds of the alerts the panel plots."""
    valued = [s for s in extra if s.value is not None]
    if panel.thresholds:
        steps = [*panel.thresholds, *valued]
    elif extra:
        base = next((s for s in extra if s.value is None), ThresholdStep("green"))
        steps = [base, *valued]
    else:
        return None
    out = []
    for step in steps:
        value = expand_value(step.value, scope) if isinstance(step.value, str) else step.value
        out.append(Threshold(value=None if value is None else float(value), color=step.color))
    out = [out[0], *sorted(out[1:], key=lambda t: t.value or 0.0)]
    return db.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(out)


def _panel(
    spec: ServiceSpec, templates: Templates, panel: PanelTemplate, panel_id: int, scope: Scope
) -> tuple[Any, list[_Query]]:
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
        if panel.sort_desc:
            builder = builder.sort_by(
                [common_builders.TableSortByFieldState().display_name(panel.sort_desc).desc(True)]
            )
    elif kind == "gauge":
        builder = GaugePanel()
    elif kind == "alertlist":
        # No typed builder for Grafana's alert list: the generic panel with its documented options.
        builder = db.Panel().type("alertlist").options(_alert_list_options(spec))
    else:
        builder = (
            timeseries.Panel().fill_opacity(10).line_width(1).show_points(VisibilityMode.NEVER)
        )
    builder = (
        builder.id(panel_id)
        .title(expand(panel.title, scope))
        .span(panel.width)
        .height(panel.height)
    )
    if kind != "alertlist":
        builder = builder.datasource(_ds(panel.datasource))
    if panel.description:
        builder = builder.description(" ".join(expand(panel.description, scope).split()))
    if panel.unit:
        builder = builder.unit(panel.unit)
    if panel.decimals is not None:
        builder = builder.decimals(panel.decimals)
    if panel.min is not None:
        builder = builder.min(panel.min)
    if panel.max is not None:
        builder = builder.max(panel.max)
    if panel.no_value is not None:
        builder = builder.no_value(panel.no_value)
    queries, steps = _queries(spec, templates, panel, scope)
    for i, query in enumerate(queries):
        builder = builder.with_target(_query(panel, query, chr(ord("A") + i), scope))
    thresholds = _thresholds(panel, steps, scope)
    if thresholds is not None and kind != "alertlist":
        builder = builder.thresholds(thresholds)
        if kind == "timeseries":
            builder = builder.thresholds_style(
                common_builders.GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED)
            )
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
    return builder, queries


def _alert_list_options(spec: ServiceSpec) -> dict[str, Any]:
    """Grafana's alert list panel: this service's alert instances, firing and pending."""
    return {
        "viewMode": "list",
        "groupMode": "default",
        "groupBy": [],
        "maxItems": 20,
        "sortOrder": 3,  # importance
        "dashboardAlerts": False,
        "alertName": "",
        "alertInstanceLabelFilter": f'{{service="{spec.name}", {ENV_LABEL}=~"$env"}}',
        "datasource": "grafana",
        "folder": None,
        "stateFilter": {
            "firing": True,
            "pending": True,
            "noData": True,
            "normal": False,
            "error": True,
        },
        "showInstances": True,
    }


def dashboard_tags(spec: ServiceSpec, template: DashboardTemplate) -> list[str]:
    return sorted(
        {model.MANAGER, f"{model.SERVICE_TAG_PREFIX}{spec.name}", spec.team, *template.tags}
    )


def build_dashboard(
    spec: ServiceSpec, template: DashboardTemplate, folder_uid: str, templates: Templates
) -> model.Dashboard:
    """Render one dashboard template for one service."""
    scope = dashboard_scope(spec, templates)
    uid = dashboard_uid(spec.name, template.id)
    tags = dashboard_tags(spec, template)
    board = (
        db.Dashboard(expand(template.title, scope))
        .uid(uid)
        .description(template.description)
        .tags(tags)
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
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
    rendered: dict[int, list[_Query]] = {}
    for row in template.rows:
        panels = [p for p in row.panels if all(map(spec.satisfies, p.requires))]
        if panels:
            board = board.with_row(db.Row(row.title).id(next_row_id).collapsed(row.collapsed))
            for panel in panels:
                built, queries = _panel(spec, templates, panel, ids[panel.key], scope)
                board = board.with_panel(built)
                rendered[ids[panel.key]] = queries
        next_row_id += len(row.panels) + 1
    as_json = to_json(board.build())
    _attach_target_meta(as_json, template, rendered)
    return model.Dashboard(service=spec.name, folder_uid=folder_uid, model=as_json)


def _attach_target_meta(
    board: dict[str, Any], template: DashboardTemplate, rendered: dict[int, list[_Query]]
) -> None:
    """Record per query whether data is expected (read by end-to-end checks), its template,
    and the alert it plots (read by the alert/panel consistency check)."""
    for panel in board.get("panels", []):
        queries = rendered.get(panel.get("id"))
        if queries is None:
            continue
        for target, query in zip(panel.get("targets", []), queries, strict=False):
            meta: dict[str, Any] = {
                "template": template.file,
                "path": query.source.path,
                "expect_data": query.source.expect_data,
            }
            if query.source.reason:
                meta["reason"] = query.source.reason
            if query.plots:
                meta["plots"] = query.plots
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
    boards = [
        build_dashboard(spec, t, service.uid, templates)
        for t in selected_dashboards(spec, templates)
    ]
    return [team, service], boards
