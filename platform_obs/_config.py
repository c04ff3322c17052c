"""Settings: one resolved, validated view of every knob, from five sources.

Precedence (highest first): ``init()`` arguments > ``PLATFORM_OBS_*`` env > standard ``OTEL_*`` env >
``[tool.platform_obs]`` in the service's ``pyproject.toml`` > platform defaults.

Parsing follows the OpenTelemetry configuration spec: an empty value is unset; a boolean is true
only for case-insensitive ``"true"`` (anything else that is not ``"false"`` is an error here, not
silently false). An invalid value always raises :class:`ConfigError` naming the source, the value and
what was expected: configuration mistakes fail at start-up, telemetry trouble at run time never does.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import unquote, urlsplit

Signal = Literal["traces", "metrics", "logs"]
SIGNALS: tuple[Signal, ...] = ("traces", "metrics", "logs")
Protocol = Literal["grpc", "http/protobuf"]

_PROTOCOLS = ("grpc", "http/protobuf")
_EXPORTERS: dict[Signal, tuple[str, ...]] = {
    "traces": ("otlp", "console", "none"),
    "metrics": ("otlp", "console", "none", "prometheus"),
    "logs": ("otlp", "console", "none"),
}
_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
_COMPRESSIONS = ("gzip", "none", "deflate")
_LOG_FORMATS = ("auto", "json", "console")
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


#: Health, readiness and metrics endpoints: probes and scrapes are not user traffic.
DEFAULT_EXCLUDED_URLS = r"/(healthz?|readyz?|livez?|ping|metrics)/?(\?.*)?$"


class ConfigError(ValueError):
    """A configuration value is invalid. The message names where it came from."""


# NamedTuples rather than dataclasses for the small records: they are built at import time, and
# dataclass code generation is a measurable share of start-up.
class Source(NamedTuple):
    """Where a setting's value came from, for error messages and ``describe()``."""

    kind: Literal["argument", "env", "pyproject", "default"]
    name: str

    def __str__(self) -> str:
        if self.kind == "argument":
            return f"init() argument {self.name!r}"
        if self.kind == "env":
            return f"environment variable {self.name}"
        if self.kind == "pyproject":
            return f"[tool.platform_obs] {self.name} in {_PYPROJECT_NAME}"
        return f"default for {self.name}"


_PYPROJECT_NAME = "pyproject.toml"


# --- value parsers: raw string (or Python value from an argument/TOML) -> typed value ------------


def _bool(raw: Any, expected: str = "true or false") -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError(expected)


#: Integers the SDK sizes queues and limits with: what other OTel SDKs hold in a signed 32-bit int.
_INT_MAX = 2**31 - 1
#: Longest accepted duration (delays, intervals, timeouts): a day. Beyond it a value is a typo, and
#: far beyond it the SDK's threads die (``threading`` timeouts overflow) or never flush.
_MAX_SECONDS = 86_400.0


def _int_in_range(low: int, high: int, what: str = "an integer") -> Callable[[Any], int]:
    expected = f"{what} from {low} to {high}"

    def parse(raw: Any) -> int:
        if isinstance(raw, (bool, float)):
            raise ValueError(expected)
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ValueError(expected) from None
        if not low <= value <= high:
            raise ValueError(expected)
        return value

    return parse


_positive_int = _int_in_range(1, _INT_MAX, "a whole number")
_port = _int_in_range(1, 65535, "a TCP port")


def _finite(raw: Any, expected: str) -> float:
    if isinstance(raw, bool):
        raise ValueError(expected)
    try:
        value = float(raw) if isinstance(raw, (int, float)) else float(str(raw).strip())
    except (ValueError, OverflowError):
        raise ValueError(expected) from None
    if not math.isfinite(value):
        raise ValueError(expected)
    return value


def _duration(positive: bool, scale: float = 1.0) -> Callable[[Any], float]:
    """Seconds from seconds (``scale`` 1) or from the spec's milliseconds (``scale`` 1000)."""
    unit = "seconds" if scale == 1.0 else "milliseconds"
    limit = _MAX_SECONDS * scale
    expected = (
        f"a number of {unit} greater than 0 and at most {limit:.0f} (one day)"
        if positive
        else f"a number of {unit} from 0 to {limit:.0f} (one day)"
    )

    def parse(raw: Any) -> float:
        value = _finite(raw, expected)
        if value < 0 or (positive and value == 0) or value > limit:
            raise ValueError(expected)
        return value / scale

    return parse


