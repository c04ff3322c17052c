"""The shared alert definition: one source for Grafana-managed rules and Prometheus rules.

Alert templates and custom alerts are resolved per service into :class:`AlertDefinition` objects
(parameters applied, placeholders expanded). The Grafana and Prometheus renderers only change the
shape, so both outputs always say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from platform_obs.provisioning import model
from platform_obs.provisioning.placeholders import Scope, expand, expand_query, expand_value
from platform_obs.provisioning.render.dashboards import dashboard_uid, selected_dashboards
from platform_obs.provisioning.render.recording import sli_error_selector
from platform_obs.provisioning.render.scope import (
    ENV_LABEL,
    base_values,
    query_rewrite,
    series_selector,
    slo_values,
)
from platform_obs.provisioning.spec import ServiceSpec
from platform_obs.provisioning.templates import (
    AlertTemplate,
    BurnRate,
    DashboardTemplate,
    RuleTemplate,
    Templates,
)

#: Grafana threshold evaluator per comparison.
EVALUATORS = {">": "gt", "<": "lt", ">=": "gt", "<=": "lt"}


@dataclass(frozen=True)
class AlertDefinition:
    service: str
    uid: str
    #: Prometheus ``alert:`` name (alertname).
    alert: str
    #: Grafana rule title (unique within the service folder).
    title: str
    #: A value expression when ``op``/``threshold`` are set, else a full alerting condition.
    expr: str
    for_: str
    labels: dict[str, str]
    annotations: dict[str, str]
    receiver: str
    #: Where it came from, for messages: a template file or the service config, and a key path.
    source_file: str
    source_path: str
    template: str | None = None
    rule_id: str | None = None
    op: str | None = None
    threshold: float | None = None
    dashboard_uid: str | None = None
    panel_id: int | None = None
    no_data: str = "NoData"
    exec_err: str = "Error"
    meta: dict[str, Any] = field(default_factory=dict)
    #: Definitions of one shape differ only in the service's name, team and file (see
    #: ``render.service``): checks that the names cannot change run once per shape.
    shape: str | None = field(default=None, compare=False, repr=False)

    @property
    def condition_expr(self) -> str:
        """The expression with its comparison: what Prometheus evaluates."""
        if self.op is None:
            return self.expr
        return f"({self.expr}) {self.op} {format(self.threshold, '.15g')}"


def fmt_number(value: float) -> str:
    return format(round(value, 12), ".15g")


def burn_rate_expr(
    burn: BurnRate, tier: str, window_period: str, budget: float, scope: Scope
) -> str:
    """``(ratio(long) > f*budget and ratio(short) > f*budget) or (...)`` for one tier, on the
    recorded error ratios (:mod:`~platform_obs.provisioning.render.recording`)."""
    pairs = burn.windows.get(window_period, {}).get(tier, ())
    selector = scope.values["selector"]
    clauses = []
    for pair in pairs:
        limit = fmt_number(pair.factor * budget)
        long_ = sli_error_selector(burn.slo, pair.long, selector)
        short = sli_error_selector(burn.slo, pair.short, selector)
        clauses.append(f"({long_} > {limit} and {short} > {limit})")
    return " or ".join(clauses)


def resolve_params(spec: ServiceSpec, template: AlertTemplate) -> dict[str, Any]:
    """Template defaults (by service tier), then the service's overrides, plus implicit ones."""
    params: dict[str, Any] = {
        n: p.default_for(spec.tier, spec.satisfies) for n, p in template.parameters.items()
    }
    params["receiver"] = spec.receiver
    params["runbook_url"] = None  # filled from the template's runbook_url below
    overrides = spec.alerts.get(template.id)
    if isinstance(overrides, dict):
        params.update(overrides)
    for name, param in template.parameters.items():  # 250ms -> 0.25, 2% -> 0.02, 1GiB -> bytes
        if name in params:
            normalised = param.normalise(params[name])
            params[name] = params[name] if normalised is None else normalised
    return params


def severity_label(spec: ServiceSpec, severity: str) -> str:
    """``critical`` pages only in the service's paging environments; elsewhere it is sent as a
    ``warning``. Per environment in one rule: a label template both Prometheus and Grafana expand."""
    if severity != "critical":
        return severity
    pages = [e for e in spec.environments if e in spec.pages_in]
    if len(pages) == len(spec.environments):
        return "critical"
    if not pages:
        return "warning"
    names = " ".join(f'"{e}"' for e in pages)
    return f"{{{{ if eq $labels.{ENV_LABEL} {names} }}}}critical{{{{ else }}}}warning{{{{ end }}}}"


def _per_environment(spec: ServiceSpec, expr: str, scope: Scope) -> str:
    """``expr`` once per environment with an ``=`` selector, joined by ``or``."""
    parts = []
    for env in spec.environments:
        one = replace(spec, environments=(env,))
        values = {**scope.values, "selector": series_selector(one, dashboard=False)}
        parts.append(
            expand_query(
                expr,
                Scope(
                    values=values,
                    params=scope.params,
                    slo=scope.slo,
                    query_rewrite=scope.query_rewrite,
                ),
            )
        )
    return " or ".join(parts)


