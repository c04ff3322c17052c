"""Platform guardrails as data: rules in ``policies/platform.yaml`` checked against every service.

The platform team states policy in a file next to the templates; changing a rule is editing that
file, not code. A rule is::

    - id: tier1-availability-slo               # unique, shown in every message
      description: Tier-1 services have an availability SLO.
      when: {tier: 1}                          # optional: the rule applies only if all hold
      require:                                 # every condition must hold
        slos.availability.objective: {exists: true}
      fix: Add slos.availability.objective (e.g. 99.9).
      severity: error                          # or warning (printed, does not fail)

Conditions map a key path of the service's *effective* config (defaults filled in, alert templates
resolved to their parameters or ``false``) to a scalar (equality) or to operators: ``exists``,
``equals``, ``not_equals``, ``in``, ``not_in``, ``matches``, ``not_matches`` (Python regex,
``re.search``), ``min`` (>=), ``max`` (<=).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from platform_obs.provisioning.model import Problem
from platform_obs.provisioning.reader import Reader
from platform_obs.provisioning.render import label_scheme
from platform_obs.provisioning.render.dashboards import selected_dashboards
from platform_obs.provisioning.render.definitions import resolve_params
from platform_obs.provisioning.spec import API_VERSION, ServiceSpec
from platform_obs.provisioning.templates import Templates
from platform_obs.provisioning.yamlsrc import Located, join, parse

KIND = "Policy"
POLICY_FILE = "platform.yaml"
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
SEVERITIES = ("error", "warning")
OPERATORS = (
    "exists",
    "equals",
    "not_equals",
    "in",
    "not_in",
    "matches",
    "not_matches",
    "min",
    "max",
)
_RULE_KEYS = {
    "id": "unique rule id",
    "description": "what the rule asks for, in one sentence",
    "when": "conditions that make the rule apply (default: always)",
    "require": "conditions every service it applies to must meet",
    "fix": "how a service owner fixes a violation",
    "severity": "error (default) or warning",
}
_MISSING = object()


@dataclass(frozen=True)
class Condition:
    path: str
    #: Operator -> operand; a bare scalar in the file is ``{"equals": value}``.
    ops: dict[str, Any]
    #: Compiled patterns of ``matches`` / ``not_matches``.
    patterns: dict[str, re.Pattern[str]] = field(default_factory=dict, compare=False)

    def failure(self, value: Any) -> str | None:
        """Why ``value`` (``_MISSING`` when absent) fails this condition, or None when it holds."""
        for op, want in self.ops.items():
            why = self._check(op, want, value)
            if why:
                return why
        return None

    def _check(self, op: str, want: Any, value: Any) -> str | None:
        missing = value is _MISSING
        if op == "exists":
            if bool(want) == missing:
                return "is missing" if want else f"must not be set (is {_show(value)})"
            return None
        if missing:
            return f"is missing (must be set{_requirement(op, want)})"
        if op == "equals":
            return None if _equal(value, want) else f"is {_show(value)}, must be {_show(want)}"
        if op == "not_equals":
            return f"must not be {_show(want)}" if _equal(value, want) else None
        if op == "in":
            if any(_equal(value, w) for w in want):
                return None
            return f"is {_show(value)}, must be one of {', '.join(map(_show, want))}"
        if op == "not_in":
            return (
                f"is {_show(value)}, which is not allowed"
                if any(_equal(value, w) for w in want)
                else None
            )
        if op in ("matches", "not_matches"):
            found = isinstance(value, str) and self.patterns[op].search(value) is not None
            if op == "matches" and not found:
                return f"is {_show(value)}, must match {want}"
            if op == "not_matches" and found:
                return f"is {_show(value)}, must not match {want}"
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f"is {_show(value)}, must be a number"
        if op == "min" and value < want:
            return f"is {value:g}, must be at least {want:g}"
        if op == "max" and value > want:
            return f"is {value:g}, must be at most {want:g}"
        return None


def _requirement(op: str, want: Any) -> str:
    words = {
        "equals": f" to {_show(want)}",
        "in": f" to one of {_show(want)}",
        "matches": f" and match {want}",
        "min": f" to at least {want}",
        "max": f" to at most {want}",
    }
    return words.get(op, "")


def _show(value: Any) -> str:
    """A value as it is written in YAML (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(map(_show, value)) + "]"
    return repr(value)


def _equal(a: Any, b: Any) -> bool:
    # YAML `true` must not equal 1; `99` equals `99.0`.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    require: tuple[Condition, ...]
    fix: str
    when: tuple[Condition, ...] = ()
    severity: str = "error"
    file: str = ""
    line: int | None = None


@dataclass(frozen=True)
class Policy:
    file: str
    rules: tuple[Rule, ...] = ()
    #: ``platform.metric_labels``: how the metrics backend labels series, for every service
    #: (:mod:`platform_obs.provisioning.render.label_scheme`).
    metric_labels: str = label_scheme.PROMOTED


# --- loading ------------------------------------------------------------------------------------


def packaged_policy() -> Traversable:
    return resources.files("platform_obs") / "templates" / "policies" / POLICY_FILE


def policy_source(templates_dir: Path | None, policy_file: Path | None) -> Path | Traversable:
    """``--policy`` wins; then ``<templates_dir>/policies/platform.yaml``; then the packaged one."""
    if policy_file is not None:
        return policy_file
    if templates_dir is not None:
        candidate = templates_dir / "policies" / POLICY_FILE
        if candidate.is_file():
            return candidate
    return packaged_policy()


def load_policy(source: Path | Traversable) -> tuple[Policy, list[Problem]]:
    """Parse and check a policy file; problems name the policy file, key path and line."""
    name = f"policies/{POLICY_FILE}" if source == packaged_policy() else str(source)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Policy(name), [Problem(name, "", f"cannot read policy file: {exc}")]
    doc = parse(text, name)
    if doc.problems or doc.data is None:
        return Policy(name), doc.problems or [
            Problem(name, "", "policy file is empty", None, f"kind: {KIND} with rules: [...]")
        ]
    return parse_policy(doc)


def parse_policy(doc: Located) -> tuple[Policy, list[Problem]]:
    r = Reader(doc)
    top = r.mapping(doc.data, "", {"apiVersion": "", "kind": "", "platform": "", "rules": ""})
    if top.get("apiVersion") != API_VERSION:
        r.problem("apiVersion", "wrong value", top.get("apiVersion"), repr(API_VERSION))
    if top.get("kind") != KIND:
        r.problem("kind", "wrong value", top.get("kind"), repr(KIND))
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(r.sequence(top, "", "rules")):
        rule = _parse_rule(r, raw, join("rules", i))
        if rule is None:
            continue
        if rule.id in seen:
            r.problem(join(join("rules", i), "id"), "duplicate rule id", rule.id, "unique ids")
        seen.add(rule.id)
        rules.append(rule)
    platform = r.mapping(top.get("platform"), "platform", {"metric_labels": ""})
    scheme = r.get(platform, "platform", "metric_labels", str, default=label_scheme.PROMOTED)
    if scheme not in label_scheme.SCHEMES:
        r.problem(
            "platform.metric_labels",
            "unknown label scheme",
            scheme,
            " or ".join(label_scheme.SCHEMES),
        )
        scheme = label_scheme.PROMOTED
    return Policy(doc.file, tuple(rules), scheme), r.problems


def _parse_rule(r: Reader, raw: Any, path: str) -> Rule | None:
    before = len(r.problems)
    rule = r.mapping(raw, path, _RULE_KEYS)
    if not rule:
        if raw is not None and not isinstance(raw, dict):
            return None
        r.problem(path, "empty rule", None, "id, description, require, fix")
        return None
    rule_id = r.get(rule, path, "id", str, expected="lower-case letters, digits and dashes")
    if isinstance(rule_id, str) and not RULE_ID.match(rule_id):
        r.problem(
            join(path, "id"), "invalid rule id", rule_id, "lower-case letters, digits, dashes"
        )
    description = r.get(rule, path, "description", str, expected="a sentence")
    fix = r.get(rule, path, "fix", str, expected="how to fix a violation")
    severity = r.get(rule, path, "severity", str, default="error")
    if severity not in SEVERITIES:
        r.problem(join(path, "severity"), "not an allowed value", severity, " or ".join(SEVERITIES))
    when = _conditions(r, rule.get("when"), join(path, "when"), required=False)
    require = _conditions(r, rule.get("require"), join(path, "require"), required=True)
    if len(r.problems) > before:
        return None
    return Rule(
        id=rule_id,
        description=description,
        require=require,
        fix=fix,
        when=when,
        severity=severity,
        file=r.doc.file,
        line=r.doc.line(path),
    )


def _conditions(r: Reader, raw: Any, path: str, *, required: bool) -> tuple[Condition, ...]:
    if raw is None and not required:
        return ()
    conditions = r.mapping(raw, path)
    if not conditions:
        if required:
            r.problem(path, "required key is missing", None, "a mapping of key path -> condition")
        return ()
    out = []
    for key, spec in conditions.items():
        where = join(path, str(key))
        if not isinstance(key, str) or not key:
            r.problem(where, "condition key must be a key path", key, "e.g. slos.availability")
            continue
        ops = dict(spec) if isinstance(spec, dict) else {"equals": spec}
        if not ops:
            r.problem(where, "empty condition", None, "one of " + ", ".join(OPERATORS))
            continue
        patterns: dict[str, re.Pattern[str]] = {}
        for op, want in ops.items():
            at = join(where, str(op))
            if op not in OPERATORS:
                r.problem(at, "unknown operator", op, "one of " + ", ".join(OPERATORS))
            elif op == "exists" and not isinstance(want, bool):
                r.problem(at, "wrong type", want, "true or false")
            elif op in ("in", "not_in") and not isinstance(want, list):
                r.problem(at, "wrong type", want, "a list of values")
            elif op in ("min", "max") and (
                not isinstance(want, int | float) or isinstance(want, bool)
            ):
                r.problem(at, "wrong type", want, "a number")
            elif op in ("matches", "not_matches"):
                try:
                    patterns[op] = re.compile(str(want))
                except re.error as exc:
                    r.problem(at, f"invalid regular expression: {exc}", want, "a Python regex")
        out.append(Condition(key, ops, patterns))
    return tuple(out)


# --- checking -----------------------------------------------------------------------------------


def effective_config(spec: ServiceSpec, templates: Templates) -> dict[str, Any]:
    """The service config as the templates see it: defaults filled in, alerts resolved.

    ``alerts.<template>`` is ``False`` when the template is switched off or does not apply
    (e.g. a burn-rate template without its SLO), else its resolved parameters.
    """
    doc: dict[str, Any] = {
        "service": spec.name,
        "team": spec.team,
        "receiver": spec.receiver,
        "tier": spec.tier,
        "environments": list(spec.environments),
        "runbook_base_url": spec.runbook_base_url,
        "labels": dict(spec.labels),
        "evaluation_interval": spec.evaluation_interval,
        "dashboards": [t.id for t in selected_dashboards(spec, templates)],
        "custom_alerts": [c.name for c in spec.custom_alerts],
    }
    if spec.namespace:
        doc["namespace"] = spec.namespace
    if spec.slos is not None:
        slos: dict[str, Any] = {"window": spec.slos.window}
        if spec.slos.availability is not None:
            slos["availability"] = {"objective": spec.slos.availability}
        if spec.slos.latency is not None:
            slos["latency"] = {
                "threshold": spec.slos.latency.threshold,
                "objective": spec.slos.latency.objective,
            }
        doc["slos"] = slos
    alerts: dict[str, Any] = {}
    for tid, template in sorted(templates.alerts.items()):
        on = spec.alerts.get(tid, True) is not False and all(map(spec.satisfies, template.requires))
        if on:
            params = resolve_params(spec, template)
            alerts[tid] = {k: v for k, v in params.items() if v is not None}
        else:
            alerts[tid] = False
    doc["alerts"] = alerts
    return doc


def lookup(doc: Any, path: str) -> Any:
    """The value at a dotted key path, or ``_MISSING``."""
    return _walk(doc, path)[0]


def _walk(doc: Any, path: str) -> tuple[Any, str]:
    """(value or ``_MISSING``, the key path of a switched-off alert template on the way)."""
    node, seen = doc, ""
    for part in path.split("."):
        if node is False:  # e.g. alerts.<template>: false
            return _MISSING, seen
        seen = f"{seen}.{part}" if seen else part
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING, ""
    return node, ""


def _applies(rule: Rule, doc: dict[str, Any]) -> bool:
    return all(c.failure(lookup(doc, c.path)) is None for c in rule.when)


def _line(spec: ServiceSpec, path: str, rule: Rule) -> int | None:
    """Line of the key itself; else of its nearest ancestor in the file; else of a `when` key."""
    probe = path
    while probe:
        if probe in spec.lines:
            return spec.lines[probe]
        probe = probe.rpartition(".")[0]
    for cond in rule.when:
        if cond.path in spec.lines:
            return spec.lines[cond.path]
    return None


def check(policy: Policy, spec: ServiceSpec, templates: Templates) -> list[tuple[Rule, Problem]]:
    """Every violation of every rule by one service."""
    doc = effective_config(spec, templates)
    out: list[tuple[Rule, Problem]] = []
    for rule in policy.rules:
        if not _applies(rule, doc):
            continue
        for cond in rule.require:
            value, off = _walk(doc, cond.path)
            why = cond.failure(value)
            if why is None:
                continue
            if off:
                why += f" ({off} is off: switched off in the config, or its SLO is not set)"
            message = (
                f"{rule.severity} from policy rule {rule.id!r} ({rule.description}): "
                f"{cond.path} {why}. Fix: {rule.fix}"
            )
            problem = Problem(spec.file, cond.path, message, None, "", _line(spec, cond.path, rule))
            out.append((rule, problem))
    return out


def check_specs(
    policy: Policy, specs: list[ServiceSpec], templates: Templates
) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) over every service."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for spec in specs:
        for rule, problem in check(policy, spec, templates):
            (warnings if rule.severity == "warning" else errors).append(problem)
    return errors, warnings