_seconds = _duration(positive=True)
_millis = _duration(positive=True, scale=1000.0)


def _ratio(raw: Any) -> float:
    expected = "a number between 0 and 1"
    value = _finite(raw, expected)
    if not 0 <= value <= 1:
        raise ValueError(expected)
    return value


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        text = str(raw).strip().lower()
        if text not in options:
            raise ValueError("one of " + ", ".join(options))
        return text

    return parse


def _exporter_list(options: tuple[str, ...]) -> Callable[[Any], tuple[str, ...]]:
    """The spec's comma-separated exporter list (``otlp,console``); ``none`` stands alone."""
    expected = "a comma-separated list of " + ", ".join(options)

    def parse(raw: Any) -> tuple[str, ...]:
        items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
        names = tuple(dict.fromkeys(str(x).strip().lower() for x in items if str(x).strip()))
        unknown = [n for n in names if n not in options]
        if unknown:
            raise ValueError(f"{expected} (unknown: {', '.join(unknown)})")
        if not names or ("none" in names and len(names) > 1):
            raise ValueError(f"'none' alone, or {expected}")
        return () if names == ("none",) else names

    return parse


def _utf8(text: str) -> str:
    """Environment values are bytes decoded with surrogateescape: undecodable ones poison every
    export (protobuf strings must be UTF-8), so they are refused here."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text in UTF-8 (the value has bytes that are not UTF-8)") from None
    return text


def _text(raw: Any) -> str:
    return _utf8(str(raw).strip())


_URL_EXAMPLE = "a URL like http://collector:4317"


def _endpoint(raw: Any) -> str:
    """An OTLP endpoint: ``http(s)://host[:port][/path]``, or ``host:port`` (gRPC's form)."""
    text = _text(raw)
    has_scheme = "://" in text
    try:
        parts = urlsplit(text if has_scheme else f"//{text}")
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or out of range
    except ValueError as exc:
        raise ValueError(f"{_URL_EXAMPLE} ({exc})") from None
    if has_scheme and parts.scheme not in ("http", "https"):
        raise ValueError(f"{_URL_EXAMPLE} (scheme http or https, not {parts.scheme!r})")
    if not parts.hostname:
        raise ValueError(f"{_URL_EXAMPLE} (no host)")
    return text


# gRPC metadata keys allow only these (and must be lower case); HTTP allows them too.
_HEADER_NAME = re.compile(r"[A-Za-z0-9._-]+")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")


def _headers(raw: Any) -> dict[str, str]:
    """Export headers: names normalised to lower case (gRPC rejects any other; HTTP does not
    care), values printable ASCII (a control character would break the request or inject one)."""
    result: dict[str, str] = {}
    for name, value in _key_values(raw).items():
        name = name.strip()
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"header names of letters, digits, '-', '_' or '.' (got {name!r})")
        if not _HEADER_VALUE.fullmatch(value):
            raise ValueError(
                f"header values of printable ASCII; the value of {name!r} is not "
                "(not shown: header values are secrets)"
            )
        result[name.lower()] = value
    return result


def _key_values(raw: Any) -> dict[str, str]:
    """``k=v,k2=v2`` with percent-decoding (W3C baggage style, as OTEL_RESOURCE_ATTRIBUTES)."""
    if isinstance(raw, Mapping):
        return {_utf8(str(k)): _utf8(str(v)) for k, v in raw.items()}
    result: dict[str, str] = {}
    for position, item in enumerate(str(raw).split(","), start=1):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            # The position, not the item: header values are secrets.
            raise ValueError(f"comma-separated key=value pairs (item {position} has no key=value)")
        result[_utf8(unquote(key.strip()))] = _utf8(unquote(value.strip()))
    return result


def _name_list(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, (list, tuple)):
        return tuple(str(x).strip() for x in raw if str(x).strip())
    return tuple(x.strip() for x in str(raw).split(",") if x.strip())


# --- the settings ---------------------------------------------------------------------------------


