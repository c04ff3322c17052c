"""A linter for rendered output: Grafana's dashboard-linter rules and Cloudflare pint's offline
checks, re-implemented on the rendered objects, plus the platform's own consistency rules.

Dashboards (dashboard-linter rule names): ``template-datasource-rule``, ``template-job-rule``,
``template-instance-rule``, ``template-label-promql-rule``, ``template-on-time-change-reload-rule``,
``panel-datasource-rule``, ``panel-title-description-rule``, ``panel-units-rule``,
``panel-no-targets-rule``, ``target-promql-rule``, ``target-rate-interval-rule``,
``target-job-rule``, ``target-instance-rule``, ``target-counter-agg-rule``,
``target-logql-auto-rule``; ours: ``panel-stat-thresholds-rule`` (a stat shows good from bad),
``dashboard-shared-crosshair-rule``, ``target-environment-split-rule`` (every aggregation keeps
the environment, so "All" splits instead of summing).

Prometheus rules (pint check names): ``promql/syntax``, ``promql/regexp`` (a regex matcher with a
plain value should be ``=``), ``promql/rate`` (rate on counters only), ``promql/counter``
(counters only inside rate/increase), ``promql/range_query`` (ranges within retention),
``promql/vector_matching`` (both sides of a binary operation keep the same labels),
``alerts/comparison``, ``alerts/template`` (labels used in templates survive the query),
``alerts/annotation``, ``rule/label``, ``rule/name``, ``rule/duplicate``.

Platform rules: ``alert-panel`` (an alert's linked panel plots the alert's own expression and
draws its threshold) and ``alert-names`` (the Grafana rule title is the Prometheus alert name).

Exclusions live next to the templates (``dashboards/.lint``, ``alerts/.lint``, dashboard-linter's
format), each with a written reason.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from platform_obs import conventions
from platform_obs.provisioning.model import Rendered
from platform_obs.provisioning.render.dashboards import TARGET_META_KEY
from platform_obs.provisioning.render.definitions import AlertDefinition
from platform_obs.provisioning.render.scope import ENV_LABEL, NAMESPACE_LABEL, SERVICE_LABEL
from platform_obs.provisioning.validate import sample_variables

#: Prometheus' default retention (pint's ``promql/range_query`` default).
RETENTION_SECONDS = 15 * 86400
RATE_FUNCTIONS = frozenset({"rate", "irate", "increase"})
AGGREGATIONS = frozenset(
    {"sum", "avg", "max", "min", "count", "group", "stddev", "stdvar", "quantile"}
)
#: Units Grafana knows (the subset the platform's panels may use).
UNITS = frozenset(
    {
        "reqps",
        "ops",
        "cps",
        "short",
        "none",
        "percent",
        "percentunit",
        "s",
        "ms",
        "bytes",
        "decbytes",
        "bps",
        "Bps",
    }
)
REQUIRED_LABELS = {"severity": ("critical", "warning", "info"), "team": None, "service": None}
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url")
RECORD_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+:[a-zA-Z0-9_]+$")
_REGEX_META = re.compile(r"[.^$*+?()\[\]{}|\\]")
_TEMPLATE_LABEL = re.compile(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)")
_COMPARISONS = frozenset({">", "<", ">=", "<=", "==", "!="})
_DASHBOARD_RULES = (
    "template-datasource-rule",
    "template-job-rule",
    "template-instance-rule",
    "template-label-promql-rule",
    "template-on-time-change-reload-rule",
    "panel-datasource-rule",
    "panel-title-description-rule",
    "panel-units-rule",
    "panel-no-targets-rule",
    "panel-stat-thresholds-rule",
    "dashboard-shared-crosshair-rule",
    "target-promql-rule",
    "target-rate-interval-rule",
    "target-job-rule",
    "target-instance-rule",
    "target-counter-agg-rule",
    "target-logql-auto-rule",
    "target-environment-split-rule",
)
_RULE_RULES = (
    "promql/syntax",
    "promql/regexp",
    "promql/rate",
    "promql/counter",
    "promql/range_query",
    "promql/vector_matching",
    "alerts/comparison",
    "alerts/template",
    "alerts/annotation",
    "rule/label",
    "rule/name",
    "rule/duplicate",
    "alert-panel",
    "alert-names",
)
RULES = frozenset(_DASHBOARD_RULES + _RULE_RULES)


@dataclass(frozen=True)
class Violation:
    rule: str
    #: Where, for people: template file and panel, or service and rule.
    where: str
    message: str
    #: What exclusion entries match on: ``dashboard`` (template id), ``panel`` (key), ``name``.
    subject: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.rule}: {self.where}: {self.message}"


# --- exclusions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exclusion:
    rule: str
    reason: str
    #: Empty: the whole rule; else subject patterns (fnmatch), every key must match.
    entries: tuple[Mapping[str, str], ...] = ()

    def covers(self, violation: Violation) -> bool:
        if violation.rule != self.rule:
            return False
        if not self.entries:
            return True
        return any(
            all(fnmatch.fnmatchcase(violation.subject.get(k, ""), str(v)) for k, v in e.items())
            for e in self.entries
        )


def load_exclusions(files: Iterable[Path]) -> list[Exclusion]:
    """Read ``.lint`` files; an exclusion without a reason or for an unknown rule is an error."""
    out = []
    for file in files:
        if not file.is_file():
            continue
        doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        for rule, body in (doc.get("exclusions") or {}).items():
            if rule not in RULES:
                raise ValueError(f"{file}: exclusion of unknown lint rule {rule!r}")
            reason = str((body or {}).get("reason") or "").strip()
            if not reason:
                raise ValueError(f"{file}: exclusion of {rule} needs a written reason")
            entries = tuple(dict(e) for e in (body.get("entries") or ()))
            out.append(Exclusion(rule, reason, entries))
    return out


def unexcluded(violations: Iterable[Violation], exclusions: Sequence[Exclusion]) -> list[Violation]:
    return [v for v in violations if not any(e.covers(v) for e in exclusions)]


# --- PromQL helpers -------------------------------------------------------------------------------


def _parse(expr: str) -> Any:
    return promql_parser.parse(sample_variables(expr))


def _children(node: Any) -> list[Any]:
    if isinstance(node, promql_parser.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql_parser.AggregateExpr):
        return [node.expr] + ([node.param] if getattr(node, "param", None) is not None else [])
    if isinstance(node, promql_parser.Call):
        return list(node.args)
    if isinstance(
        node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)
    ):
        return [node.expr]
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    return []


def _walk(node: Any, parents: tuple[Any, ...] = ()) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    yield node, parents
    for child in _children(node):
        yield from _walk(child, (*parents, node))


def _counters() -> frozenset[str]:
    """Series of the conventions that only go up: counters and histogram parts."""
    names = set()
    for metric in conventions.METRICS.values():
        if metric.kind == "counter":
            names.add(metric.series())
        elif metric.kind == "histogram":
            names.update(metric.series(s) for s in ("bucket", "count", "sum"))
    return frozenset(names)


_COUNTERS = _counters()


def _is_counter(name: str | None) -> bool:
    """A conventions counter; for other names, Prometheus' ``_total`` naming convention."""
    if not name or ":" in name:
        return False
    return name in _COUNTERS or (name.endswith("_total") and name not in _GAUGES)


