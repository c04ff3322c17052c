"""Alert definitions -> a Prometheus rule file (for a Prometheus or Mimir ruler).

The same definitions as the Grafana rules; here the comparison is part of ``expr`` and routing
is left to Alertmanager (the ``team``/``service``/``severity`` labels), so ``receiver`` is carried
as a label for routing trees that want it.
"""

from __future__ import annotations

from typing import Any

from platform_obs.provisioning import model
from platform_obs.provisioning.durations import format_seconds, seconds
from platform_obs.provisioning.placeholders import Scope
from platform_obs.provisioning.render import recording
from platform_obs.provisioning.render.definitions import AlertDefinition
from platform_obs.provisioning.render.scope import base_values, query_rewrite, slo_values
from platform_obs.provisioning.spec import ServiceSpec, interval_seconds
from platform_obs.provisioning.templates import Templates

RECEIVER_LABEL = "receiver"


def group_name(service: str) -> str:
    return f"{model.MANAGER}-{service}"


def prometheus_rule(defn: AlertDefinition) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": defn.alert, "expr": defn.condition_expr}
    if seconds(defn.for_):
        rule["for"] = defn.for_
    rule["labels"] = dict(sorted({**defn.labels, RECEIVER_LABEL: defn.receiver}.items()))
    rule["annotations"] = dict(sorted((k, v) for k, v in defn.annotations.items() if v))
    return rule


def render_rule_file(spec: ServiceSpec, defns: list[AlertDefinition]) -> model.PrometheusRuleFile:
    group = {
        "name": group_name(spec.name),
        "interval": format_seconds(interval_seconds(spec)),
        "rules": [prometheus_rule(d) for d in defns],
    }
    return model.PrometheusRuleFile(service=spec.name, document={"groups": [group]})


def render_recording_file(
    spec: ServiceSpec, templates: Templates
) -> model.PrometheusRuleFile | None:
    """The service's SLO recording rules (``slo:sli_error:ratio_rate<window>``), or ``None``."""
    scope = Scope(
        values=base_values(spec, dashboard=False),
        slo=slo_values(spec),
        query_rewrite=query_rewrite(spec, dashboard=False),
    )
    rules = recording.recording_rules(spec, templates, scope)
    if not rules:
        return None
    group = {
        "name": recording.group_name(spec.name),
        "interval": format_seconds(interval_seconds(spec)),
        "rules": rules,
    }
    return model.PrometheusRuleFile(service=spec.name, document={"groups": [group]}, kind="slo")