class _Knob(NamedTuple):
    """How one setting is read: its parser, its env names (PLATFORM_OBS first, then OTEL_)."""

    parse: Callable[[Any], Any]
    platform_env: str | None
    otel_env: tuple[str, ...] = ()
    #: Parser for the OTEL_ variable when its unit differs (e.g. milliseconds vs seconds).
    otel_parse: Callable[[Any], Any] | None = None
    secret: bool = False


@dataclass(frozen=True)
class Settings:
    """Every setting, resolved. Field docs are the README's configuration table."""

    service_name: str | None = None
    service_version: str | None = None
    service_namespace: str | None = None
    environment: str | None = None
    team: str | None = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)

    #: Exporter names per signal; empty means none.
    traces_exporter: tuple[str, ...] = ("otlp",)
    metrics_exporter: tuple[str, ...] = ("otlp",)
    logs_exporter: tuple[str, ...] = ("otlp",)

    otlp_protocol: str = "grpc"
    otlp_endpoint: str | None = None
    otlp_headers: Mapping[str, str] = field(default_factory=dict)
    #: Seconds (the OTEL_ variable is in milliseconds, as the spec says).
    otlp_timeout: float = 10.0
    otlp_compression: str = "none"

    sampler: str = "parentbased_traceidratio"
    sampler_arg: float = 1.0

    bsp_schedule_delay: float = 5.0
    bsp_export_timeout: float = 30.0
    bsp_max_queue_size: int = 2048
    bsp_max_export_batch_size: int = 512
    blrp_schedule_delay: float = 1.0
    blrp_export_timeout: float = 30.0
    blrp_max_queue_size: int = 2048
    blrp_max_export_batch_size: int = 512
    metric_export_interval: float = 60.0
    metric_export_timeout: float = 30.0

    attribute_value_length_limit: int | None = None
    attribute_count_limit: int = 128

    prometheus_host: str = "localhost"
    prometheus_port: int = 9464

    sdk_disabled: bool = False
    instrument: bool = True
    disabled_instrumentations: tuple[str, ...] = ()
    runtime_metrics: bool = True

    #: Regular expressions searched in request URLs; matching requests get no span and no metric.
    excluded_urls: tuple[str, ...] = (DEFAULT_EXCLUDED_URLS,)
    #: Request / response header names recorded on server spans (none by default: they hold secrets).
    capture_request_headers: tuple[str, ...] = ()
    capture_response_headers: tuple[str, ...] = ()

    log_format: str = "auto"
    log_level: str = "info"
    log_to_otlp: bool = True
    redact_keys: tuple[str, ...] = ()
    shutdown_timeout: float = 5.0

    #: Where each value came from (not compared: two equal configs from different places are equal).
    sources: Mapping[str, Source] = field(default_factory=dict, compare=False, repr=False)

    def describe(self) -> dict[str, Any]:
        """Settings as printable data, with secrets hidden: header values, sensitive resource
        attributes, and the password of a URL (``http://user:***@host``)."""
        from platform_obs._redaction import mask_url_passwords, redact_mapping

        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                value = redact_mapping(
                    dict(value), extra_keys=self.redact_keys, all_values=f.name == "otlp_headers"
                )
            elif isinstance(value, str):
                value = mask_url_passwords(value)
            out[f.name] = value
        return out

    def __repr__(self) -> str:
        # The generated repr would print header values; tracebacks and debuggers show reprs.
        shown = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"Settings({shown})"


