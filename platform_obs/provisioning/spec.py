"""The service config (``platform-obs.yaml``): load, check against the JSON Schema, build specs.

One file per service, ``apiVersion: platform-obs/v1``, ``kind: Service``. The JSON Schema shipped
next to this module is the contract (editors use it through
``# yaml-language-server: $schema=...``); its errors are mapped to :class:`Problem` objects naming
file, key path, line, bad value and what was expected. Checks that need the templates (template
ids, parameter names and types) live in :mod:`platform_obs.provisioning.validate`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema_rs

from platform_obs.provisioning import durations, scalars, units
from platform_obs.provisioning.model import Problem, ValidationFailed
from platform_obs.provisioning.placeholders import did_you_mean
from platform_obs.provisioning.yamlsrc import Located, join, load

if TYPE_CHECKING:
    import jsonschema

API_VERSION = "platform-obs/v1"
KIND = "Service"
SCHEMA_FILE = "service-config.schema.json"
CONFIG_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LatencySLO:
    #: Seconds; a histogram bucket boundary so the SLI is exact.
    threshold: float
    #: Percent, e.g. 99.0.
    objective: float


@dataclass(frozen=True)
class SLOs:
    window: str = "30d"
    #: Percent of requests that must not fail, e.g. 99.9.
    availability: float | None = None
    latency: LatencySLO | None = None


@dataclass(frozen=True)
class CustomAlert:
    name: str
    expr: str
    summary: str
    path: str
    for_: str = "5m"
    severity: str = "warning"
    receiver: str | None = None
    description: str = ""
    runbook_url: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    no_data: str = "OK"


@dataclass(frozen=True)
class Datasources:
    prometheus: str = "prometheus"
    loki: str = "loki"
    tempo: str = "tempo"


@dataclass(frozen=True)
class ServiceSpec:
    """One service config, checked against the schema."""

    name: str
    team: str
    receiver: str
    file: str
    namespace: str | None = None
    environments: tuple[str, ...] = ("production",)
    #: Environments whose alerts may page (``critical``); ``None``: the first environment only.
    paging_environments: tuple[str, ...] | None = None
    tier: int = 2
    runbook_base_url: str = "https://runbooks.example.com/platform-obs"
    labels: dict[str, str] = field(default_factory=dict)
    datasources: Datasources = Datasources()
    evaluation_interval: str = "1m"
    #: Dashboard template ids; ``None`` means every template that applies.
    dashboards: tuple[str, ...] | None = None
    slos: SLOs | None = None
    #: Alert template id -> ``False`` (disabled) or parameter overrides.
    alerts: dict[str, bool | dict[str, Any]] = field(default_factory=dict)
    custom_alerts: tuple[CustomAlert, ...] = ()
    #: How the platform's metrics backend labels series (``promoted`` or ``target_info``). Set by
    #: the platform policy (``platform.metric_labels``) for every service, never by its config.
    metric_labels: str = "promoted"
    #: Line of each key path, for messages about this file.
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def pages_in(self) -> tuple[str, ...]:
        """Environments where a critical alert stays critical (elsewhere it is a warning)."""
        if self.paging_environments is None:
            return self.environments[:1]
        return self.paging_environments

    def line(self, path: str) -> int | None:
        return Located(self.file, None, self.lines).line(path)

    def problem(self, path: str, message: str, value: Any = None, expected: str = "") -> Problem:
        return Problem(self.file, path, message, value, expected, self.line(path))

    def satisfies(self, requirement: str) -> bool:
        """Whether the service meets a template requirement (``slo``, ``slo.latency`` ...)."""
        slos = self.slos
        if requirement == "slo":
            return slos is not None and (slos.availability is not None or slos.latency is not None)
        if requirement == "slo.availability":
            return slos is not None and slos.availability is not None
        if requirement == "slo.latency":
            return slos is not None and slos.latency is not None
        return False


@cache
def schema() -> dict[str, Any]:
    text = (resources.files("platform_obs.provisioning") / SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _validator() -> jsonschema.protocols.Validator:
    import jsonschema  # the reference implementation explains invalid configs; slow to import

    cls = jsonschema.validators.validator_for(schema())
    return cls(schema())


def config_files(
    paths: Sequence[Path], notes: list[Problem] | None = None
) -> tuple[list[Path], list[Problem]]:
    """Expand directories into their ``*.yaml``/``*.yml`` files (sorted, not recursive).

    A file named twice (``a.yaml ./a.yaml``, or a file and its directory) is read once; ``notes``
    gets a line saying so.
    """
    files, problems = _expand(paths)
    unique: dict[Path, Path] = {}
    for file in files:
        try:
            key = file.resolve()
        except (OSError, RuntimeError):  # a symlink loop: keep it, reading it reports the error
            key = file.absolute()
        if key in unique:
            if notes is not None:
                first = unique[key]
                same = "given more than once" if first == file else f"the same file as {first}"
                notes.append(Problem(str(file), "", f"{same}; read once"))
            continue
        unique[key] = file
    return list(unique.values()), problems


def _expand(paths: Sequence[Path]) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in CONFIG_SUFFIXES and p.is_file())
            if not found:
                problems.append(
                    Problem(
                        str(path),
                        "",
                        "no service config in directory",
                        None,
                        "*.yaml or *.yml files",
                    )
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), "", "no such file or directory"))
    return files, problems


def load_specs(paths: Sequence[Path]) -> list[ServiceSpec]:
    """Load every service config under ``paths``; raises :class:`ValidationFailed`."""
    specs, problems = read_specs(paths)
    if problems:
        raise ValidationFailed(problems)
    return specs


def read_specs(
    paths: Sequence[Path], notes: list[Problem] | None = None
) -> tuple[list[ServiceSpec], list[Problem]]:
    """Every config under ``paths`` that parses, plus the problems of all of them.

    A file with problems may still yield a spec (so later stages can check it too); callers that
    need only clean specs filter by ``spec.file``. ``notes`` gets files given more than once.
    """
    files, problems = config_files(paths, notes)
    specs: list[ServiceSpec] = []
    seen: dict[str, ServiceSpec] = {}
    for file in files:
        spec, found = parse_spec(load(file))
        problems.extend(found)
        if spec is None:
            continue
        if spec.name in seen:
            first = seen[spec.name]
            line = first.line("service")
            problems.append(
                spec.problem(
                    "service",
                    f"service already defined in {first.file}"
                    + (f":{line}" if line else "")
                    + f" (team {first.team!r}); two configs would own the same dashboards and "
                    "alert rules",
                    spec.name,
                    "one config file per service",
                )
            )
            continue
        seen[spec.name] = spec
        specs.append(spec)
    return specs, problems


def parse_spec(doc: Located) -> tuple[ServiceSpec | None, list[Problem]]:
    """Check one parsed document against the schema and build its spec."""
    problems = list(doc.problems)
    if doc.data is None:
        if not problems:
            problems.append(
                doc.problem(
                    "", "file is empty", None, f"apiVersion: {API_VERSION}, kind: {KIND}, ..."
                )
            )
        return None, problems
    if not isinstance(doc.data, dict):
        return None, [
            *problems,
            doc.problem("", "top level must be a mapping", doc.data, "key: value pairs"),
        ]
    problems.extend(_one_per_key(schema_problems(doc), scalars.problems(doc)))
    if problems:
        return None, problems
    return _build(doc), []


def _one_per_key(schema: list[Problem], scalar: list[Problem]) -> list[Problem]:
    """Schema and scalar problems, one message per key: an unknown key hides what is below it,
    a bad scalar (NaN, a control character) hides the schema's less precise complaint."""
    unknown = [p.path for p in schema if p.message.startswith("unknown key")]

    def under_unknown(path: str) -> bool:
        return any(path == u or path.startswith((f"{u}.", f"{u}[")) for u in unknown)

    kept = [p for p in scalar if not under_unknown(p.path)]
    paths = {p.path for p in kept}
    return sorted(
        [*kept, *(p for p in schema if p.path not in paths)], key=lambda p: (p.line or 0, p.path)
    )


