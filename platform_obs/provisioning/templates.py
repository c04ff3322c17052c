"""Finds, loads and checks the standard templates: one YAML file per dashboard or alert template.

Templates are data a platform engineer edits without touching code. They ship inside the wheel
(``platform_obs/templates/{dashboards,alerts}``); a platform repo can point ``templates_dir`` at its
own copy. A template's id is its file name without ``.yaml``. See ``docs/service-config.md`` for
the file formats and :mod:`platform_obs.provisioning.placeholders` for the query language.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from platform_obs import conventions
from platform_obs.provisioning import durations, units
from platform_obs.provisioning.model import Problem, ValidationFailed
from platform_obs.provisioning.placeholders import PLACEHOLDER, PlaceholderError, Scope, expand
from platform_obs.provisioning.reader import Reader
from platform_obs.provisioning.yamlsrc import Located, join, parse

TEMPLATE_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
SEVERITIES = ("critical", "warning", "info")
NO_DATA_STATES = ("NoData", "Alerting", "OK", "KeepLast")
EXEC_ERR_STATES = ("Error", "Alerting", "OK", "KeepLast")
OPERATORS = {">": "gt", "<": "lt", ">=": "gt", "<=": "lt"}
PARAM_TYPES = (
    "number",
    "ratio",
    "integer",
    "duration",
    "latency",
    "bytes",
    "severity",
    "boolean",
    "string",
)
#: Parameters every alert template has without declaring them.
IMPLICIT_PARAMS = ("receiver", "runbook_url")
#: What a template may require of a service: ``slo`` = any SLO.
REQUIREMENTS = ("slo", "slo.availability", "slo.latency")
DATASOURCES = ("prometheus", "loki", "tempo")
PANEL_TYPES = ("timeseries", "stat", "logs", "table", "gauge", "alertlist")
#: Colours a threshold step may take (Grafana's named palette).
THRESHOLD_COLORS = ("green", "yellow", "orange", "red", "blue", "purple", "text")
#: Bare placeholders each kind of template may use.
DASHBOARD_VALUES = (
    "selector",
    "service_labels",
    "instance_label",
    "log_selector",
    "trace_selector",
    "service_name",
    "team",
)
ALERT_VALUES = ("selector", "service_labels", "service_name", "team", "runbook_base_url")
#: Keys under ``slo:`` placeholders (values come from the service config).
SLO_KEYS = (
    "window",
    "availability.objective",
    "availability.objective_percent",
    "availability.budget",
    "latency.objective",
    "latency.objective_percent",
    "latency.budget",
    "latency.threshold",
    "latency.threshold_text",
    "latency.le",
)


# --- dashboards -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetTemplate:
    expr: str
    path: str
    legend: str | None = None
    instant: bool = False
    #: False for queries that may legitimately return nothing (a feature a service may not use).
    expect_data: bool = True
    reason: str | None = None
    #: ``<alert template>.<rule id>``: the query is that alert's own expression (and its
    #: threshold is drawn), so the panel an alert links to shows what the alert evaluates.
    alert: str | None = None
    #: Ask Prometheus for exemplars (trace ids on histogram samples).
    exemplars: bool = False


@dataclass(frozen=True)
class ThresholdStep:
    color: str
    #: ``None`` for the base step; a number or a placeholder (``${slo:availability.objective}``).
    value: Any = None


@dataclass(frozen=True)
class LinkTemplate:
    title: str
    #: A plain URL, or (with ``explore_query``) a Grafana Explore link on ``explore_datasource``.
    url: str | None = None
    explore_datasource: str | None = None
    explore_query: str | None = None


@dataclass(frozen=True)
class PanelTemplate:
    key: str
    title: str
    type: str
    datasource: str
    path: str
    targets: tuple[TargetTemplate, ...]
    description: str = ""
    unit: str | None = None
    width: int = 12
    height: int = 8
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    links: tuple[LinkTemplate, ...] = ()
    #: Requirements on the service; the panel is left out when they are not met.
    requires: tuple[str, ...] = ()
    thresholds: tuple[ThresholdStep, ...] = ()
    #: ``<slo>.<tier>``: one query per window of that burn-rate tier (recorded error ratio /
    #: budget), factors drawn as thresholds — the alert's own numbers.
    burn_rate: str | None = None
    #: Tables: the column to sort by, descending.
    sort_desc: str | None = None
    #: Text shown instead of "No data" (``0`` where an empty result means zero).
    no_value: str | None = None


@dataclass(frozen=True)
class RowTemplate:
    title: str
    panels: tuple[PanelTemplate, ...]
    collapsed: bool = False


@dataclass(frozen=True)
class VariableTemplate:
    name: str
    values: str
    label: str | None = None
    multi: bool = True
    include_all: bool = True
    #: A Prometheus ``label_values(...)`` query instead of fixed ``values`` (e.g. instances).
    query: str | None = None


@dataclass(frozen=True)
class DashboardTemplate:
    id: str
    title: str
    file: str
    rows: tuple[RowTemplate, ...]
    description: str = ""
    requires: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    variables: tuple[VariableTemplate, ...] = ()
    order: int = 100

    def panel_ids(self) -> dict[str, int]:
        """Numeric panel ids by panel key: rows and panels numbered in file order, from 1."""
        cached = self.__dict__.get("_panel_ids")
        if cached is None:
            cached = self._number_panels()
            object.__setattr__(self, "_panel_ids", cached)  # frozen: cache by hand
        return cached

    def _number_panels(self) -> dict[str, int]:
        ids: dict[str, int] = {}
        next_id = 1
        for row in self.rows:
            next_id += 1  # the row panel itself
            for panel in row.panels:
                ids[panel.key] = next_id
                next_id += 1
        return ids


# --- alerts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    #: Defaults by service tier (1 = most critical), overriding ``default``.
    by_tier: dict[int, Any] = field(default_factory=dict)
    #: Defaults when the service meets a requirement (``slo.availability``), overriding both.
    with_: dict[str, Any] = field(default_factory=dict)
    #: Latencies: the conventions histogram the value is compared with (its buckets bound it).
    histogram: str | None = None

    def default_for(self, tier: int, satisfies: Any = None) -> Any:
        for requirement, value in self.with_.items():
            if satisfies is not None and satisfies(requirement):
                return value
        return self.by_tier.get(tier, self.default)

    def normalise(self, value: Any) -> Any:
        """A checked value in base units: seconds for latencies, a fraction for ratios, bytes."""
        if self.type == "latency":
            return units.latency_seconds(value)
        if self.type == "ratio":
            return units.ratio(value)
        if self.type == "bytes":
            return units.byte_count(value)
        return value

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable, or ``None``."""
        return check_param(self, value)