_GAUGES = frozenset(
    m.series() for m in conventions.METRICS.values() if m.kind in ("gauge", "updowncounter")
)


def _labels(node: Any) -> frozenset[str] | None:
    """The labels a query's result keeps, when the query says (None: whatever the series have)."""
    if isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr)):
        return _labels(node.expr)
    if isinstance(node, promql_parser.AggregateExpr):
        modifier = node.modifier
        if modifier is None:
            return frozenset()
        if str(modifier.type).endswith("By"):
            return frozenset(modifier.labels)
        return None
    if isinstance(node, promql_parser.Call):
        name = node.func.name
        if name in ("absent", "absent_over_time"):
            inner = node.args[0]
            selector = inner.vector_selector if hasattr(inner, "vector_selector") else inner
            if isinstance(selector, promql_parser.VectorSelector):
                return frozenset(
                    m.name for m in selector.matchers.matchers if str(m.op).endswith("Equal")
                )
            return frozenset()
        if name == "histogram_quantile":
            inner_labels = _labels(node.args[1])
            return None if inner_labels is None else inner_labels - {"le"}
        if name == "vector":
            return frozenset()
        vectors = [a for a in node.args if not isinstance(a, promql_parser.NumberLiteral)]
        return _labels(vectors[0]) if vectors else frozenset()
    if isinstance(node, promql_parser.BinaryExpr):
        lhs, rhs = _labels(node.lhs), _labels(node.rhs)
        op = str(node.op)
        if isinstance(node.lhs, promql_parser.NumberLiteral):
            return rhs
        if isinstance(node.rhs, promql_parser.NumberLiteral):
            return lhs
        if op == "or":
            return None if lhs is None or rhs is None else lhs & rhs
        return lhs
    if isinstance(node, promql_parser.MatrixSelector):
        return None
    return None