@cache
def _fast_validator() -> Any:
    return jsonschema_rs.validator_for(schema())


def schema_problems(doc: Located) -> list[Problem]:
    # jsonschema-rs says quickly whether a config is valid; the reference implementation
    # explains why not. Where they could differ (Python's ``$`` also matching before a final
    # newline), the fast one is the stricter, so a config it rejects is still judged by the other.
    if _fast_validator().is_valid(doc.data):
        return []
    problems = []
    for error in sorted(
        _validator().iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path))
    ):
        problems.extend(_map_error(doc, error))
    return sorted(problems, key=lambda p: (p.line or 0, p.path))


def _path(parts: Sequence[Any]) -> str:
    path = ""
    for part in parts:
        path = join(path, part)
    return path


def _map_error(doc: Located, error: jsonschema.ValidationError) -> list[Problem]:
    path = _path(list(error.absolute_path))
    sub = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(sub.get("properties", {}))
        return [
            doc.problem(
                join(path, str(key)),
                f"unknown key {key!r}{did_you_mean(str(key), allowed)}",
                key,
                "one of " + ", ".join(allowed),
            )
            for key in error.instance
            if key not in allowed
        ] or [doc.problem(path, error.message, None, "")]
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return [
            doc.problem(
                join(path, k),
                "required key is missing",
                None,
                _describe(sub.get("properties", {}).get(k, {}), k),
            )
            for k in missing
        ]
    if error.validator == "propertyNames":
        return [doc.problem(path, f"invalid key: {error.message}", None, "")]
    return [doc.problem(path, _message(error), error.instance, _describe(sub, path))]