_KNOBS: dict[str, _Knob] = {
    "service_name": _Knob(_text, "PLATFORM_OBS_SERVICE_NAME", ("OTEL_SERVICE_NAME",)),
    "service_version": _Knob(_text, "PLATFORM_OBS_SERVICE_VERSION"),
    "service_namespace": _Knob(_text, "PLATFORM_OBS_SERVICE_NAMESPACE"),
    "environment": _Knob(_text, "PLATFORM_OBS_ENVIRONMENT"),
    "team": _Knob(_text, "PLATFORM_OBS_TEAM"),
    "resource_attributes": _Knob(_key_values, None, ("OTEL_RESOURCE_ATTRIBUTES",)),
    "traces_exporter": _Knob(
        _exporter_list(_EXPORTERS["traces"]),
        "PLATFORM_OBS_TRACES_EXPORTER",
        ("OTEL_TRACES_EXPORTER",),
    ),
    "metrics_exporter": _Knob(
        _exporter_list(_EXPORTERS["metrics"]),
        "PLATFORM_OBS_METRICS_EXPORTER",
        ("OTEL_METRICS_EXPORTER",),
    ),
    "logs_exporter": _Knob(
        _exporter_list(_EXPORTERS["logs"]), "PLATFORM_OBS_LOGS_EXPORTER", ("OTEL_LOGS_EXPORTER",)
    ),
    "otlp_protocol": _Knob(
        _choice(_PROTOCOLS), "PLATFORM_OBS_OTLP_PROTOCOL", ("OTEL_EXPORTER_OTLP_PROTOCOL",)
    ),
    "otlp_endpoint": _Knob(
        _endpoint, "PLATFORM_OBS_OTLP_ENDPOINT", ("OTEL_EXPORTER_OTLP_ENDPOINT",)
    ),
    "otlp_headers": _Knob(
        _headers, "PLATFORM_OBS_OTLP_HEADERS", ("OTEL_EXPORTER_OTLP_HEADERS",), secret=True
    ),
    "otlp_timeout": _Knob(
        _seconds, "PLATFORM_OBS_OTLP_TIMEOUT", ("OTEL_EXPORTER_OTLP_TIMEOUT",), _millis
    ),
    "otlp_compression": _Knob(
        _choice(_COMPRESSIONS), "PLATFORM_OBS_OTLP_COMPRESSION", ("OTEL_EXPORTER_OTLP_COMPRESSION",)
    ),
    "sampler": _Knob(_choice(_SAMPLERS), "PLATFORM_OBS_SAMPLER", ("OTEL_TRACES_SAMPLER",)),
    "sampler_arg": _Knob(_ratio, "PLATFORM_OBS_SAMPLER_ARG", ("OTEL_TRACES_SAMPLER_ARG",)),
    "bsp_schedule_delay": _Knob(_seconds, None, ("OTEL_BSP_SCHEDULE_DELAY",), _millis),
    "bsp_export_timeout": _Knob(_seconds, None, ("OTEL_BSP_EXPORT_TIMEOUT",), _millis),
    "bsp_max_queue_size": _Knob(_positive_int, None, ("OTEL_BSP_MAX_QUEUE_SIZE",)),
    "bsp_max_export_batch_size": _Knob(_positive_int, None, ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE",)),
    "blrp_schedule_delay": _Knob(_seconds, None, ("OTEL_BLRP_SCHEDULE_DELAY",), _millis),
    "blrp_export_timeout": _Knob(_seconds, None, ("OTEL_BLRP_EXPORT_TIMEOUT",), _millis),
    "blrp_max_queue_size": _Knob(_positive_int, None, ("OTEL_BLRP_MAX_QUEUE_SIZE",)),
    "blrp_max_export_batch_size": _Knob(_positive_int, None, ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",)),
    "metric_export_interval": _Knob(_seconds, None, ("OTEL_METRIC_EXPORT_INTERVAL",), _millis),
    "metric_export_timeout": _Knob(_seconds, None, ("OTEL_METRIC_EXPORT_TIMEOUT",), _millis),
    "attribute_value_length_limit": _Knob(
        _positive_int, None, ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",)
    ),
    "attribute_count_limit": _Knob(_positive_int, None, ("OTEL_ATTRIBUTE_COUNT_LIMIT",)),
    "prometheus_host": _Knob(_text, None, ("OTEL_EXPORTER_PROMETHEUS_HOST",)),
    "prometheus_port": _Knob(_port, None, ("OTEL_EXPORTER_PROMETHEUS_PORT",)),
    "sdk_disabled": _Knob(_bool, "PLATFORM_OBS_DISABLED", ("OTEL_SDK_DISABLED",)),
    "instrument": _Knob(_bool, "PLATFORM_OBS_INSTRUMENT"),
    "disabled_instrumentations": _Knob(
        _name_list, None, ("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",)
    ),
    "runtime_metrics": _Knob(_bool, "PLATFORM_OBS_RUNTIME_METRICS"),
    "excluded_urls": _Knob(
        _name_list, "PLATFORM_OBS_EXCLUDED_URLS", ("OTEL_PYTHON_EXCLUDED_URLS",)
    ),
    "capture_request_headers": _Knob(
        _name_list,
        "PLATFORM_OBS_CAPTURE_REQUEST_HEADERS",
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",),
    ),
    "capture_response_headers": _Knob(
        _name_list,
        "PLATFORM_OBS_CAPTURE_RESPONSE_HEADERS",
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",),
    ),
    "log_format": _Knob(_choice(_LOG_FORMATS), "PLATFORM_OBS_LOG_FORMAT"),
    "log_level": _Knob(_choice(_LOG_LEVELS), "PLATFORM_OBS_LOG_LEVEL"),
    "log_to_otlp": _Knob(_bool, "PLATFORM_OBS_LOG_TO_OTLP"),
    "redact_keys": _Knob(_name_list, "PLATFORM_OBS_REDACT_KEYS"),
    "shutdown_timeout": _Knob(_duration(positive=False), "PLATFORM_OBS_SHUTDOWN_TIMEOUT"),
}

#: Settings an argument may set, in declaration order (used for the README table and validation).
SETTING_NAMES: tuple[str, ...] = tuple(_KNOBS)

#: Per-signal OTLP variables; they beat the general OTEL_ variable, but not an argument or
#: a PLATFORM_OBS_ variable (a higher source wins over a more specific lower one).
PER_SIGNAL_ENV = {
    "endpoint": "OTEL_EXPORTER_OTLP_{SIGNAL}_ENDPOINT",
    "protocol": "OTEL_EXPORTER_OTLP_{SIGNAL}_PROTOCOL",
    "headers": "OTEL_EXPORTER_OTLP_{SIGNAL}_HEADERS",
    "timeout": "OTEL_EXPORTER_OTLP_{SIGNAL}_TIMEOUT",
    "compression": "OTEL_EXPORTER_OTLP_{SIGNAL}_COMPRESSION",
}


def _env(environ: Mapping[str, str], name: str) -> str | None:
    """Spec rule: an empty (or all-blank) value means unset."""
    value = environ.get(name)
    return value if value is not None and value.strip() else None


def _parse(
    knob: _Knob, raw: Any, source: Source, parser: Callable[[Any], Any] | None = None
) -> Any:
    try:
        return (parser or knob.parse)(raw)
    except ValueError as exc:
        raise ConfigError(
            f"{source} has invalid value {_shown(raw, knob.secret)}: expected {exc}"
        ) from None


def _shown(raw: Any, secret: bool) -> str:
    """A bad value as printed in an error: secrets hidden, URL passwords masked."""
    from platform_obs._redaction import mask_url_passwords

    return "<redacted>" if secret else mask_url_passwords(repr(raw))


#: Variables the OpenTelemetry SDK reads itself (not settings of ours): checked here too, so a bad
#: one is a ConfigError naming it at init() rather than a raw exception from deep inside the SDK.
_SDK_ENV: dict[str, Callable[[Any], Any]] = {
    **{
        name: _int_in_range(0, _INT_MAX, "a whole number")
        for name in (
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "OTEL_SPAN_EVENT_COUNT_LIMIT",
            "OTEL_SPAN_LINK_COUNT_LIMIT",
            "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
            "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
        )
    },
    "OTEL_METRICS_EXEMPLAR_FILTER": _choice(("always_on", "always_off", "trace_based")),
}


def _check_sdk_env(environ: Mapping[str, str], names: Iterable[str] = _SDK_ENV) -> None:
    for name in names:
        parse = _SDK_ENV[name]
        if (raw := _env(environ, name)) is not None:
            try:
                parse(raw)
            except ValueError as exc:
                raise ConfigError(
                    f"environment variable {name} has invalid value {_shown(raw, False)}: "
                    f"expected {exc}"
                ) from None


def check_import_time_env() -> None:
    """The SDK reads OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT when its trace module is imported (before any
    init()): check it first, so a bad value is a ConfigError naming it, not a raw ValueError."""
    _check_sdk_env(os.environ, ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",))


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest ``pyproject.toml`` from the working directory upwards."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / _PYPROJECT_NAME
        if candidate.is_file():
            return candidate
    return None


def _pyproject_table(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read [tool.platform_obs]: {exc}") from None
    table = data.get("tool", {}).get("platform_obs", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.platform_obs] must be a table")
    unknown = sorted(set(table) - set(_KNOBS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) in [tool.platform_obs]: {', '.join(unknown)}; "
            f"expected some of: {', '.join(SETTING_NAMES)}"
        )
    return table


def load_settings(
    arguments: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    pyproject: Path | Literal[False] | None = None,
) -> Settings:
    """Resolve every setting from its sources. ``pyproject=False`` skips the file lookup."""
    environ = os.environ if environ is None else environ
    unknown = sorted(set(arguments) - set(_KNOBS))
    if unknown:
        raise ConfigError(
            f"init() got unknown argument(s): {', '.join(unknown)}; expected some of: {', '.join(SETTING_NAMES)}"
        )
    _check_sdk_env(environ)
    table = {} if pyproject is False else _pyproject_table(pyproject or find_pyproject())
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for name, knob in _KNOBS.items():
        candidates: list[tuple[Any, Source, Callable[[Any], Any] | None]] = []
        if arguments.get(name) is not None:
            candidates.append((arguments[name], Source("argument", name), None))
        if knob.platform_env and (raw := _env(environ, knob.platform_env)) is not None:
            candidates.append((raw, Source("env", knob.platform_env), None))
        for env_name in knob.otel_env:
            if (raw := _env(environ, env_name)) is not None:
                candidates.append((raw, Source("env", env_name), knob.otel_parse))
        if name in table:
            candidates.append((table[name], Source("pyproject", name), None))
        if candidates:
            raw, source, parser = candidates[0]
            values[name] = _parse(knob, raw, source, parser)
            sources[name] = source
        else:
            sources[name] = Source("default", name)
    return Settings(**values, sources=sources)


class ExporterTarget(NamedTuple):
    """Where and how one signal's OTLP exporter sends."""

    protocol: str
    endpoint: str
    headers: Mapping[str, str]
    timeout: float
    compression: str


_DEFAULT_ENDPOINT = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}


def exporter_target(
    settings: Settings, signal: Signal, environ: Mapping[str, str] | None = None
) -> ExporterTarget:
    """Resolve one signal's OTLP target: argument/PLATFORM_OBS > per-signal OTEL_ > general OTEL_."""
    environ = os.environ if environ is None else environ

    def pick(
        kind: str, general_field: str, knob: _Knob, parser: Callable[[Any], Any] | None = None
    ) -> tuple[Any, bool]:
        source = settings.sources.get(general_field)
        general = getattr(settings, general_field)
        outranks_per_signal = source is not None and (
            source.kind == "argument" or source.name.startswith("PLATFORM_OBS_")
        )
        if outranks_per_signal:
            return general, False
        env_name = PER_SIGNAL_ENV[kind].format(SIGNAL=signal.upper())
        raw = _env(environ, env_name)
        if raw is not None:
            return _parse(knob, raw, Source("env", env_name), parser), True
        return general, False

    protocol, _ = pick("protocol", "otlp_protocol", _KNOBS["otlp_protocol"])
    endpoint, per_signal = pick("endpoint", "otlp_endpoint", _KNOBS["otlp_endpoint"])
    headers, _ = pick("headers", "otlp_headers", _KNOBS["otlp_headers"])
    timeout, _ = pick("timeout", "otlp_timeout", _KNOBS["otlp_timeout"], _millis)
    compression, _ = pick("compression", "otlp_compression", _KNOBS["otlp_compression"])
    if not endpoint:
        endpoint = _DEFAULT_ENDPOINT[protocol]
        per_signal = False
    if protocol == "http/protobuf" and "://" not in endpoint:
        raise ConfigError(
            f"the OTLP endpoint {_shown(endpoint, False)} for {signal} has no scheme: "
            "expected a URL like http://collector:4318 with protocol http/protobuf"
        )
    if protocol == "http/protobuf" and not per_signal:
        # The spec: a general endpoint is a base; the signal path is appended. A per-signal one is used as is.
        endpoint = endpoint.rstrip("/") + f"/v1/{signal}"
    return ExporterTarget(protocol, endpoint, dict(headers), timeout, compression)
