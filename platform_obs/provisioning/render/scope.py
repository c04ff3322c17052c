"""What a service's placeholders expand to: its selectors and SLO numbers.

Dashboards select with Grafana variables (``$service``, ``$env``) so one dashboard serves every
environment; alert rules select with the service's concrete values.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from platform_obs import conventions
from platform_obs.provisioning.placeholders import Scope
from platform_obs.provisioning.render import label_scheme
from platform_obs.provisioning.render.recording import sli_error_function
from platform_obs.provisioning.spec import ServiceSpec
from platform_obs.provisioning.templates import Templates
from platform_obs.provisioning.units import format_latency

SERVICE_LABEL = conventions.prom_label(conventions.SERVICE_NAME)
ENV_LABEL = conventions.prom_label(conventions.DEPLOYMENT_ENVIRONMENT)
NAMESPACE_LABEL = conventions.prom_label(conventions.SERVICE_NAMESPACE)


def quote(value: str) -> str:
    """A PromQL / LogQL / TraceQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _regex_escape(value: str) -> str:
    return "".join("\\" + c if c in r".^$*+?()[]{}|\\" else c for c in value)


def _env_pattern(spec: ServiceSpec, *, dashboard: bool) -> str:
    return '"$env"' if dashboard else quote("|".join(_regex_escape(e) for e in spec.environments))


def series_selector(spec: ServiceSpec, *, dashboard: bool) -> str:
    """Label matchers selecting the service's series (without braces)."""
    if spec.metric_labels == label_scheme.TARGET_INFO:
        # The environment is on target_info only: query_rewrite() joins and filters on it.
        service = "$service" if dashboard else spec.name
        return f"{label_scheme.JOB}={quote(label_scheme.job_value(service, spec.namespace))}"
    if dashboard:
        parts = [f'{SERVICE_LABEL}="$service"', f'{ENV_LABEL}=~"$env"']
    elif len(spec.environments) == 1:  # `=` for one value: cheaper, and what people expect
        parts = [
            f"{SERVICE_LABEL}={quote(spec.name)}",
            f"{ENV_LABEL}={quote(spec.environments[0])}",
        ]
    else:
        envs = "|".join(_regex_escape(e) for e in spec.environments)
        parts = [f"{SERVICE_LABEL}={quote(spec.name)}", f"{ENV_LABEL}=~{quote(envs)}"]
    if spec.namespace:
        parts.insert(1, f"{NAMESPACE_LABEL}={quote(spec.namespace)}")
    return ", ".join(parts)


def query_rewrite(spec: ServiceSpec, *, dashboard: bool) -> Callable[[str], str] | None:
    """The label scheme's rewrite of a whole query (``None`` when series carry every label)."""
    if spec.metric_labels != label_scheme.TARGET_INFO:
        return None
    join = label_scheme.Join(
        series_selector(spec, dashboard=dashboard),
        f"{ENV_LABEL}=~{_env_pattern(spec, dashboard=dashboard)}",
    )
    return partial(label_scheme.apply, join=join)


def env_values_query(spec: ServiceSpec) -> str:
    """The dashboards' ``$env`` variable query (Grafana's ``label_values``)."""
    if spec.metric_labels == label_scheme.TARGET_INFO:
        job = label_scheme.job_value("$service", spec.namespace)
        return f"label_values({label_scheme.TARGET_INFO_METRIC}{{job={quote(job)}}}, {ENV_LABEL})"
    return f'label_values({{{SERVICE_LABEL}="$service"}}, {ENV_LABEL})'


def service_labels(spec: ServiceSpec) -> str:
    """The labels that identify one service in one environment: what every aggregation keeps,
    so panels split by environment and alerts fire per environment."""
    labels = [SERVICE_LABEL, ENV_LABEL]
    if spec.namespace:
        labels.insert(1, NAMESPACE_LABEL)
    return ", ".join(labels)


def le_matcher(threshold: float) -> str:
    """Matcher for the bucket boundary ``threshold``: exporters write ``1`` or ``1.0``."""
    forms = sorted({format(threshold, ".15g"), repr(float(threshold))})
    if len(forms) == 1:
        return f"le={quote(forms[0])}"
    return "le=~" + quote("|".join(_regex_escape(f) for f in forms))


def _ratio(x: float) -> float:
    return round(x, 12)


def slo_values(spec: ServiceSpec) -> dict[str, Any]:
    """Values of ``${slo:...}`` for a service (only the SLOs it declares)."""
    slos = spec.slos
    if slos is None:
        return {}
    out: dict[str, Any] = {"window": slos.window}
    if slos.availability is not None:
        out["availability.objective_percent"] = slos.availability
        out["availability.objective"] = _ratio(slos.availability / 100)
        out["availability.budget"] = _ratio(1 - slos.availability / 100)
    if slos.latency is not None:
        out["latency.objective_percent"] = slos.latency.objective
        out["latency.objective"] = _ratio(slos.latency.objective / 100)
        out["latency.budget"] = _ratio(1 - slos.latency.objective / 100)
        out["latency.threshold"] = slos.latency.threshold
        out["latency.threshold_text"] = format_latency(slos.latency.threshold)
        out["latency.le"] = le_matcher(slos.latency.threshold)
    return out


def base_values(spec: ServiceSpec, *, dashboard: bool) -> dict[str, str]:
    return {
        "selector": series_selector(spec, dashboard=dashboard),
        "service_labels": service_labels(spec),
        # The process a series comes from (scrape target, or service.instance.id via OTLP).
        "instance_label": "instance",
        "log_selector": f'{conventions.LOKI_SERVICE_LABEL}="$service"'
        if dashboard
        else f"{conventions.LOKI_SERVICE_LABEL}={quote(spec.name)}",
        "trace_selector": f'{conventions.TEMPO_SERVICE_ATTRIBUTE}="$service" && '
        f'resource.{conventions.DEPLOYMENT_ENVIRONMENT}=~"$env"',
        "service_name": spec.name,
        "team": spec.team,
        "runbook_base_url": spec.runbook_base_url,
    }


def dashboard_scope(spec: ServiceSpec, templates: Templates | None = None) -> Scope:
    values = base_values(spec, dashboard=True)
    functions = {}
    if templates is not None:
        functions["sli_error"] = sli_error_function(spec, templates, values["selector"])
    return Scope(
        values=values,
        slo=slo_values(spec),
        functions=functions,
        query_rewrite=query_rewrite(spec, dashboard=True),
    )
