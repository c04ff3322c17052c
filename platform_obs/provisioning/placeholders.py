"""The placeholder language of templates: names come from :mod:`platform_obs.conventions`.

Templates never spell a Prometheus series or label; they reference the conventions::

    ${metric:http.server.request.duration:bucket}  -> http_server_request_duration_seconds_bucket
    ${metric:process.cpu.time}                     -> process_cpu_time_seconds_total
    ${label:http.route}                            -> http_route
    ${log:level}                                   -> level          (a JSON log field)
    ${param:threshold}                             -> an alert parameter's value
    ${slo:availability.budget}                     -> 0.001          (from the service's SLOs)
    ${burn_rate:page}                              -> the multi-window burn-rate condition
    ${sli_error:availability.1h}                   -> the recorded error ratio (render/recording.py)
    ${selector} ${log_selector} ${trace_selector}  -> the service's series / stream / span selector

Bare ``${name}`` placeholders are provided per rendering (``selector``, ``window``...). Anything
else — ``$service``, ``${env}``, ``${__field.labels.x}``, ``$__rate_interval`` — is left alone for
Grafana; callers check what remains.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from platform_obs import conventions

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")
_SUFFIXES = ("bucket", "sum", "count")
#: Labels that exist in Prometheus without being an OpenTelemetry attribute.
PROMETHEUS_LABELS = frozenset({"le", "__name__", "job", "instance"})
LOG_FIELD_NAMES = tuple(f for f in conventions.LogFields._fields if f != "levels")


def known_attributes() -> frozenset[str]:
    """Every attribute that may appear as a label: metric attributes and promoted resource ones."""
    attrs = set(conventions.PROMOTED_RESOURCE_ATTRIBUTES)
    for metric in conventions.METRICS.values():
        attrs.update(metric.attributes)
    return frozenset(attrs)


#: Series the platform's own recording rules write (render/recording.py): name prefix and labels.
RECORDED_PREFIXES = ("slo:sli_error:ratio_rate",)
RECORDED_LABELS = frozenset({"slo"})


def known_series() -> frozenset[str]:
    """Every Prometheus series name the conventions produce (plus ``target_info``); recorded
    series are recognised by :data:`RECORDED_PREFIXES`."""
    names = {"target_info"}
    for metric in conventions.METRICS.values():
        names.add(metric.series())
        if metric.kind == "histogram":
            names.update(metric.series(s) for s in _SUFFIXES)  # type: ignore[arg-type]
    return frozenset(names)


def known_labels() -> frozenset[str]:
    return (
        frozenset(conventions.prom_label(a) for a in known_attributes())
        | PROMETHEUS_LABELS
        | RECORDED_LABELS
    )


def did_you_mean(value: str, choices: object) -> str:
    close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)  # type: ignore[attr-defined]
    return f"; did you mean {close[0]!r}?" if close else ""


class PlaceholderError(ValueError):
    """A placeholder that names nothing in the conventions (or an unknown parameter)."""

    def __init__(self, placeholder: str, message: str, expected: str) -> None:
        self.placeholder = placeholder
        self.expected = expected
        super().__init__(message)


@dataclass(frozen=True)
class Scope:
    """What the placeholders of one rendering expand to."""

    values: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    slo: Mapping[str, Any] = field(default_factory=dict)
    functions: Mapping[str, Callable[[str], str]] = field(default_factory=dict)
    #: Applied to a whole expanded query (PromQL): the platform's label scheme
    #: (:mod:`platform_obs.provisioning.render.label_scheme`); ``None`` leaves it as it is.
    query_rewrite: Callable[[str], str] | None = None


def _metric(arg: str) -> str:
    name, _, suffix = arg.partition(":")
    metric = conventions.METRICS.get(name)
    if metric is None:
        raise PlaceholderError(
            f"${{metric:{arg}}}",
            f"unknown metric {name!r}{did_you_mean(name, conventions.METRICS)}",
            "a metric of platform_obs.conventions: " + ", ".join(sorted(conventions.METRICS)),
        )
    if suffix and (metric.kind != "histogram" or suffix not in _SUFFIXES):
        raise PlaceholderError(
            f"${{metric:{arg}}}",
            f"{name} is a {metric.kind}; it has no {suffix!r} series",
            "bucket, sum or count on a histogram, nothing otherwise",
        )
    return metric.series(suffix)  # type: ignore[arg-type]


def _label(arg: str) -> str:
    attrs = known_attributes()
    if arg not in attrs:
        raise PlaceholderError(
            f"${{label:{arg}}}",
            f"unknown attribute {arg!r}{did_you_mean(arg, attrs)}",
            "an attribute of platform_obs.conventions: " + ", ".join(sorted(attrs)),
        )
    return conventions.prom_label(arg)


def _log(arg: str) -> str:
    if arg == "levels":  # comma-separated: the values of a custom dashboard variable
        return ",".join(conventions.LOG_FIELDS.levels)
    if arg not in LOG_FIELD_NAMES:
        raise PlaceholderError(
            f"${{log:{arg}}}",
            f"unknown log field {arg!r}{did_you_mean(arg, LOG_FIELD_NAMES)}",
            "a field of platform_obs.conventions.LogFields: " + ", ".join(LOG_FIELD_NAMES),
        )
    return str(getattr(conventions.LOG_FIELDS, arg))


def _lookup(kind: str, arg: str, table: Mapping[str, Any]) -> Any:
    if arg not in table:
        raise PlaceholderError(
            f"${{{kind}:{arg}}}",
            f"unknown {kind} {arg!r}{did_you_mean(arg, table)}",
            f"one of: {', '.join(sorted(table)) or '(none defined here)'}",
        )
    return table[arg]


def _resolve(kind: str, arg: str | None, scope: Scope) -> Any | None:
    """The value of one placeholder, or ``None`` when it is not ours (a Grafana variable)."""
    if arg is None:
        return scope.values.get(kind)
    if kind == "metric":
        return _metric(arg)
    if kind == "label":
        return _label(arg)
    if kind == "log":
        return _log(arg)
    if kind == "param":
        return _lookup("param", arg, scope.params)
    if kind == "slo":
        return _lookup("slo", arg, scope.slo)
    if kind in scope.functions:
        return scope.functions[kind](arg)
    if kind in ("burn_rate", "sli_error"):
        raise PlaceholderError(f"${{{kind}:{arg}}}", f"{kind} is not available here", "")
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".15g")
    return str(value)


_STATIC_KINDS = {"metric": _metric, "label": _label, "log": _log}


@lru_cache(maxsize=4096)
def _expand_static(text: str) -> str:
    """Expand the placeholders that only depend on the conventions (cached: templates repeat)."""

    def sub(match: re.Match[str]) -> str:
        resolve = _STATIC_KINDS.get(match.group(1))
        if resolve is None or match.group(2) is None:
            return match.group(0)
        return resolve(match.group(2))

    return PLACEHOLDER.sub(sub, text)


def expand(text: str, scope: Scope) -> str:
    """Expand every placeholder of ``text``; raises the first :class:`PlaceholderError`."""
    if "${" not in text:
        return text
    text = _expand_static(text)
    if "${" not in text:
        return text

    def sub(match: re.Match[str]) -> str:
        value = _resolve(match.group(1), match.group(2), scope)
        return match.group(0) if value is None else _text(value)

    return PLACEHOLDER.sub(sub, text)


def expand_query(text: str, scope: Scope) -> str:
    """:func:`expand` for a whole PromQL query, then the scope's label-scheme rewrite."""
    text = expand(text, scope)
    return scope.query_rewrite(text) if scope.query_rewrite else text


def expand_value(value: Any, scope: Scope) -> Any:
    """Like :func:`expand`, but a string that is exactly one placeholder keeps the value's type
    (``"${param:threshold}"`` -> ``0.05``); lists and mappings are expanded recursively."""
    if isinstance(value, str):
        match = PLACEHOLDER.fullmatch(value.strip())
        if match:
            resolved = _resolve(match.group(1), match.group(2), scope)
            return value if resolved is None else resolved
        return expand(value, scope)
    if isinstance(value, list):
        return [expand_value(v, scope) for v in value]
    if isinstance(value, dict):
        return {k: expand_value(v, scope) for k, v in value.items()}
    return value


def references(text: str) -> list[tuple[str, str | None]]:
    """``(kind, arg)`` of every placeholder in ``text``."""
    return [(m.group(1), m.group(2)) for m in PLACEHOLDER.finditer(text)]