def _message(error: jsonschema.ValidationError) -> str:
    return {
        "const": "wrong value",
        "enum": "not an allowed value",
        "type": "wrong type",
        "pattern": "invalid format",
        "oneOf": "not an accepted form",
        "minItems": "must not be empty",
        "minLength": "must not be empty",
        "uniqueItems": "has duplicate entries",
    }.get(str(error.validator), "invalid value")


def _describe(sub: dict[str, Any], path: str) -> str:
    """What the schema expects, in words."""
    if "$ref" in sub:
        sub = {**_resolve_ref(sub["$ref"]), **sub}
    parts = []
    if "const" in sub:
        parts.append(repr(sub["const"]))
    elif "enum" in sub:
        parts.append("one of " + ", ".join(map(repr, sub["enum"])))
    elif "pattern" in sub:
        parts.append(f"a string matching {sub['pattern']}")
    elif "type" in sub:
        kind = sub["type"]
        parts.append(
            {
                "string": "a string",
                "number": "a number",
                "integer": "an integer",
                "object": "a mapping",
                "array": "a list",
                "boolean": "true or false",
            }.get(kind, kind)
        )
        if "exclusiveMinimum" in sub and "exclusiveMaximum" in sub:
            parts[-1] += (
                f" between {sub['exclusiveMinimum']} and {sub['exclusiveMaximum']} (exclusive)"
            )
    elif "oneOf" in sub:
        parts.append(" or ".join(_describe(s, path) for s in sub["oneOf"]))
    if sub.get("description"):
        parts.append(f"— {sub['description']}")
    return " ".join(parts)


def _resolve_ref(ref: str) -> dict[str, Any]:
    node: Any = schema()
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return dict(node)


def _build(doc: Located) -> ServiceSpec:
    """The spec of a document that passed the schema (so types are known to be right)."""
    d = doc.data
    slos = None
    if "slos" in d:
        raw = d["slos"]
        latency = raw.get("latency")
        slos = SLOs(
            window=raw.get("window", "30d"),
            availability=float(raw["availability"]["objective"]) if "availability" in raw else None,
            latency=LatencySLO(
                units.latency_seconds(latency["threshold"]) or 0.0, float(latency["objective"])
            )
            if latency
            else None,
        )
    customs = tuple(
        CustomAlert(
            name=c["name"],
            expr=c["expr"],
            summary=c["summary"],
            path=join("custom_alerts", i),
            for_=c.get("for", "5m"),
            severity=c.get("severity", "warning"),
            receiver=c.get("receiver"),
            description=c.get("description", ""),
            runbook_url=c.get("runbook_url", ""),
            labels=dict(c.get("labels", {})),
            no_data=c.get("no_data", "OK"),
        )
        for i, c in enumerate(d.get("custom_alerts", []))
    )
    defaults = ServiceSpec("", "", "", "")
    return ServiceSpec(
        name=d["service"],
        team=d["team"],
        receiver=d["receiver"],
        file=doc.file,
        namespace=d.get("namespace"),
        environments=tuple(d.get("environments", defaults.environments)),
        paging_environments=tuple(d["paging_environments"]) if "paging_environments" in d else None,
        tier=d.get("tier", defaults.tier),
        runbook_base_url=d.get("runbook_base_url", defaults.runbook_base_url).rstrip("/"),
        labels=dict(d.get("labels", {})),
        datasources=Datasources(**d.get("datasources", {})),
        evaluation_interval=d.get("evaluation_interval", defaults.evaluation_interval),
        dashboards=tuple(d["dashboards"]) if "dashboards" in d else None,
        slos=slos,
        alerts=dict(d.get("alerts", {})),
        custom_alerts=customs,
        lines=dict(doc.lines),
    )


def interval_seconds(spec: ServiceSpec) -> int:
    return int(durations.seconds(spec.evaluation_interval) or 60)