# --- dashboards -----------------------------------------------------------------------------------


def _panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _panel_key(panel: Mapping[str, Any], template: str, keys: Mapping[int, str]) -> str:
    return keys.get(panel.get("id", -1), str(panel.get("id")))


def lint_dashboard(
    board: Mapping[str, Any], template: str, panel_keys: Mapping[int, str]
) -> list[Violation]:
    """dashboard-linter's rules and ours on one rendered dashboard (``template``: its id)."""
    out: list[Violation] = []
    uid = str(board.get("uid"))

    def add(rule: str, panel: Mapping[str, Any] | None, message: str) -> None:
        key = _panel_key(panel, template, panel_keys) if panel is not None else ""
        where = f"dashboards/{template}.yaml" + (f" panel {key}" if key else "") + f" ({uid})"
        out.append(Violation(rule, where, message, {"dashboard": template, "panel": key}))

    variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
    used = {
        p.get("datasource", {}).get("type")
        for p in _panels(board)
        if p.get("type") != "row" and p.get("datasource")
    }
    for kind in sorted(k for k in used if k):
        var = variables.get(kind)
        if var is None or var.get("type") != "datasource":
            add("template-datasource-rule", None, f"no templated {kind} datasource variable")
    if "job" not in variables:
        add("template-job-rule", None, "no templated job variable")
    if "instance" not in variables:
        add("template-instance-rule", None, "no templated instance variable")
    for name, var in variables.items():
        if var.get("type") != "query":
            continue
        query = str(var.get("query", ""))
        match = re.fullmatch(r"label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\)", query)
        try:
            if match is None:
                raise ValueError("not label_values(<selector>, <label>)")
            _parse(match[1])
        except ValueError as exc:
            add("template-label-promql-rule", None, f"variable {name}: {exc}")
        if var.get("refresh") != 2:
            add(
                "template-on-time-change-reload-rule",
                None,
                f"variable {name} is not refreshed on time range change",
            )
    if board.get("graphTooltip") != 1:
        add("dashboard-shared-crosshair-rule", None, "crosshair is not shared between panels")
    for panel in _panels(board):
        kind = panel.get("type")
        if kind == "row":
            continue
        if not panel.get("title") or not panel.get("description"):
            add("panel-title-description-rule", panel, "a panel needs a title and a description")
        ds = panel.get("datasource") or {}
        if kind != "alertlist" and not str(ds.get("uid", "")).startswith("${"):
            add("panel-datasource-rule", panel, f"datasource {ds} is not a template variable")
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        if kind in ("timeseries", "stat", "gauge") and defaults.get("unit") not in UNITS:
            add("panel-units-rule", panel, f"unit {defaults.get('unit')!r} is not a known unit")
        if kind == "stat" and len(defaults.get("thresholds", {}).get("steps", [])) < 2:
            add("panel-stat-thresholds-rule", panel, "a stat needs thresholds (good vs bad)")
        targets = panel.get("targets", [])
        if kind not in ("alertlist", "text") and not targets:
            add("panel-no-targets-rule", panel, "a panel without queries")
        for target in targets:
            meta = target.get(TARGET_META_KEY, {})
            plots_alert = bool(meta.get("plots")) and not meta["plots"].startswith("burn_rate:")
            if ds.get("type") == "loki":
                for rng in re.findall(r"\[([^\]]+)\]", target.get("expr", "")):
                    if rng != "$__auto":
                        add("target-logql-auto-rule", panel, f"LogQL range [{rng}], not $__auto")
            if ds.get("type") == "prometheus":
                _lint_dashboard_promql(
                    target.get("expr", ""), plots_alert, lambda r, m, p=panel: add(r, p, m)
                )
    return out


def _lint_dashboard_promql(expr: str, plots_alert: bool, add: Any) -> None:
    try:
        ast = _parse(expr)
    except ValueError as exc:
        add("target-promql-rule", f"invalid PromQL: {exc}")
        return
    job = instance = False
    for node, parents in _walk(ast):
        if isinstance(node, promql_parser.VectorSelector):
            names = {m.name for m in node.matchers.matchers}
            job |= "job" in names
            instance |= "instance" in names
            in_range = parents and isinstance(parents[-1], promql_parser.MatrixSelector)
            if _is_counter(node.name) and not in_range:
                add("target-counter-agg-rule", f"counter {node.name} used without rate()")
        if (
            isinstance(node, promql_parser.Call)
            and node.func.name in RATE_FUNCTIONS
            and "$__rate_interval" not in expr
            and not plots_alert
        ):
            add("target-rate-interval-rule", f"{node.func.name}() without $__rate_interval")
        if isinstance(node, promql_parser.AggregateExpr) and str(node.op) in AGGREGATIONS:
            labels = _labels(node)
            if labels is not None and ENV_LABEL not in labels:
                add(
                    "target-environment-split-rule",
                    f"{node.op} by ({', '.join(sorted(labels))}) blends environments",
                )
    if not job:
        add("target-job-rule", "no job matcher")
    if not instance:
        add("target-instance-rule", "no instance matcher")