def applicable_templates(spec: ServiceSpec, templates: Templates) -> list[AlertTemplate]:
    """Templates switched on for a service: all that apply, minus the ones set to ``false``."""
    return [
        t
        for t in templates.alerts.values()
        if spec.alerts.get(t.id, True) is not False and all(map(spec.satisfies, t.requires))
    ]


def alert_scope(spec: ServiceSpec, template: AlertTemplate, params: dict[str, Any]) -> Scope:
    scope = Scope(
        values=base_values(spec, dashboard=False),
        params=params,
        slo=slo_values(spec),
        query_rewrite=query_rewrite(spec, dashboard=False),
    )
    burn = template.burn_rate
    if burn is None or spec.slos is None:
        return scope
    budget = float(scope.slo.get(f"{burn.slo}.budget", 0.0))
    period = spec.slos.window
    return Scope(
        values=scope.values,
        params=params,
        slo=scope.slo,
        functions={"burn_rate": lambda tier: burn_rate_expr(burn, tier, period, budget, scope)},
        query_rewrite=scope.query_rewrite,
    )


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def template_alerts(
    spec: ServiceSpec,
    template: AlertTemplate,
    templates: Templates,
    boards: dict[str, DashboardTemplate] | None = None,
) -> list[AlertDefinition]:
    params = resolve_params(spec, template)
    scope = alert_scope(spec, template, params)
    if params["runbook_url"] is None:
        params["runbook_url"] = expand(template.runbook_url, scope)
    if boards is None:
        boards = {t.id: t for t in selected_dashboards(spec, templates)}
    out = []
    for rule in template.rules:
        if not _truthy(expand_value(rule.enabled, scope)):
            continue
        out.append(_definition(spec, template, rule, scope, params, boards))
    return out


def _definition(
    spec: ServiceSpec,
    template: AlertTemplate,
    rule: RuleTemplate,
    scope: Scope,
    params: dict[str, Any],
    boards: dict[str, Any],
) -> AlertDefinition:
    severity = severity_label(spec, str(expand_value(rule.severity, scope)))
    labels = {
        **spec.labels,
        **{k: expand(v, scope) for k, v in rule.labels.items()},
        "severity": severity,
        "team": spec.team,
        "service": spec.name,
        model.MANAGED_BY_LABEL: model.MANAGER,
    }
    annotations = {
        "summary": expand(rule.summary, scope),
        "description": expand(rule.description, scope),
        "runbook_url": str(params["runbook_url"]),
    }
    board_uid = panel_id = None
    board = boards.get(rule.dashboard or "")
    if board is not None and rule.panel is not None:
        panel = next(p for row in board.rows for p in row.panels if p.key == rule.panel)
        if all(map(spec.satisfies, panel.requires)):
            board_uid, panel_id = dashboard_uid(spec.name, board.id), board.panel_ids()[rule.panel]
    threshold = expand_value(rule.threshold, scope) if rule.op else None
    expr = (
        _per_environment(spec, rule.expr, scope)
        if rule.per_environment
        else expand_query(rule.expr, scope)
    )
    alert = expand(rule.alert, scope)
    return AlertDefinition(
        service=spec.name,
        uid=model.stable_uid(spec.name, template.id, rule.id),
        alert=alert,
        # Grafana's alertname is the rule title: the same name as the Prometheus rule, so
        # silences, routes and inhibitions carry over between the two outputs.
        title=alert,
        expr=" ".join(expr.split()),
        for_=str(expand_value(rule.for_, scope)),
        labels=labels,
        annotations=annotations,
        receiver=str(params["receiver"]),
        source_file=template.file,
        source_path=rule.path,
        template=template.id,
        rule_id=rule.id,
        op=rule.op,
        threshold=float(threshold) if threshold is not None else None,
        dashboard_uid=board_uid,
        panel_id=panel_id,
        no_data=rule.no_data,
        exec_err=rule.exec_err,
        meta={"config": spec.file},
    )


def custom_alerts(spec: ServiceSpec) -> list[AlertDefinition]:
    out = []
    for custom in spec.custom_alerts:
        labels = {
            **spec.labels,
            **custom.labels,
            "severity": severity_label(spec, custom.severity),
            "team": spec.team,
            "service": spec.name,
            model.MANAGED_BY_LABEL: model.MANAGER,
        }
        out.append(
            AlertDefinition(
                service=spec.name,
                uid=model.stable_uid(spec.name, "custom", custom.name),
                alert=custom.name,
                title=custom.name,
                expr=" ".join(custom.expr.split()),
                for_=custom.for_,
                labels=labels,
                annotations={
                    "summary": custom.summary,
                    "description": custom.description,
                    "runbook_url": custom.runbook_url,
                },
                receiver=custom.receiver or spec.receiver,
                source_file=spec.file,
                source_path=custom.path,
                no_data=custom.no_data,
                meta={"config": spec.file, "custom": True},
            )
        )
    return out


def resolve_alerts(spec: ServiceSpec, templates: Templates) -> list[AlertDefinition]:
    """Every alert of a service: template rules (in template order), then custom alerts."""
    out: list[AlertDefinition] = []
    boards = {t.id: t for t in selected_dashboards(spec, templates)}
    for template in applicable_templates(spec, templates):
        out.extend(template_alerts(spec, template, templates, boards))
    out.extend(custom_alerts(spec))
    return out
