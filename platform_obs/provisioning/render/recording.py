"""SLO recording rules: each SLI's error ratio recorded once per window, read by everything else.

Naming follows Sloth so a platform that knows one knows the other:

* ``slo:sli_error:ratio_rate<window>`` — share of bad events over ``<window>`` (``5m``, ``1h``,
  ``3d`` ...), for every window a burn-rate tier of the SLO period uses;
* ``slo:sli_error:ratio_rate<period>`` — the same over the whole SLO period (``30d``), the average
  of the shortest window's recorded ratio (as Sloth computes it), so no panel or alert reads a
  period of raw samples.

Every recorded series keeps the labels that identify one service in one environment
(``${service_labels}``) and carries ``slo="availability"`` / ``slo="latency"``. Burn-rate alerts
(both outputs) and the SLO dashboard read only these series; the Prometheus rule file
``prometheus/<service>.slo.rules.yaml`` records them (see docs/service-config.md).
"""

from __future__ import annotations

from typing import Any

from platform_obs.provisioning import model
from platform_obs.provisioning.durations import seconds
from platform_obs.provisioning.placeholders import PlaceholderError, Scope, expand_query
from platform_obs.provisioning.render import label_scheme
from platform_obs.provisioning.spec import ServiceSpec
from platform_obs.provisioning.templates import AlertTemplate, BurnRate, Templates

SLI_ERROR_PREFIX = "slo:sli_error:ratio_rate"
#: Label telling the SLIs of one service apart.
SLO_LABEL = "slo"


def sli_error_name(window: str) -> str:
    return f"{SLI_ERROR_PREFIX}{window}"


def sli_error_selector(slo: str, window: str, selector: str) -> str:
    """The recorded error ratio of one SLO over ``window`` for ``selector`` (label matchers)."""
    return f'{sli_error_name(window)}{{{selector}, {SLO_LABEL}="{slo}"}}'


def window_seconds(window: str) -> tuple[float, str]:
    """Sort key of windows: by length."""
    return (seconds(window) or 0.0, window)


def burn_windows(burn: BurnRate, period: str) -> list[str]:
    """Every window a tier of ``period`` uses, shortest first."""
    found = {
        w
        for pairs in burn.windows.get(period, {}).values()
        for p in pairs
        for w in (p.long, p.short)
    }
    return sorted(found, key=window_seconds)


def sli_error_function(spec: ServiceSpec, templates: Templates, selector: str) -> Any:
    """``${sli_error:<slo>}`` (over the SLO period), ``${sli_error:<slo>.<window>}`` and
    ``${sli_error:<slo>.shortest}``: the recorded series, selected for the service."""

    def sli_error(arg: str) -> str:
        slo, _, window = arg.partition(".")
        burns = {
            t.burn_rate.slo: t.burn_rate for t in slo_templates(spec, templates) if t.burn_rate
        }
        if slo not in burns or spec.slos is None:
            raise PlaceholderError(
                f"${{sli_error:{arg}}}",
                f"no recorded SLI {slo!r} for this service",
                "an SLO the service declares: " + ", ".join(sorted(burns)),
            )
        windows = burn_windows(burns[slo], spec.slos.window)
        if not window:
            window = spec.slos.window
        elif window == "shortest":
            window = windows[0]
        elif window not in windows:
            raise PlaceholderError(
                f"${{sli_error:{arg}}}",
                f"window {window!r} is not recorded",
                "one of " + ", ".join(["shortest", *windows]) + ", or none (the SLO period)",
            )
        return sli_error_selector(slo, window, selector)

    return sli_error


def slo_templates(spec: ServiceSpec, templates: Templates) -> list[AlertTemplate]:
    """Burn-rate templates whose SLO the service declares (switched off or not: the SLO dashboard
    reads their recordings too)."""
    if spec.slos is None:
        return []
    return [
        t
        for t in templates.alerts.values()
        if t.burn_rate is not None and all(map(spec.satisfies, t.requires))
    ]


def recording_rules(spec: ServiceSpec, templates: Templates, scope: Scope) -> list[dict[str, Any]]:
    """The recording rules of a service's SLOs (empty without SLOs)."""
    assert spec.slos is not None or not slo_templates(spec, templates)
    rules: list[dict[str, Any]] = []
    for template in slo_templates(spec, templates):
        burn = template.burn_rate
        assert burn is not None and spec.slos is not None
        period = spec.slos.window
        windows = burn_windows(burn, period)
        if not windows:
            continue
        labels = {SLO_LABEL: burn.slo}
        if spec.metric_labels == label_scheme.TARGET_INFO:
            # The recorded series are selected like the raw ones: by the service's job.
            labels[label_scheme.JOB] = label_scheme.job_value(spec.name, spec.namespace)
        for window in windows:
            values = {**scope.values, "window": window}
            expr = expand_query(
                burn.error_ratio,
                Scope(
                    values=values,
                    params=scope.params,
                    slo=scope.slo,
                    query_rewrite=scope.query_rewrite,
                ),
            )
            rules.append(
                {
                    "record": sli_error_name(window),
                    "expr": " ".join(expr.split()),
                    "labels": dict(labels),
                }
            )
        base = sli_error_selector(burn.slo, windows[0], scope.values["selector"])
        rules.append(
            {
                "record": sli_error_name(period),
                "expr": f"avg_over_time({base}[{period}])",
                "labels": dict(labels),
            }
        )
    return rules


def group_name(service: str) -> str:
    return f"{model.MANAGER}-{service}-slo"