@dataclass(frozen=True)
class WindowPair:
    long: str
    short: str
    factor: float


@dataclass(frozen=True)
class BurnRate:
    """Multi-window multi-burn-rate data: the SLI's error ratio and, per SLO period, per tier,
    the (long, short, factor) window pairs."""

    slo: str
    error_ratio: str
    windows: dict[str, dict[str, tuple[WindowPair, ...]]]


@dataclass(frozen=True)
class RuleTemplate:
    id: str
    alert: str
    title: str
    expr: str
    path: str
    summary: str
    description: str
    op: str | None = None
    threshold: Any = None
    for_: str = "5m"
    severity: str = "warning"
    enabled: Any = True
    labels: dict[str, str] = field(default_factory=dict)
    dashboard: str | None = None
    panel: str | None = None
    no_data: str = "NoData"
    exec_err: str = "Error"
    #: Render ``expr`` once per environment (``${selector}`` with ``=`` that environment) and
    #: join with ``or``: for absence, whose labels come from equality matchers.
    per_environment: bool = False


@dataclass(frozen=True)
class AlertTemplate:
    id: str
    title: str
    file: str
    parameters: dict[str, Parameter]
    rules: tuple[RuleTemplate, ...]
    description: str = ""
    requires: tuple[str, ...] = ()
    runbook_url: str = ""
    burn_rate: BurnRate | None = None
    #: Synthetic series and expected outcomes (``promtool test rules`` cases), as written.
    tests: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Templates:
    dashboards: dict[str, DashboardTemplate]
    alerts: dict[str, AlertTemplate]
    source: str


# --- parameters -----------------------------------------------------------------------------------