# --- Prometheus rule files ------------------------------------------------------------------------


def lint_rule_file(service: str, document: Mapping[str, Any]) -> list[Violation]:
    """pint's offline checks on one rendered Prometheus rule file."""
    out: list[Violation] = []
    seen: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    for group in document.get("groups", []):
        for rule in group.get("rules", []):
            name = str(rule.get("alert") or rule.get("record"))
            where = f"service {service} {'alert' if 'alert' in rule else 'record'} {name}"

            def add(check: str, message: str, where: str = where, name: str = name) -> None:
                out.append(Violation(check, where, message, {"name": name}))

            labels = {str(k): str(v) for k, v in (rule.get("labels") or {}).items()}
            key = (name, tuple(sorted(labels.items())))
            seen[key] = seen.get(key, 0) + 1
            if seen[key] == 2:
                add("rule/duplicate", "two rules with the same name and labels")
            if "record" in rule and not RECORD_NAME.match(name):
                add("rule/name", "recording rule name is not level:metric:operations")
            try:
                ast = _parse(str(rule.get("expr", "")))
            except ValueError as exc:
                add("promql/syntax", str(exc))
                continue
            _lint_rule_promql(ast, add)
            if "alert" not in rule:
                continue
            if not any(
                isinstance(n, promql_parser.BinaryExpr) and str(n.op) in _COMPARISONS
                for n, _ in _walk(ast)
            ) and not any(
                isinstance(n, promql_parser.Call) and n.func.name.startswith("absent")
                for n, _ in _walk(ast)
            ):
                add("alerts/comparison", "alert expression has no comparison")
            for label, allowed in REQUIRED_LABELS.items():
                value = labels.get(label)
                if not value or (allowed and "{{" not in value and value not in allowed):
                    add("rule/label", f"label {label}={value!r} missing or invalid")
            annotations = rule.get("annotations") or {}
            for needed in REQUIRED_ANNOTATIONS:
                if not annotations.get(needed):
                    add("alerts/annotation", f"annotation {needed} is missing")
            kept = _labels(ast)
            texts = [*labels.values(), *map(str, annotations.values())]
            for used in sorted({m for t in texts for m in _TEMPLATE_LABEL.findall(t)}):
                if kept is not None and used not in kept:
                    add(
                        "alerts/template",
                        f"template uses $labels.{used}, which the query drops "
                        f"(it keeps {', '.join(sorted(kept)) or 'no labels'})",
                    )
    return out


def _lint_rule_promql(ast: Any, add: Any) -> None:
    for node, parents in _walk(ast):
        if isinstance(node, promql_parser.VectorSelector):
            for m in node.matchers.matchers:
                if str(m.op).endswith(".Re") and not _REGEX_META.search(m.value):
                    add("promql/regexp", f'{m.name}=~"{m.value}" is a plain value: use =')
            in_range = parents and isinstance(parents[-1], promql_parser.MatrixSelector)
            if _is_counter(node.name) and not in_range:
                add("promql/counter", f"counter {node.name} used without rate()")
        if isinstance(node, promql_parser.MatrixSelector):
            seconds = node.range.total_seconds()
            name = node.vector_selector.name
            if seconds > RETENTION_SECONDS:
                add("promql/range_query", f"{name}[{seconds / 86400:g}d] is longer than retention")
            rate = parents and isinstance(parents[-1], promql_parser.Call)
            if rate and parents[-1].func.name in RATE_FUNCTIONS and not _is_counter(name):
                add("promql/rate", f"{parents[-1].func.name}() on {name}, not a counter")
        if isinstance(node, promql_parser.BinaryExpr) and str(node.op) not in (
            "or",
            "and",
            "unless",
        ):
            if node.modifier is not None and node.modifier.matching is not None:
                continue
            lhs, rhs = _labels(node.lhs), _labels(node.rhs)
            if lhs is not None and rhs is not None and lhs != rhs:
                add(
                    "promql/vector_matching",
                    f"both sides keep different labels ({sorted(lhs)} vs {sorted(rhs)})",
                )


