"""Alert definitions -> Grafana-managed rule groups in the provisioning-API shape.

Each rule queries Prometheus (refId ``A``), reduces to the last value (``B``) and applies the
condition (``C``). Templates with a separate threshold use a threshold expression; expressions
that already compare (burn rates, custom alerts) fire for every series they return, like
Prometheus does, via ``$B == $B`` (true for any returned value). Routing uses per-rule
``notification_settings`` so the global notification policy tree is never touched.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import alerting, expr, prometheus
from grafana_foundation_sdk.models.alerting import RelativeTimeRange
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from platform_obs.provisioning import model
from platform_obs.provisioning.render.dashboards import to_json
from platform_obs.provisioning.render.definitions import EVALUATORS, AlertDefinition
from platform_obs.provisioning.render.scope import ENV_LABEL
from platform_obs.provisioning.spec import ServiceSpec, interval_seconds

EXPR_UID = "__expr__"
ORG_ID = 1
#: Notifications group per environment: staging noise never rides on a production page.
GROUP_BY = ("alertname", "grafana_folder", ENV_LABEL)
#: Instant queries: the time range only bounds the query; windows live in the expression.
QUERY_RANGE_SECONDS = 600


def group_title(spec: ServiceSpec) -> str:
    return spec.name


def _expr_ds() -> DataSourceRef:
    return DataSourceRef(type_val=EXPR_UID, uid=EXPR_UID)


def build_rule(
    defn: AlertDefinition, datasource_uid: str, folder_uid: str, group: str
) -> dict[str, Any]:
    query = (
        alerting.Query("A")
        .datasource_uid(datasource_uid)
        .relative_time_range(RelativeTimeRange(from_val=QUERY_RANGE_SECONDS, to=0))
        .model(
            prometheus.Dataquery()
            .expr(defn.expr)
            .instant()
            .ref_id("A")
            .datasource(DataSourceRef(type_val="prometheus", uid=datasource_uid))
        )
    )
    reduce = (
        alerting.Query("B")
        .datasource_uid(EXPR_UID)
        .model(expr.TypeReduce().expression("A").reducer("last").ref_id("B").datasource(_expr_ds()))
    )
    if defn.op is not None:
        assert defn.threshold is not None, f"{defn.rule_id}: a comparison needs a threshold"
        condition: Any = (
            expr.TypeThreshold()
            .expression("B")
            .ref_id("C")
            .datasource(_expr_ds())
            .conditions(
                [
                    expr.ExprTypeThresholdConditions().evaluator(
                        expr.ExprTypeThresholdConditionsEvaluator()
                        .type(EVALUATORS[defn.op])  # type: ignore[arg-type]  # values are the Literal set
                        .params([defn.threshold])
                    )
                ]
            )
        )
    else:
        condition = expr.TypeMath().expression("$B == $B").ref_id("C").datasource(_expr_ds())
    annotations = {k: v for k, v in defn.annotations.items() if v}
    if defn.dashboard_uid is not None and defn.panel_id is not None:
        annotations["__dashboardUid__"] = defn.dashboard_uid
        annotations["__panelId__"] = str(defn.panel_id)
    rule = (
        alerting.Rule(defn.title)
        .uid(defn.uid)
        .org_id(ORG_ID)
        .folder_uid(folder_uid)
        .rule_group(group)
        .condition("C")
        .with_query(query)
        .with_query(reduce)
        .with_query(alerting.Query("C").datasource_uid(EXPR_UID).model(condition))
        .for_val(defn.for_)
        .labels(dict(sorted(defn.labels.items())))
        .annotations(dict(sorted(annotations.items())))
        .no_data_state(defn.no_data)  # type: ignore[arg-type]
        .exec_err_state(defn.exec_err)  # type: ignore[arg-type]
        .is_paused(False)
        .notification_settings(
            alerting.NotificationSettings().receiver(defn.receiver).group_by(list(GROUP_BY))
        )
    )
    return to_json(rule.build())


def render_rule_group(
    spec: ServiceSpec, folder_uid: str, defns: list[AlertDefinition]
) -> model.RuleGroup:
    group = group_title(spec)
    rules = tuple(build_rule(d, spec.datasources.prometheus, folder_uid, group) for d in defns)
    return model.RuleGroup(
        service=spec.name,
        folder_uid=folder_uid,
        title=group,
        interval_seconds=interval_seconds(spec),
        rules=rules,
    )