def check_param(param: Parameter, value: Any) -> str | None:
    kind = param.type
    if kind in ("latency", "bytes") or (kind == "ratio" and isinstance(value, str)):
        example = {
            "latency": units.LATENCY_EXAMPLE,
            "bytes": units.BYTES_EXAMPLE,
            "ratio": units.RATIO_EXAMPLE,
        }[kind]
        number = param.normalise(value)
        if number is None:
            return example
        if number <= 0 and kind != "ratio":
            return f"{example}, above zero"
        value = number
    if kind in ("number", "ratio", "integer", "latency", "bytes"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return units.RATIO_EXAMPLE if kind == "ratio" else f"a {kind}"
        if kind == "integer" and not isinstance(value, int):
            return "an integer"
        low = 0.0 if kind == "ratio" and param.minimum is None else param.minimum
        high = 1.0 if kind == "ratio" and param.maximum is None else param.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            low_text = "-inf" if low is None else format(low, "g")
            high_text = "inf" if high is None else format(high, "g")
            if kind == "ratio":
                return f"a ratio between {low_text} and {high_text} (0.02), or a percentage (2%)"
            return f"a {kind} between {low_text} and {high_text}"
        return None
    if kind == "duration":
        return None if durations.seconds(value) is not None else "a duration like 30s, 5m, 1h"
    if kind == "severity":
        return None if value in SEVERITIES else "one of " + ", ".join(SEVERITIES)
    if kind == "boolean":
        return None if isinstance(value, bool) else "true or false"
    return None if isinstance(value, str) else "a string"


# --- loading --------------------------------------------------------------------------------------


def default_root() -> Traversable:
    """The templates shipped in the package."""
    return resources.files("platform_obs") / "templates"


def load_templates(templates_dir: Path | None = None) -> Templates:
    """Load and check every template; raises :class:`ValidationFailed` with all problems."""
    root: Traversable = templates_dir if templates_dir is not None else default_root()
    problems: list[Problem] = []
    dashboards: dict[str, DashboardTemplate] = {}
    alerts: dict[str, AlertTemplate] = {}
    # One loop for both kinds; typed loosely because the pairs differ in template type.
    kinds: tuple[tuple[str, Any, dict[str, Any]], ...] = (
        ("dashboards", _parse_dashboard, dashboards),
        ("alerts", _parse_alert, alerts),
    )
    for kind, parser, target in kinds:
        folder = root / kind
        if not folder.is_dir():
            problems.append(
                Problem(
                    f"{root}/{kind}",
                    "",
                    "template directory is missing",
                    None,
                    f"a {kind}/ directory of *.yaml templates",
                )
            )
            continue
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith((".yaml", ".yml")) or entry.name.startswith("_"):
                continue
            stem = entry.name.rsplit(".", 1)[0]
            file = f"{kind}/{entry.name}" if templates_dir is None else str(Path(str(entry)))
            doc = parse(entry.read_text(encoding="utf-8"), file)
            problems.extend(doc.problems)
            if not TEMPLATE_ID.match(stem):
                problems.append(
                    Problem(
                        file,
                        "",
                        "template file name is not a valid id",
                        stem,
                        "lower-case letters, digits and dashes",
                    )
                )
                continue
            if doc.data is None:
                continue
            template, found = parser(stem, doc)
            problems.extend(found)
            if template is not None:
                target[stem] = template
    problems.extend(_cross_check(dashboards, alerts))
    if problems:
        raise ValidationFailed(problems)
    return Templates(dashboards, alerts, str(root))


def _cross_check(
    dashboards: dict[str, DashboardTemplate], alerts: dict[str, AlertTemplate]
) -> list[Problem]:
    problems = _check_panel_sources(dashboards, alerts)
    seen: dict[str, str] = {}
    for template in alerts.values():
        for rule in template.rules:
            # The alert name is also the Grafana rule title (Grafana's alertname), and titles
            # are unique per folder: every rule, tiers included, has a name of its own.
            if rule.alert in seen:
                problems.append(
                    Problem(
                        template.file,
                        join(rule.path, "alert"),
                        f"alert name already used by {seen[rule.alert]}",
                        rule.alert,
                        "a unique alert name (it is also the Grafana rule title)",
                    )
                )
            seen[rule.alert] = f"{template.file} {rule.path}"
            if rule.dashboard is None:
                continue
            board = dashboards.get(rule.dashboard)
            if board is None:
                problems.append(
                    Problem(
                        template.file,
                        join(rule.path, "dashboard"),
                        "no such dashboard template",
                        rule.dashboard,
                        "one of " + ", ".join(sorted(dashboards)),
                    )
                )
            elif rule.panel is not None and rule.panel not in board.panel_ids():
                problems.append(
                    Problem(
                        template.file,
                        join(rule.path, "panel"),
                        f"no such panel in {board.file}",
                        rule.panel,
                        "one of " + ", ".join(board.panel_ids()),
                    )
                )
    return problems


def _check_panel_sources(
    dashboards: dict[str, DashboardTemplate], alerts: dict[str, AlertTemplate]
) -> list[Problem]:
    """Panel targets naming an alert rule, and burn-rate panels, point at something that exists."""
    problems = []
    rules = {f"{t.id}.{r.id}" for t in alerts.values() for r in t.rules}
    tiers = {
        f"{t.burn_rate.slo}.{tier}"
        for t in alerts.values()
        if t.burn_rate is not None
        for per in t.burn_rate.windows.values()
        for tier in per
    }
    for board in dashboards.values():
        for row in board.rows:
            for panel in row.panels:
                for target in panel.targets:
                    if target.alert is not None and target.alert not in rules:
                        problems.append(
                            Problem(
                                board.file,
                                join(target.path, "alert"),
                                "no such alert rule",
                                target.alert,
                                "<alert template>.<rule id>, one of " + ", ".join(sorted(rules)),
                            )
                        )
                if panel.burn_rate is not None and panel.burn_rate not in tiers:
                    problems.append(
                        Problem(
                            board.file,
                            join(panel.path, "burn_rate"),
                            "no such burn-rate tier",
                            panel.burn_rate,
                            "one of " + ", ".join(sorted(tiers)),
                        )
                    )
    return problems


def _probe(reader: Reader, path: str, text: Any, scope: Scope) -> None:
    """Expand ``text`` once with sample values so unknown names are reported at load time."""
    if not isinstance(text, str):
        return
    for match in PLACEHOLDER.finditer(text):  # one by one, to report every bad name
        try:
            expand(match.group(0), scope)
        except PlaceholderError as exc:
            reader.problem(path, str(exc), exc.placeholder, exc.expected)


def _sample_scope(
    values: Iterable[str], params: dict[str, Parameter] | None = None, burn: BurnRate | None = None
) -> Scope:
    functions: dict[str, Any] = {"sli_error": lambda arg: "vector(1)"}
    if burn is not None:
        tiers = {t for per in burn.windows.values() for t in per}

        def burn_rate(tier: str) -> str:
            if tier not in tiers:
                raise PlaceholderError(
                    f"${{burn_rate:{tier}}}",
                    f"no burn-rate tier {tier!r}",
                    "one of " + ", ".join(sorted(tiers)),
                )
            return "vector(1)"

        functions["burn_rate"] = burn_rate
    sample_params: dict[str, Any] = {name: p.default for name, p in (params or {}).items()}
    sample_params.update({name: "x" for name in IMPLICIT_PARAMS})
    return Scope(
        values={v: "x" for v in values},
        params=sample_params,
        slo={k: "1" for k in SLO_KEYS},
        functions=functions,
    )


def _requires(reader: Reader, raw: dict[str, Any], path: str = "") -> tuple[str, ...]:
    reqs = reader.get(raw, path, "requires", list, default=[])
    for i, req in enumerate(reqs or []):
        if req not in REQUIREMENTS:
            reader.problem(
                join(join(path, "requires"), i),
                "unknown requirement",
                req,
                "one of " + ", ".join(REQUIREMENTS),
            )
    return tuple(r for r in reqs or [] if r in REQUIREMENTS)


_DASHBOARD_KEYS = {
    "title": "",
    "description": "",
    "requires": "",
    "tags": "",
    "variables": "",
    "rows": "",
    "order": "",
}
_ROW_KEYS = {"title": "", "collapsed": "", "panels": ""}
_PANEL_KEYS = {
    "key": "",
    "title": "",
    "type": "",
    "datasource": "",
    "description": "",
    "unit": "",
    "width": "",
    "height": "",
    "decimals": "",
    "min": "",
    "max": "",
    "targets": "",
    "links": "",
    "requires": "",
    "thresholds": "",
    "burn_rate": "",
    "sort_desc": "",
    "no_value": "",
}
_TARGET_KEYS = {
    "expr": "",
    "alert": "",
    "legend": "",
    "instant": "",
    "expect_data": "",
    "reason": "",
    "exemplars": "",
}
_LINK_KEYS = {"title": "", "url": "", "explore": ""}
_VARIABLE_KEYS = {
    "name": "",
    "label": "",
    "values": "",
    "query": "",
    "multi": "",
    "include_all": "",
}
_RESERVED_VARIABLES = ("prometheus", "loki", "tempo", "env", "service")


def _parse_dashboard(stem: str, doc: Located) -> tuple[DashboardTemplate | None, list[Problem]]:
    r = Reader(doc)
    raw = r.mapping(doc.data, "", _DASHBOARD_KEYS)
    scope = _sample_scope(DASHBOARD_VALUES)
    title = r.get(raw, "", "title", str)
    _probe(r, "title", title, scope)
    variables = []
    for i, v in enumerate(r.sequence(raw, "", "variables")):
        path = join("variables", i)
        v = r.mapping(v, path, _VARIABLE_KEYS)
        name = r.get(v, path, "name", str)
        if name in _RESERVED_VARIABLES:
            r.problem(
                join(path, "name"),
                "variable name is reserved (always defined)",
                name,
                "a name other than " + ", ".join(_RESERVED_VARIABLES),
            )
        query = r.get(v, path, "query", str, default=None)
        _probe(r, join(path, "query"), query, scope)
        values = (
            r.get(v, path, "values", str, expected="comma-separated values")
            if query is None
            else ""
        )
        _probe(r, join(path, "values"), values, scope)
        variables.append(
            VariableTemplate(
                name=name or "",
                values=values or "",
                label=r.get(v, path, "label", str, default=None),
                multi=r.get(v, path, "multi", bool, default=True),
                include_all=r.get(v, path, "include_all", bool, default=True),
                query=query,
            )
        )
    rows = []
    keys: set[str] = set()
    for i, row in enumerate(r.sequence(raw, "", "rows")):
        rpath = join("rows", i)
        row = r.mapping(row, rpath, _ROW_KEYS)
        panels = []
        for j, panel in enumerate(r.sequence(row, rpath, "panels")):
            ppath = join(join(rpath, "panels"), j)
            parsed = _parse_panel(r, panel, ppath, scope)
            if parsed is None:
                continue
            if parsed.key in keys:
                r.problem(join(ppath, "key"), "duplicate panel key", parsed.key, "a unique key")
            keys.add(parsed.key)
            panels.append(parsed)
        rows.append(
            RowTemplate(
                title=r.get(row, rpath, "title", str) or "",
                panels=tuple(panels),
                collapsed=r.get(row, rpath, "collapsed", bool, default=False),
            )
        )
    if not rows and "rows" in raw:
        r.problem("rows", "a dashboard needs at least one row", None, "a list of rows")
    template = DashboardTemplate(
        id=stem,
        title=title or stem,
        file=doc.file,
        rows=tuple(rows),
        description=r.get(raw, "", "description", str, default=""),
        requires=_requires(r, raw),
        tags=tuple(r.get(raw, "", "tags", list, default=[]) or []),
        variables=tuple(variables),
        order=r.get(raw, "", "order", int, default=100),
    )
    return template, r.problems


def _parse_panel(r: Reader, raw: Any, path: str, scope: Scope) -> PanelTemplate | None:
    raw = r.mapping(raw, path, _PANEL_KEYS)
    if not raw:
        return None
    kind = r.get(raw, path, "type", str, default="timeseries")
    if kind not in PANEL_TYPES:
        r.problem(
            join(path, "type"), "unknown panel type", kind, "one of " + ", ".join(PANEL_TYPES)
        )
    ds = r.get(raw, path, "datasource", str, default="prometheus")
    if ds not in DATASOURCES:
        r.problem(
            join(path, "datasource"),
            "unknown datasource kind",
            ds,
            "one of " + ", ".join(DATASOURCES),
        )
    targets = []
    for k, t in enumerate(r.sequence(raw, path, "targets")):
        tpath = join(join(path, "targets"), k)
        t = r.mapping(t, tpath, _TARGET_KEYS)
        alert = r.get(t, tpath, "alert", str, default=None)
        if (alert is None) == ("expr" not in t):
            r.problem(
                tpath,
                "a target needs exactly one of expr or alert",
                None,
                "expr: <query>, or alert: <alert template>.<rule id>",
            )
        expr = r.get(t, tpath, "expr", str, default=None) if alert is None else None
        _probe(r, join(tpath, "expr"), expr, scope)
        expect = r.get(t, tpath, "expect_data", bool, default=True)
        reason = r.get(t, tpath, "reason", str, default=None)
        if expect is False and not reason:
            r.problem(
                join(tpath, "reason"),
                "expect_data: false needs a reason",
                None,
                "a sentence saying when this query returns nothing",
            )
        legend = r.get(t, tpath, "legend", str, default=None)
        _probe(r, join(tpath, "legend"), legend, scope)
        targets.append(
            TargetTemplate(
                expr=expr or "",
                path=tpath,
                legend=legend,
                instant=r.get(t, tpath, "instant", bool, default=False),
                expect_data=expect,
                reason=reason,
                alert=alert,
                exemplars=r.get(t, tpath, "exemplars", bool, default=False),
            )
        )
    burn_rate = r.get(raw, path, "burn_rate", str, default=None)
    if burn_rate is not None and len(burn_rate.split(".")) != 2:
        r.problem(
            join(path, "burn_rate"),
            "not an SLO tier",
            burn_rate,
            "<slo>.<tier>, e.g. availability.page",
        )
    if not targets and burn_rate is None and kind != "alertlist":
        r.problem(
            join(path, "targets"), "a panel needs at least one query", None, "a list of targets"
        )
    links = []
    for k, link in enumerate(r.sequence(raw, path, "links")):
        lpath = join(join(path, "links"), k)
        link = r.mapping(link, lpath, _LINK_KEYS)
        explore = r.mapping(
            link.get("explore"), join(lpath, "explore"), {"datasource": "", "query": ""}
        )
        url = r.get(link, lpath, "url", str, default=None)
        if (url is None) == (not explore):
            r.problem(lpath, "a link needs exactly one of url or explore", None, "url: or explore:")
        query = r.get(explore, join(lpath, "explore"), "query", str) if explore else None
        _probe(r, join(lpath, "explore.query"), query, scope)
        link_ds = r.get(explore, join(lpath, "explore"), "datasource", str) if explore else None
        if explore and link_ds not in DATASOURCES:
            r.problem(
                join(lpath, "explore.datasource"),
                "unknown datasource kind",
                link_ds,
                "one of " + ", ".join(DATASOURCES),
            )
        links.append(
            LinkTemplate(
                title=r.get(link, lpath, "title", str) or "",
                url=url,
                explore_datasource=link_ds,
                explore_query=query,
            )
        )
    thresholds = []
    for k, step in enumerate(r.sequence(raw, path, "thresholds")):
        spath = join(join(path, "thresholds"), k)
        step = r.mapping(step, spath, {"color": "", "value": ""})
        color = r.get(step, spath, "color", str)
        if color not in THRESHOLD_COLORS:
            r.problem(
                join(spath, "color"),
                "unknown colour",
                color,
                "one of " + ", ".join(THRESHOLD_COLORS),
            )
        value = step.get("value")
        if (value is None) != (k == 0):
            r.problem(
                spath,
                "only the first (base) step has no value",
                value,
                "value: on every later step",
            )
        _probe(r, join(spath, "value"), value, scope)
        thresholds.append(ThresholdStep(color=color or "red", value=value))
    title = r.get(raw, path, "title", str)
    _probe(r, join(path, "title"), title, scope)
    description = r.get(raw, path, "description", str, default="")
    _probe(r, join(path, "description"), description, scope)
    return PanelTemplate(
        key=r.get(raw, path, "key", str) or path,
        title=title or "",
        type=kind or "timeseries",
        datasource=ds or "prometheus",
        path=path,
        targets=tuple(targets),
        description=description or "",
        unit=r.get(raw, path, "unit", str, default=None),
        width=r.get(raw, path, "width", int, default=12),
        height=r.get(raw, path, "height", int, default=8),
        decimals=r.get(raw, path, "decimals", int, default=None),
        min=r.get(raw, path, "min", (int, float), default=None),
        max=r.get(raw, path, "max", (int, float), default=None),
        links=tuple(links),
        requires=_requires(r, raw, path),
        thresholds=tuple(thresholds),
        burn_rate=burn_rate,
        sort_desc=r.get(raw, path, "sort_desc", str, default=None),
        no_value=r.get(raw, path, "no_value", str, default=None),
    )


_ALERT_KEYS = {
    "title": "",
    "description": "",
    "requires": "",
    "runbook_url": "",
    "parameters": "",
    "burn_rate": "",
    "rules": "",
    "tests": "",
}
_PARAM_KEYS = {
    "type": "",
    "default": "",
    "description": "",
    "minimum": "",
    "maximum": "",
    "by_tier": "",
    "with": "",
    "histogram": "",
}
_RULE_KEYS = {
    "id": "",
    "alert": "",
    "title": "",
    "expr": "",
    "op": "",
    "threshold": "",
    "for": "",
    "severity": "",
    "enabled": "",
    "labels": "",
    "summary": "",
    "description": "",
    "dashboard": "",
    "panel": "",
    "no_data": "",
    "exec_err": "",
    "per_environment": "",
}
_TEST_KEYS = {
    "name": "",
    "eval_time": "",
    "interval": "",
    "params": "",
    "slo_window": "",
    "input_series": "",
    "firing": "",
}


def _parse_alert(stem: str, doc: Located) -> tuple[AlertTemplate | None, list[Problem]]:
    r = Reader(doc)
    raw = r.mapping(doc.data, "", _ALERT_KEYS)
    params: dict[str, Parameter] = {}
    for name, p in r.mapping(raw.get("parameters"), "parameters").items():
        ppath = join("parameters", name)
        if name in IMPLICIT_PARAMS:
            r.problem(
                ppath,
                "parameter is implicit on every template, do not declare it",
                name,
                "a name other than " + ", ".join(IMPLICIT_PARAMS),
            )
            continue
        p = r.mapping(p, ppath, _PARAM_KEYS)
        kind = r.get(p, ppath, "type", str)
        if kind not in PARAM_TYPES:
            r.problem(
                join(ppath, "type"),
                "unknown parameter type",
                kind,
                "one of " + ", ".join(PARAM_TYPES),
            )
            continue
        by_tier: dict[int, Any] = {}
        for tier, value in r.mapping(p.get("by_tier"), join(ppath, "by_tier")).items():
            if not isinstance(tier, int):
                r.problem(
                    join(ppath, f"by_tier.{tier}"), "tier must be an integer", tier, "1, 2 or 3"
                )
            else:
                by_tier[tier] = value
        with_: dict[str, Any] = {}
        for req, value in r.mapping(p.get("with"), join(ppath, "with")).items():
            if req not in REQUIREMENTS:
                r.problem(
                    join(ppath, f"with.{req}"),
                    "unknown requirement",
                    req,
                    "one of " + ", ".join(REQUIREMENTS),
                )
            else:
                with_[req] = value
        param = Parameter(
            name=name,
            type=kind,
            default=p.get("default"),
            description=r.get(p, ppath, "description", str, default=""),
            minimum=r.get(p, ppath, "minimum", (int, float), default=None),
            maximum=r.get(p, ppath, "maximum", (int, float), default=None),
            by_tier=by_tier,
            with_=with_,
            histogram=r.get(p, ppath, "histogram", str, default=None),
        )
        if (
            param.histogram is not None
            and getattr(conventions.METRICS.get(param.histogram), "buckets", None) is None
        ):
            r.problem(
                join(ppath, "histogram"),
                "not a histogram of the conventions",
                param.histogram,
                "one of "
                + ", ".join(n for n, m in conventions.METRICS.items() if m.buckets is not None),
            )
        for where, value in (
            [("default", param.default)]
            + [(f"by_tier.{t}", v) for t, v in by_tier.items()]
            + [(f"with.{req}", v) for req, v in with_.items()]
        ):
            why = param.check(value)
            if why:
                r.problem(join(ppath, where), "invalid parameter default", value, why)
        params[name] = param
    burn = _parse_burn_rate(r, raw.get("burn_rate")) if "burn_rate" in raw else None
    scope = _sample_scope(ALERT_VALUES, params, burn)
    rules = []
    for i, rule in enumerate(r.sequence(raw, "", "rules")):
        parsed = _parse_rule(r, rule, join("rules", i), scope)
        if parsed is not None:
            rules.append(parsed)
    if not rules:
        r.problem("rules", "an alert template needs at least one rule", None, "a list of rules")
    if len({rule.id for rule in rules}) != len(rules):
        r.problem(
            "rules",
            "rule ids must be unique within a template",
            [x.id for x in rules],
            "unique ids",
        )
    tests = []
    for i, case in enumerate(r.sequence(raw, "", "tests")):
        case = r.mapping(case, join("tests", i), _TEST_KEYS)
        for j, f in enumerate(case.get("firing") or []):
            rid = f.get("rule") if isinstance(f, dict) else f
            if rid not in {x.id for x in rules}:
                r.problem(
                    join(join(join("tests", i), "firing"), j),
                    "no such rule id",
                    rid,
                    "one of " + ", ".join(x.id for x in rules),
                )
        tests.append(case)
    runbook = r.get(raw, "", "runbook_url", str, default="")
    _probe(r, "runbook_url", runbook, scope)
    template = AlertTemplate(
        id=stem,
        title=r.get(raw, "", "title", str) or stem,
        file=doc.file,
        parameters=params,
        rules=tuple(rules),
        description=r.get(raw, "", "description", str, default=""),
        requires=_requires(r, raw),
        runbook_url=runbook,
        burn_rate=burn,
        tests=tuple(tests),
    )
    return template, r.problems


def _parse_burn_rate(r: Reader, raw: Any) -> BurnRate | None:
    raw = r.mapping(raw, "burn_rate", {"slo": "", "error_ratio": "", "windows": ""})
    slo = r.get(raw, "burn_rate", "slo", str)
    if slo not in ("availability", "latency"):
        r.problem("burn_rate.slo", "unknown SLO kind", slo, "availability or latency")
    ratio = r.get(raw, "burn_rate", "error_ratio", str)
    if ratio and "${window}" not in ratio:
        r.problem(
            "burn_rate.error_ratio",
            "the error ratio must use ${window}",
            ratio,
            "a ratio expression over [${window}]",
        )
    _probe(r, "burn_rate.error_ratio", ratio, _sample_scope((*ALERT_VALUES, "window")))
    windows: dict[str, dict[str, tuple[WindowPair, ...]]] = {}
    for period, tiers in r.mapping(raw.get("windows"), "burn_rate.windows").items():
        wpath = join("burn_rate.windows", period)
        if durations.seconds(period) is None:
            r.problem(wpath, "SLO period must be a duration", period, "e.g. 30d or 28d")
        windows[period] = {}
        for tier, pairs in r.mapping(tiers, wpath).items():
            tpath = join(wpath, tier)
            out = []
            for k, pair in enumerate(pairs if isinstance(pairs, list) else []):
                ppath = join(tpath, k)
                pair = r.mapping(pair, ppath, {"long": "", "short": "", "factor": ""})
                long_, short = r.get(pair, ppath, "long", str), r.get(pair, ppath, "short", str)
                factor = r.get(pair, ppath, "factor", (int, float))
                for key, w in (("long", long_), ("short", short)):
                    if w is not None and durations.seconds(w) is None:
                        r.problem(join(ppath, key), "not a duration", w, "e.g. 5m, 1h, 3d")
                if None not in (long_, short, factor):
                    out.append(WindowPair(long_, short, float(factor)))
            if not out:
                r.problem(
                    tpath,
                    "a tier needs at least one window pair",
                    pairs,
                    "a list of {long, short, factor}",
                )
            windows[period][tier] = tuple(out)
    if slo is None or ratio is None:
        return None
    return BurnRate(slo=slo, error_ratio=ratio, windows=windows)


def _parse_rule(r: Reader, raw: Any, path: str, scope: Scope) -> RuleTemplate | None:
    raw = r.mapping(raw, path, _RULE_KEYS)
    if not raw:
        return None
    for key in (
        "expr",
        "title",
        "alert",
        "summary",
        "description",
        "threshold",
        "for",
        "severity",
        "enabled",
    ):
        _probe(r, join(path, key), raw.get(key), scope)
    labels = r.mapping(raw.get("labels"), join(path, "labels"))
    for key, value in labels.items():
        _probe(r, join(join(path, "labels"), key), value, scope)
    op = r.get(raw, path, "op", str, default=None)
    if op is not None and op not in OPERATORS:
        r.problem(join(path, "op"), "unknown comparison", op, "one of " + " ".join(OPERATORS))
    if (op is None) != ("threshold" not in raw):
        r.problem(
            path,
            "op and threshold go together",
            None,
            "both (expr is a value), or neither (expr already compares)",
        )
    no_data = r.get(raw, path, "no_data", str, default="NoData")
    if no_data not in NO_DATA_STATES:
        r.problem(
            join(path, "no_data"),
            "invalid no-data state",
            no_data,
            "one of " + ", ".join(NO_DATA_STATES),
        )
    exec_err = r.get(raw, path, "exec_err", str, default="Error")
    if exec_err not in EXEC_ERR_STATES:
        r.problem(
            join(path, "exec_err"),
            "invalid error state",
            exec_err,
            "one of " + ", ".join(EXEC_ERR_STATES),
        )
    if "panel" in raw and "dashboard" not in raw:
        r.problem(
            join(path, "panel"), "panel needs dashboard", raw["panel"], "dashboard: <template id>"
        )
    return RuleTemplate(
        id=r.get(raw, path, "id", str) or path,
        alert=r.get(raw, path, "alert", str) or "",
        title=r.get(raw, path, "title", str) or "",
        expr=r.get(raw, path, "expr", str) or "",
        path=path,
        summary=r.get(raw, path, "summary", str) or "",
        description=r.get(raw, path, "description", str) or "",
        op=op,
        threshold=raw.get("threshold"),
        for_=str(raw.get("for", "5m")),
        severity=str(raw.get("severity", "warning")),
        enabled=raw.get("enabled", True),
        labels={str(k): str(v) for k, v in labels.items()},
        dashboard=r.get(raw, path, "dashboard", str, default=None),
        panel=r.get(raw, path, "panel", str, default=None),
        no_data=no_data or "NoData",
        exec_err=exec_err or "Error",
        per_environment=r.get(raw, path, "per_environment", bool, default=False),
    )
