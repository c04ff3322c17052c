"""Offline checks over service specs and rendered objects; every problem at once.

* specs against templates: template ids, parameter names and types, SLO requirements;
* every PromQL expression parsed and type-checked (``promql_parser``) after Grafana macros and
  variables are replaced by sample values, and its metric names checked against the conventions
  (custom alerts may use any metric: only their syntax is checked);
* Grafana rule-group and dashboard constraints the API would reject (uids, titles, intervals,
  conditions, states), and duplicates across services;
* ``promtool check rules`` on the Prometheus output when promtool is installed.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil
import subprocess
import tempfile
from collections.abc import Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import promql_parser

from platform_obs import conventions
from platform_obs.provisioning import (
    durations,
    gotemplate,
    jsontext,
    limits,
    outputs,
    ownership,
    units,
)
from platform_obs.provisioning.model import (
    Dashboard,
    Problem,
    PrometheusRuleFile,
    Rendered,
    RuleGroup,
)
from platform_obs.provisioning.placeholders import (
    RECORDED_PREFIXES,
    Scope,
    did_you_mean,
    expand_value,
    known_labels,
    known_series,
)
from platform_obs.provisioning.render.dashboards import TARGET_META_KEY
from platform_obs.provisioning.render.definitions import (
    AlertDefinition,
    applicable_templates,
    resolve_params,
)
from platform_obs.provisioning.render.scope import series_selector, slo_values
from platform_obs.provisioning.spec import ServiceSpec
from platform_obs.provisioning.templates import IMPLICIT_PARAMS, Parameter, Templates
from platform_obs.provisioning.yamlsrc import join

UID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
UID_MAX = 40
TITLE_MAX = 190
NO_DATA_STATES = ("NoData", "Alerting", "OK", "KeepLast")
EXEC_ERR_STATES = ("Error", "Alerting", "OK", "KeepLast")
#: Dashboard variables every rendered dashboard defines.
STANDARD_VARIABLES = frozenset({"prometheus", "loki", "tempo", "env", "service"})
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
#: Sample values for Grafana macros so expressions parse; durations where durations go.
_MACRO_SAMPLES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "__auto": "1m",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "60000",
    "__rate_interval_ms": "60000",
}


# --- specs against templates ------------------------------------------------------------------


def check_specs(specs: Sequence[ServiceSpec], templates: Templates) -> list[Problem]:
    problems: list[Problem] = []
    for spec in specs:
        problems.extend(check_spec(spec, templates))
    return problems


def check_spec(spec: ServiceSpec, templates: Templates) -> list[Problem]:
    problems: list[Problem] = []
    interval = durations.seconds(spec.evaluation_interval) or 0
    if interval <= 0 or interval % 10:
        problems.append(
            spec.problem(
                "evaluation_interval",
                "must be a positive multiple of 10s",
                spec.evaluation_interval,
                "e.g. 10s, 30s, 1m",
            )
        )
    for i, board in enumerate(spec.dashboards or ()):
        path = join("dashboards", i)
        template = templates.dashboards.get(board)
        if template is None:
            problems.append(
                spec.problem(
                    path,
                    f"unknown dashboard{did_you_mean(board, templates.dashboards)}",
                    board,
                    "one of " + ", ".join(sorted(templates.dashboards)),
                )
            )
            continue
        for req in template.requires:
            if not spec.satisfies(req):
                problems.append(
                    spec.problem(
                        path,
                        f"dashboard needs {req} configured ({template.file})",
                        board,
                        f"a {req} section under slos, or drop this dashboard",
                    )
                )
    for i, env in enumerate(spec.paging_environments or ()):
        if env not in spec.environments:
            problems.append(
                spec.problem(
                    join("paging_environments", i),
                    "not one of the service's environments",
                    env,
                    "one of " + ", ".join(spec.environments),
                )
            )
    if spec.slos and spec.slos.latency is not None:
        threshold = spec.slos.latency.threshold
        buckets = conventions.HTTP_SERVER_REQUEST_DURATION.buckets or ()
        if not _on_boundary(threshold, buckets):
            problems.append(
                spec.problem(
                    "slos.latency.threshold",
                    "latency threshold must be a histogram bucket boundary (for an exact SLI)",
                    units.format_latency(threshold),
                    "one of " + ", ".join(units.format_latency(b) for b in buckets),
                )
            )
    problems.extend(_can_fire(spec, templates))
    for key, overrides in spec.alerts.items():
        path = join("alerts", key)
        alert_template = templates.alerts.get(key)
        if alert_template is None:
            problems.append(
                spec.problem(
                    path,
                    f"unknown alert template{did_you_mean(key, templates.alerts)}",
                    key,
                    "one of " + ", ".join(sorted(templates.alerts)),
                )
            )
            continue
        missing = [r for r in alert_template.requires if not spec.satisfies(r)]
        if missing and overrides is not False:
            problems.append(
                spec.problem(
                    path,
                    f"alert template needs {', '.join(missing)} configured",
                    key,
                    "the SLO under slos:, or `false` to leave the template out",
                )
            )
        if isinstance(overrides, dict):
            problems.extend(_check_params(spec, path, overrides, alert_template.parameters))
    if spec.slos is not None:
        for applicable in applicable_templates(spec, templates):
            burn = applicable.burn_rate
            if burn is not None and spec.slos.window not in burn.windows:
                problems.append(
                    spec.problem(
                        "slos.window",
                        f"no burn-rate windows for this SLO period in {applicable.file}",
                        spec.slos.window,
                        "one of " + ", ".join(sorted(burn.windows)),
                    )
                )
    # Grafana rule uids are derived from names in lower case: names differing only in case clash.
    names = {rule.alert.lower(): rule.alert for t in templates.alerts.values() for rule in t.rules}
    for custom in spec.custom_alerts:
        taken = names.get(custom.name.lower())
        if taken is not None:
            same = taken == custom.name
            problems.append(
                spec.problem(
                    join(custom.path, "name"),
                    "alert name already used"
                    + ("" if same else f" (as {taken!r}; names may not differ only in case)"),
                    custom.name,
                    "a name no template or other custom alert uses",
                )
            )
        names.setdefault(custom.name.lower(), custom.name)
    problems.extend(_template_problems(spec))
    return problems


def _on_boundary(value: float, buckets: Sequence[float]) -> bool:
    return any(abs(value - b) < 1e-9 for b in buckets)


def _burn_tier(rule_expr: str) -> str | None:
    match = re.search(r"\$\{burn_rate:([A-Za-z0-9_-]+)\}", rule_expr)
    return match[1] if match else None


def _can_fire(spec: ServiceSpec, templates: Templates) -> list[Problem]:
    """Alerts that can never fire, refused: latencies past the histogram's largest bucket, and
    burn-rate tiers whose threshold (factor x budget) is 1 or more on a 0..1 ratio."""
    problems = []
    for template in applicable_templates(spec, templates):
        overrides = spec.alerts.get(template.id)
        if isinstance(overrides, dict) and any(
            n in template.parameters and template.parameters[n].check(v)
            for n, v in overrides.items()
        ):
            continue  # a bad value: reported by _check_params
        params = resolve_params(spec, template)
        for name, param in template.parameters.items():
            metric = conventions.METRICS.get(param.histogram or "")
            value = params.get(name)
            if metric is None or not isinstance(value, int | float) or not metric.buckets:
                continue
            path = join(join("alerts", template.id), name)
            top = max(metric.buckets)
            if value >= top:
                problems.append(
                    spec.problem(
                        path,
                        f"{template.id} can never fire: {metric.name}'s largest bucket is "
                        f"{units.format_latency(top)}, so its quantiles never exceed that",
                        units.format_latency(value),
                        f"a latency below {units.format_latency(top)}",
                    )
                )
        burn = template.burn_rate
        if burn is None or spec.slos is None:
            continue
        budget = float(slo_values(spec).get(f"{burn.slo}.budget", 0.0))
        scope = Scope(params=params)
        for rule in template.rules:
            tier = _burn_tier(rule.expr)
            if tier is None or str(expand_value(rule.enabled, scope)).lower() != "true":
                continue
            for pair in burn.windows.get(spec.slos.window, {}).get(tier, ()):
                if pair.factor * budget < 1:
                    continue
                objective = f"slos.{burn.slo}.objective"
                percent = (1 - 1 / pair.factor) * 100
                problems.append(
                    spec.problem(
                        objective,
                        f"the {tier} tier of {template.id} can never fire: its threshold "
                        f"{pair.factor:g} x budget {budget:g} = {pair.factor * budget:.3g} is "
                        "not below 1, and an error ratio never exceeds 1",
                        _objective_value(spec, burn.slo),
                        f"an objective above {percent:.4g}%, or alerts.{template.id}.{tier}: false",
                    )
                )
                break
    return problems


def _objective_value(spec: ServiceSpec, slo: str) -> float | None:
    assert spec.slos is not None
    if slo == "availability":
        return spec.slos.availability
    return spec.slos.latency.objective if spec.slos.latency else None


def check_spec_warnings(spec: ServiceSpec, templates: Templates) -> list[Problem]:
    """What works but misleads: latency thresholds between histogram bucket boundaries."""
    warnings = []
    for template in applicable_templates(spec, templates):
        overrides = spec.alerts.get(template.id)
        if not isinstance(overrides, dict):
            continue
        for name, value in overrides.items():
            param = template.parameters.get(name)
            metric = conventions.METRICS.get(param.histogram or "") if param else None
            seconds = param.normalise(value) if param else None
            if metric is None or not metric.buckets or not isinstance(seconds, float):
                continue
            if seconds < max(metric.buckets) and not _on_boundary(seconds, metric.buckets):
                below = max((b for b in metric.buckets if b < seconds), default=0.0)
                above = min(b for b in metric.buckets if b > seconds)
                warnings.append(
                    spec.problem(
                        join(join("alerts", template.id), str(name)),
                        f"not a bucket boundary of {metric.name}: the quantile is interpolated "
                        f"between {units.format_latency(below)} and "
                        f"{units.format_latency(above)}, so the alert fires on an estimate",
                        value,
                        "a bucket boundary: "
                        + ", ".join(units.format_latency(b) for b in metric.buckets),
                    )
                )
    return warnings


_TEMPLATE_EXPECTED = "a Go template both Grafana and Prometheus accept, e.g. {{ $labels.instance }}"


def _template_problems(spec: ServiceSpec) -> list[Problem]:
    """Go-template syntax of every label and annotation text the service config supplies, at its
    own key and line (the platform's alert templates only embed these values)."""
    texts: list[tuple[str, str]] = [("runbook_base_url", spec.runbook_base_url)]
    texts += [(join("labels", k), v) for k, v in spec.labels.items()]
    for key, overrides in spec.alerts.items():
        if isinstance(overrides, dict):
            texts += [
                (join(join("alerts", key), name), value)
                for name, value in overrides.items()
                if name == "runbook_url" and isinstance(value, str)
            ]
    for custom in spec.custom_alerts:
        texts += [
            (join(custom.path, "summary"), custom.summary),
            (join(custom.path, "description"), custom.description),
            (join(custom.path, "runbook_url"), custom.runbook_url),
        ]
        texts += [(join(join(custom.path, "labels"), k), v) for k, v in custom.labels.items()]
    return [
        spec.problem(path, why, text, _TEMPLATE_EXPECTED)
        for path, text in texts
        if (why := gotemplate.problem(text))
    ]


def _check_params(
    spec: ServiceSpec, path: str, overrides: dict[str, Any], params: dict[str, Parameter]
) -> list[Problem]:
    problems = []
    for name, value in overrides.items():
        where = join(path, str(name))
        if name in IMPLICIT_PARAMS:
            if not isinstance(value, str) or not value:
                problems.append(spec.problem(where, "wrong type", value, "a non-empty string"))
            continue
        param = params.get(name)
        if param is None:
            choices = [*params, *IMPLICIT_PARAMS]
            problems.append(
                spec.problem(
                    where,
                    f"unknown parameter{did_you_mean(str(name), choices)}",
                    name,
                    "one of " + ", ".join(choices),
                )
            )
            continue
        why = param.check(value)
        if why:
            problems.append(
                spec.problem(where, f"invalid value for {param.type} parameter", value, why)
            )
    return problems


# --- PromQL -------------------------------------------------------------------------------------


def sample_variables(expr: str) -> str:
    """Replace Grafana macros and ``$var`` / ``${var}`` with values that keep PromQL parseable."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return _MACRO_SAMPLES.get(name, "sample")

    return _VARIABLE.sub(sub, expr)


def check_promql(
    expr: str, *, strict_names: bool, alert: bool = False
) -> list[tuple[str, Any, str]]:
    """(message, bad value, expected) for each problem of one expression.

    Parsed once per distinct text: dashboards repeat the same queries for every service.
    """
    return list(_check_promql(expr, strict_names, alert))


@functools.lru_cache(maxsize=4096)
def _check_promql(expr: str, strict_names: bool, alert: bool) -> tuple[tuple[str, Any, str], ...]:
    return tuple(_parse_and_check(expr, strict_names=strict_names, alert=alert))


def _parse_and_check(expr: str, *, strict_names: bool, alert: bool) -> list[tuple[str, Any, str]]:
    too_big = limits.promql_problem(expr)
    if too_big:  # the parser's memory grows with the square of an expression's nesting
        return [(too_big, _shorten(expr), "a smaller PromQL expression")]
    try:
        ast = promql_parser.parse(sample_variables(expr))
    except ValueError as exc:
        return [(f"invalid PromQL: {exc}", expr, "a valid PromQL expression")]
    problems: list[tuple[str, Any, str]] = []
    if alert and isinstance(
        ast,
        (promql_parser.NumberLiteral, promql_parser.StringLiteral, promql_parser.MatrixSelector),
    ):
        problems.append(
            ("an alert expression must return an instant vector", expr, "a vector expression")
        )
    if not strict_names:
        return problems
    series, labels = known_series(), known_labels()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if (
                node.name
                and node.name not in series
                and not node.name.startswith(RECORDED_PREFIXES)
            ):
                problems.append(
                    (
                        f"metric is not in the conventions{did_you_mean(node.name, series)}",
                        node.name,
                        "a series of platform_obs.conventions",
                    )
                )
            for matcher in node.matchers.matchers:
                if matcher.name not in labels:
                    problems.append(
                        (
                            f"label is not in the conventions{did_you_mean(matcher.name, labels)}",
                            matcher.name,
                            "a label of platform_obs.conventions",
                        )
                    )
        return True

    promql_parser.walk(ast, visit)
    return problems


def _shorten(text: str, keep: int = 60) -> str:
    """A long value as shown in a message: its start and its length."""
    return text if len(text) <= keep else f"{text[:keep]}... ({len(text)} characters)"


# --- rendered objects ---------------------------------------------------------------------------


def check_rendered(
    rendered: Rendered,
    definitions: Sequence[AlertDefinition],
    specs: Sequence[ServiceSpec],
    *,
    run_promtool: bool = True,
    dashboards: bool = True,
) -> list[Problem]:
    """Every problem of rendered output; ``dashboards=False`` leaves out
    :func:`check_dashboards` (run by another process)."""
    spec_by_service = {s.name: s for s in specs}
    # promtool (a separate process) runs while the Python checks below use the other core.
    binary = shutil.which("promtool") if run_promtool else None
    promtool = (
        PromtoolRun(binary, rendered, definitions, spec_by_service)
        if binary and rendered.prometheus_rules
        else None
    )
    problems = _check_dashboards(rendered, spec_by_service) if dashboards else []
    problems += _check_definitions(definitions, spec_by_service)
    by_uid = {d.uid: d for d in definitions}
    for group in rendered.rule_groups:
        spec = spec_by_service.get(group.service)
        problems += check_rule_group(group, spec.file if spec else group.service, by_uid)
    problems += _duplicates(rendered, spec_by_service)
    problems += ownership.collisions(specs, rendered)
    if promtool is not None:
        problems += promtool.problems()
    return problems


def check_dashboards(rendered: Rendered, specs: Sequence[ServiceSpec]) -> list[Problem]:
    """The rendered dashboards' problems (the first part of :func:`check_rendered`)."""
    return _check_dashboards(rendered, {s.name: s for s in specs})


def _check_dashboards(rendered: Rendered, specs: dict[str, ServiceSpec]) -> list[Problem]:
    problems = []
    clean: set[str] = set()  # shapes whose queries passed on a service where names cannot matter
    for board in rendered.dashboards:
        spec = specs.get(board.service)
        file = spec.file if spec else board.service
        problems += _board_identity_problems(board, file)
        if board.shape is not None and board.shape in clean:
            continue
        found = _board_query_problems(board, file)
        if not found and board.shape is not None and spec and _names_are_inert(board, spec):
            clean.add(board.shape)
        problems += found
    return problems


def _board_identity_problems(board: Dashboard, file: str) -> list[Problem]:
    problems = []
    if board.shape is not None:  # known without decoding the model
        uid, title = board.uid, board.title
    else:
        uid, title = board.model.get("uid", ""), board.model.get("title", "")
    if not isinstance(uid, str) or not UID_RE.match(uid) or len(uid) > UID_MAX:
        problems.append(
            Problem(
                file,
                "dashboards",
                "invalid dashboard uid",
                uid,
                f"^[a-zA-Z0-9_-]+$, at most {UID_MAX} characters",
            )
        )
    if not title:
        problems.append(Problem(file, "dashboards", "dashboard title is empty", title, "a title"))
    return problems


def _targets(board: Dashboard) -> Iterator[tuple[dict[str, Any], dict[str, Any], str]]:
    """(panel, target, query text) of every query of a dashboard."""
    for panel in board.model.get("panels", []):
        for target in panel.get("targets", []):
            yield panel, target, target.get("expr") or target.get("query") or ""


def _board_query_problems(board: Dashboard, file: str) -> list[Problem]:
    problems = []
    variables = STANDARD_VARIABLES | {
        v.get("name") for v in board.model.get("templating", {}).get("list", [])
    }
    for panel, target, text in _targets(board):
        meta = target.get(TARGET_META_KEY, {})
        where_file, where_path = meta.get("template", file), meta.get("path", "")
        for name in _unknown_variables(text, variables):
            problems.append(
                Problem(
                    where_file,
                    where_path,
                    f"unknown dashboard variable in {board.uid}",
                    f"${name}",
                    "one of "
                    + ", ".join(sorted(n for n in variables if n))
                    + " or a Grafana $__ macro",
                )
            )
        if panel.get("datasource", {}).get("type") != "prometheus" or "expr" not in target:
            continue
        for message, value, expected in check_promql(target["expr"], strict_names=True):
            problems.append(
                Problem(
                    where_file, where_path, f"{message} (dashboard {board.uid})", value, expected
                )
            )
    return problems


#: PromQL string literals (a service's own values are always quoted label values).
_PROMQL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')


def _names_are_inert(board: Dashboard, spec: ServiceSpec) -> bool:
    """Whether the service's name and team appear in the dashboard's queries only where another
    name of the same alphabet (``[a-z0-9_.-]``) could not change a check's verdict: inside PromQL
    strings, and apart from every ``$variable``. Then the verdict holds for every service of
    the dashboard's shape, which differ only in those values."""
    names = [n for n in (spec.name, spec.team) if n]
    for _, _, text in _targets(board):
        if not any(n in text for n in names):
            continue
        if "#" in text or any(n in _PROMQL_STRING.sub("", text) for n in names):
            return False
        spans = [m.span() for m in _VARIABLE.finditer(text)]
        for name in names:
            at = text.find(name)
            while at >= 0:
                if any(start <= at + len(name) and at <= end for start, end in spans):
                    return False
                at = text.find(name, at + 1)
    return True


def _unknown_variables(text: str, variables: Iterable[str | None]) -> list[str]:
    if "$" not in text:
        return []
    known = variables if isinstance(variables, (set, frozenset)) else set(variables)
    return sorted(
        {
            name
            for m in _VARIABLE.finditer(text)
            if not (name := (m.group(1) or m.group(2)).split(".")[0]).startswith("__")
            and name not in known
        }
    )


def _check_definitions(
    definitions: Sequence[AlertDefinition], specs: dict[str, ServiceSpec]
) -> list[Problem]:
    problems: list[Problem] = []
    memo: dict[str, tuple[str, str]] = {}
    clean: set[str] = set()  # shapes whose templates passed where names cannot matter
    for defn in definitions:
        custom = defn.template is None
        # the service config's own texts were checked at their lines
        if not custom and (defn.shape is None or defn.shape not in clean):
            owner = specs.get(defn.service)
            invalid = _rule_template_problems(defn, owner)
            if not invalid and defn.shape and owner and _outside_actions(defn, owner):
                clean.add(defn.shape)
            problems += invalid
        where = f"{defn.source_path}.expr"
        if "$" in defn.expr:
            problems.append(
                Problem(
                    defn.source_file,
                    where,
                    "alert expressions cannot use dashboard variables",
                    defn.expr,
                    "concrete values (placeholders are expanded per service)",
                )
            )
            continue
        spec = specs.get(defn.service)
        # A template rule is checked once per shape: the text up to the service's own selector,
        # a list of quoted matchers that cannot change whether the rest parses or names
        # known series. Only a shape with problems is checked again as written.
        text = defn.expr
        if not custom and spec is not None:
            text = text.replace(*_selectors(spec, memo))
        found = check_promql(text, strict_names=not custom, alert=True)
        if found and text != defn.expr:
            found = check_promql(defn.expr, strict_names=not custom, alert=True)
        for message, value, expected in found:
            line = spec.line(where) if custom and spec else None
            suffix = "" if custom else f" (service {defn.service})"
            problems.append(
                Problem(defn.source_file, where, message + suffix, value, expected, line)
            )
    return problems


def _rule_template_problems(defn: AlertDefinition, spec: ServiceSpec | None) -> list[Problem]:
    """Go-template syntax of what an alert template itself puts in labels and annotations."""
    user_labels = spec.labels if spec else {}
    texts = [
        *(("annotation", k, v) for k, v in defn.annotations.items() if k != "runbook_url"),
        *(("label", k, v) for k, v in defn.labels.items() if k not in user_labels),
    ]
    return [
        Problem(
            defn.source_file,
            defn.source_path,
            f"{kind} {key!r}: {why} (service {defn.service})",
            text,
            _TEMPLATE_EXPECTED,
        )
        for kind, key, text in texts
        if (why := gotemplate.problem(text))
    ]


_ACTION = re.compile(r"\{\{.*?\}\}", re.DOTALL)


def _outside_actions(defn: AlertDefinition, spec: ServiceSpec) -> bool:
    """Whether the service's name and team appear in the definition's labels and annotations
    only outside ``{{ }}`` actions, where text of their alphabet cannot change template syntax:
    then the verdict holds for every service of the definition's shape."""
    names = [n for n in (spec.name, spec.team) if n]
    texts = [*defn.labels.values(), *defn.annotations.values()]
    return not any(n in action for t in texts for action in _ACTION.findall(t) for n in names)


def check_rule_group(
    group: RuleGroup, file: str, by_uid: dict[str, AlertDefinition] | None = None
) -> list[Problem]:
    """What Grafana's provisioning API would reject in a rule group."""
    problems = []
    path = f"rule group {group.title!r}"
    if not 1 <= len(group.title) <= TITLE_MAX:
        problems.append(
            Problem(
                file, path, "group name must be 1-190 characters", group.title, "1-190 characters"
            )
        )
    if group.interval_seconds <= 0 or group.interval_seconds % 10:
        problems.append(
            Problem(
                file,
                path,
                "interval must be a positive multiple of 10 seconds",
                group.interval_seconds,
                "10, 20, ... seconds",
            )
        )
    for rule in group.rules:
        defn = (by_uid or {}).get(rule.get("uid", ""))
        rfile, rpath = (
            (defn.source_file, defn.source_path)
            if defn
            else (file, f"{path} rule {rule.get('title')!r}")
        )
        uid = rule.get("uid", "")
        if not isinstance(uid, str) or not UID_RE.match(uid) or len(uid) > UID_MAX:
            problems.append(
                Problem(
                    rfile,
                    rpath,
                    "invalid rule uid",
                    uid,
                    f"^[a-zA-Z0-9_-]+$, at most {UID_MAX} characters",
                )
            )
        title = rule.get("title", "")
        if not 1 <= len(title) <= TITLE_MAX:
            problems.append(
                Problem(
                    rfile, rpath, "rule title must be 1-190 characters", title, "1-190 characters"
                )
            )
        refs = [d.get("refId") for d in rule.get("data", [])]
        if rule.get("condition") not in refs:
            problems.append(
                Problem(
                    rfile,
                    rpath,
                    "condition names no query",
                    rule.get("condition"),
                    "one of the refIds " + ", ".join(map(str, refs)),
                )
            )
        if rule.get("noDataState") not in NO_DATA_STATES:
            problems.append(
                Problem(
                    rfile,
                    rpath,
                    "invalid noDataState",
                    rule.get("noDataState"),
                    "one of " + ", ".join(NO_DATA_STATES),
                )
            )
        if rule.get("execErrState") not in EXEC_ERR_STATES:
            problems.append(
                Problem(
                    rfile,
                    rpath,
                    "invalid execErrState",
                    rule.get("execErrState"),
                    "one of " + ", ".join(EXEC_ERR_STATES),
                )
            )
        ann = rule.get("annotations", {})
        if ("__dashboardUid__" in ann) != ("__panelId__" in ann):
            problems.append(
                Problem(
                    rfile,
                    rpath,
                    "__dashboardUid__ and __panelId__ go together",
                    sorted(k for k in ann if k.startswith("__")),
                    "both or neither",
                )
            )
        if rule.get("folderUID") != group.folder_uid or rule.get("ruleGroup") != group.title:
            problems.append(
                Problem(
                    rfile,
                    rpath,
                    "rule is not in its group's folder/group",
                    (rule.get("folderUID"), rule.get("ruleGroup")),
                    f"{group.folder_uid}/{group.title}",
                )
            )
        if durations.seconds(str(rule.get("for", "0s"))) is None:
            problems.append(
                Problem(rfile, rpath, "invalid for duration", rule.get("for"), "e.g. 5m")
            )
    return problems


def _duplicates(rendered: Rendered, specs: dict[str, ServiceSpec]) -> list[Problem]:
    problems = []

    def where(service: str) -> str:
        return specs[service].file if service in specs else service

    # Across services: ownership.collisions names both configs.
    seen: dict[str, str] = {}
    for board in rendered.dashboards:
        if seen.get(board.uid) == board.service:
            problems.append(
                Problem(
                    where(board.service),
                    "dashboards",
                    "dashboard uid is used twice",
                    board.uid,
                    "unique dashboard uids",
                )
            )
        seen[board.uid] = board.service
    titles: dict[tuple[str, str], str] = {}
    for board in rendered.dashboards:
        key = (board.folder_uid, board.title)
        if key in titles and titles[key] != board.uid:
            problems.append(
                Problem(
                    where(board.service),
                    "dashboards",
                    "two dashboards share a title in one folder",
                    board.title,
                    "unique titles per folder",
                )
            )
        titles[key] = board.uid
    rule_uids: dict[str, str] = {}
    for group in rendered.rule_groups:
        rule_titles: set[str] = set()
        for rule in group.rules:
            uid, title = rule.get("uid", ""), rule.get("title", "")
            if rule_uids.get(uid) == group.service:  # across services: ownership.collisions
                problems.append(
                    Problem(
                        where(group.service),
                        "alerts",
                        "alert rule uid is used twice",
                        uid,
                        "unique rule uids",
                    )
                )
            rule_uids[uid] = group.service
            if title in rule_titles:
                problems.append(
                    Problem(
                        where(group.service),
                        "alerts",
                        "two alert rules share a title in one folder",
                        title,
                        "unique titles (rename the custom alert)",
                    )
                )
            rule_titles.add(title)
    return problems


# --- promtool -----------------------------------------------------------------------------------

_PROMTOOL_RULE = re.compile(
    r'group "(?P<group>[^"]*)", rule (?P<index>\d+), "(?P<alert>[^"]*)": (?P<msg>.*)'
)
#: Stand-ins for a service's own values when template rules are checked once per shape.
_STAND_IN = {"name": "service", "team": "team"}


def _selectors(spec: ServiceSpec, memo: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """(the service's alert selector, the stand-in's), computed once per service."""
    if spec.name not in memo:
        memo[spec.name] = (series_selector(spec, dashboard=False), _stand_in_selector(spec))
    return memo[spec.name]


def _stand_in_selector(spec: ServiceSpec) -> str:
    return series_selector(
        dataclasses.replace(
            spec,
            name=_STAND_IN["name"],
            environments=("environment",),
            namespace="namespace" if spec.namespace else None,
        ),
        dashboard=False,
    )


def _shape_rule(
    rule: dict[str, Any], spec: ServiceSpec, memo: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    """A template rule with the service's own name, team and selector replaced by stand-ins.

    Rules of different services that differ only in those values get the same shape, so promtool
    reads each shape once. The selector is a list of quoted matchers in both forms, so the
    expression parses exactly when the original does; a failing shape is re-checked with the real
    rules before anything is reported.
    """

    def swap(text: str) -> str:
        return text.replace(spec.name, _STAND_IN["name"]).replace(spec.team, _STAND_IN["team"])

    shaped = {**rule, "expr": str(rule.get("expr", "")).replace(*_selectors(spec, memo))}
    for key in ("labels", "annotations"):
        if key in rule:
            shaped[key] = {k: swap(str(v)) for k, v in (rule[key] or {}).items()}
    return shaped


class PromtoolRun:
    """One ``promtool check rules`` process over every rule shape, started in the background.

    Started before the Python checks so the two run side by side; :meth:`problems` waits for it.
    Custom alerts are checked as written; template rules once per shape (see :func:`_shape_rule`).

    An alerting rule's labels and annotations are checked apart from it, each distinct one once:
    promtool parses every value as a Go template (most of its time), with a verdict that depends
    on the key and text alone, and rules that differ only in a threshold share most of them.
    """

    def __init__(
        self,
        binary: str,
        rendered: Rendered,
        definitions: Sequence[AlertDefinition],
        specs: dict[str, ServiceSpec],
    ) -> None:
        self.binary, self.rendered, self.specs = binary, rendered, specs
        self.by_service: dict[str, list[AlertDefinition]] = {}
        for defn in definitions:
            self.by_service.setdefault(defn.service, []).append(defn)
        self._tmp = tempfile.TemporaryDirectory(prefix="po-rules-")
        groups: list[dict[str, Any]] = []
        index: dict[Hashable, int] = {}  # a rule's JSON, or a (kind, name, text) of one
        memo: dict[str, tuple[str, str]] = {}
        self.users: list[set[str]] = []  # per shape group: the services whose rules it stands for

        def add(key: Hashable, interval: Any, rule: dict[str, Any]) -> None:
            index[key] = len(groups)
            groups.append({"name": f"shape-{len(groups)}", "interval": interval, "rules": [rule]})
            self.users.append(set())

        for rule_file in rendered.prometheus_rules:
            service = rule_file.service
            spec = specs.get(service)
            defns = self.by_service.get(service, [])
            for group in rule_file.document.get("groups", []):
                for i, rule in enumerate(group.get("rules", [])):
                    # alerting rules map to definitions by position; recording rules all
                    # come from templates
                    templated = rule_file.kind != "alerts" or (
                        i < len(defns) and defns[i].template is not None
                    )
                    shaped = _shape_rule(rule, spec, memo) if spec and templated else rule
                    if "alert" in shaped:  # a recording rule's labels are not templates
                        shaped = dict(shaped)
                        for kind in ("labels", "annotations"):
                            for name, text in (shaped.pop(kind, None) or {}).items():
                                if (kind, name, text) not in index:
                                    text_rule = {"alert": "Text", "expr": "1", kind: {name: text}}
                                    add((kind, name, text), None, text_rule)
                                self.users[index[kind, name, text]].add(service)
                    interval = group.get("interval")
                    key = jsontext.dumps([interval, shaped], sort_keys=True)
                    if key not in index:
                        add(key, interval, shaped)
                    self.users[index[key]].add(service)
        self.path = Path(self._tmp.name) / "rules.yaml"
        # JSON is YAML, and much faster to write than block YAML (nobody reads this file)
        self.path.write_text(jsontext.dumps({"groups": groups}), encoding="utf-8")
        self.shapes = len(groups)
        self._proc = subprocess.Popen(
            [binary, "check", "rules", "--lint=none", str(self.path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def problems(self) -> list[Problem]:
        try:
            output, _ = self._proc.communicate()
            if self._proc.returncode == 0:
                return []
            suspects: set[str] = set()
            for line in output.splitlines():
                if not line.startswith(str(self.path)):
                    continue
                match = _PROMTOOL_RULE.search(line)
                if match and match["group"].startswith("shape-"):
                    suspects |= self.users[int(match["group"].removeprefix("shape-"))]
                else:  # not about one rule: check them all for real
                    suspects = {f.service for f in self.rendered.prometheus_rules}
                    break
            return _check_real_rules(
                self.binary, self.rendered, self.by_service, self.specs, suspects
            )
        finally:
            self._tmp.cleanup()


_PROMTOOL_FIELD = re.compile(r'^(?P<kind>label|annotation) "(?P<key>[^"]+)"')


def _user_source(defn: AlertDefinition, spec: ServiceSpec | None, message: str) -> str | None:
    """The service-config key a promtool complaint about a label/annotation comes from, if any.

    Template rules embed the service's ``labels`` and runbook URL; a mistake there is the service
    owner's to fix, so it is reported at their line, not in the platform's template file.
    """
    match = _PROMTOOL_FIELD.match(message)
    if spec is None or defn.template is None or match is None:
        return None
    key = match["key"]
    if match["kind"] == "label":
        return join("labels", key) if key in spec.labels else None
    if key != "runbook_url":
        return None
    overrides = spec.alerts.get(defn.template)
    if isinstance(overrides, dict) and "runbook_url" in overrides:
        return join(join("alerts", defn.template), "runbook_url")
    return "runbook_base_url"


def promtool_check(
    rendered: Rendered, definitions: Sequence[AlertDefinition], specs: dict[str, ServiceSpec]
) -> list[Problem]:
    """``promtool check rules`` over every Prometheus rule, mapped back to the sources."""
    binary = shutil.which("promtool")
    if binary is None or not rendered.prometheus_rules:
        return []
    return PromtoolRun(binary, rendered, definitions, specs).problems()


def _check_real_rules(
    binary: str,
    rendered: Rendered,
    by_service: dict[str, list[AlertDefinition]],
    specs: dict[str, ServiceSpec],
    services: set[str],
) -> list[Problem]:
    """promtool on the real rule files of ``services`` (one process), problems per source."""
    problems: list[Problem] = []
    with tempfile.TemporaryDirectory(prefix="po-rules-") as tmp:
        files: dict[str, PrometheusRuleFile] = {}
        for rule_file in rendered.prometheus_rules:
            if rule_file.service not in services:
                continue
            path = Path(tmp) / rule_file.file_name
            path.write_text(outputs.dump_yaml(rule_file.document), encoding="utf-8")
            files[str(path)] = rule_file
        if not files:
            return []
        result = subprocess.run(
            [binary, "check", "rules", "--lint=none", *files],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            return []
        for line in (result.stdout + result.stderr).splitlines():
            file = line.split(":", 1)[0]
            if file not in files:
                continue
            rule_file = files[file]
            service = rule_file.service
            spec = specs.get(service)
            match = _PROMTOOL_RULE.search(line)
            defns = by_service.get(service, []) if rule_file.kind == "alerts" else []
            if match and 0 < int(match["index"]) <= len(defns):
                defn = defns[int(match["index"]) - 1]
                user_path = _user_source(defn, spec, match["msg"])
                if spec is not None and user_path is not None:
                    problems.append(
                        spec.problem(
                            user_path,
                            f"promtool: {match['msg']} (alert {defn.alert})",
                            None,
                            "a rule promtool accepts",
                        )
                    )
                    continue
                line_no = spec.line(defn.source_path) if spec and defn.template is None else None
                problems.append(
                    Problem(
                        defn.source_file,
                        defn.source_path,
                        f"promtool: {match['msg']} (service {service})",
                        defn.alert,
                        "a rule promtool accepts",
                        line_no,
                    )
                )
            else:
                problems.append(
                    Problem(
                        spec.file if spec else service,
                        "",
                        "promtool: " + line.replace(file, rule_file.file_name),
                    )
                )
    return problems