# --- alerts against their panels, names across outputs ----------------------------------------


def lint_alerts(rendered: Rendered, definitions: Sequence[AlertDefinition]) -> list[Violation]:
    """Every template alert's linked panel plots the alert's own expression (the service's
    concrete selector swapped for the dashboard's) and draws its threshold; Grafana titles are
    the Prometheus alert names."""
    out: list[Violation] = []
    boards = {b.uid: b.model for b in rendered.dashboards}
    titles = {r["uid"]: r["title"] for g in rendered.rule_groups for r in g.rules}
    for defn in definitions:
        where = f"{defn.source_file} {defn.source_path} (service {defn.service})"
        subject = {"name": defn.alert}
        if titles.get(defn.uid, defn.alert) != defn.alert:
            out.append(
                Violation(
                    "alert-names",
                    where,
                    f"Grafana title {titles[defn.uid]!r} is not the alert name {defn.alert!r}",
                    subject,
                )
            )
        if defn.template is None or (defn.op is None and "slo:sli_error" not in defn.expr):
            continue  # custom alerts and absence have no plotted value
        board = boards.get(defn.dashboard_uid or "")
        panel = next((p for p in _panels(board or {}) if p.get("id") == defn.panel_id), None)
        if panel is None:
            out.append(Violation("alert-panel", where, "links to no rendered panel", subject))
            continue
        problem = _panel_shows(defn, panel)
        if problem:
            out.append(Violation("alert-panel", where, problem, subject))
    return out


def _panel_shows(defn: AlertDefinition, panel: Mapping[str, Any]) -> str | None:
    exprs = [t.get("expr", "") for t in panel.get("targets", [])]
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    drawn = {round(float(s["value"]), 9) for s in steps if s.get("value") is not None}
    if defn.op is not None:
        wanted = _normalise(defn.expr)
        if wanted not in {_normalise(e) for e in exprs}:
            return (
                f"panel {panel.get('title')!r} does not plot the alert's expression {defn.expr!r}"
            )
        if round(float(defn.threshold or 0), 9) not in drawn:
            return f"panel {panel.get('title')!r} does not draw the threshold {defn.threshold}"
        return None
    # burn rate: each recorded window the alert compares, over the budget, and its factors
    windows = set(re.findall(r"(slo:sli_error:ratio_rate\w+)\{", defn.expr))
    plotted = {w for e in exprs for w in re.findall(r"(slo:sli_error:ratio_rate\w+)\{", e)}
    if not windows <= plotted:
        return f"panel {panel.get('title')!r} does not plot {sorted(windows - plotted)}"
    limits = {float(x) for x in re.findall(r"\} > ([0-9.e-]+)", defn.expr)}
    budgets = {float(x) for e in exprs for x in re.findall(r"\} / ([0-9.e-]+)$", e)}
    if len(budgets) != 1:
        return f"panel {panel.get('title')!r} does not divide by one budget"
    (budget,) = budgets
    missing = {round(limit / budget, 9) for limit in limits} - drawn
    return (
        f"panel {panel.get('title')!r} does not draw the factors {sorted(missing)}"
        if missing
        else None
    )


_IDENTITY_MATCHER = re.compile(
    rf'(?:{SERVICE_LABEL}|{NAMESPACE_LABEL}|{ENV_LABEL})\s*(?:=~|=)\s*"[^"]*"(?:,\s*)?'
)


def _normalise(expr: str) -> str:
    """An expression without the matchers that pick the service and environment: the dashboard
    selects them with variables, the alert with the service's values; all else must be equal."""
    try:
        text = _parse(expr).prettify()
    except ValueError:
        text = expr
    text = _IDENTITY_MATCHER.sub("", text).replace(", }", "}")
    return " ".join(text.split())


# --- everything at once ---------------------------------------------------------------------------


def lint_all(
    rendered: Rendered,
    definitions: Sequence[AlertDefinition],
    panel_keys: Mapping[str, Mapping[int, str]],
) -> list[Violation]:
    """``panel_keys``: dashboard template id -> panel id -> panel key (for messages/exclusions)."""
    out: list[Violation] = []
    for board in rendered.dashboards:
        template = board.uid.removeprefix(f"{board.service}-")
        out += lint_dashboard(board.model, template, panel_keys.get(template, {}))
    for rule_file in rendered.prometheus_rules:
        out += lint_rule_file(rule_file.service, rule_file.document)
    out += lint_alerts(rendered, definitions)
    return out
