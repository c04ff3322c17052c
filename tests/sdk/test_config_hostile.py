"""Every bad configuration value is a ConfigError at init() naming the variable, the value and what
was expected: never a raw library exception, never accepted-but-broken (no flush, a dead thread)."""

from __future__ import annotations

import json
import socket

import pytest
from service_process import run_service

from platform_obs import ConfigError
from platform_obs._config import load_settings

# The values the issue names, through init() in a real process (each fails before anything global
# is set, so one process tries them all in turn).
ISSUE_CASES = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1",
    "OTEL_BSP_SCHEDULE_DELAY": "0",
    "OTEL_BSP_MAX_QUEUE_SIZE": "1e23",
    "OTEL_METRIC_EXPORT_INTERVAL": "0",
    "OTEL_EXPORTER_PROMETHEUS_PORT": "70000",
    "PLATFORM_OBS_SHUTDOWN_TIMEOUT": "inf",
}
ISSUE_CASES_2 = {"OTEL_BSP_SCHEDULE_DELAY": "1e400", "OTEL_BSP_MAX_QUEUE_SIZE": "10" * 12}

INIT_EACH = """
import json, os
import platform_obs
cases = json.loads(os.environ["CASES"])
for name, value in cases:
    os.environ.update({"OTEL_METRICS_EXPORTER": "prometheus", name: value})
    try:
        platform_obs.init(service_name="checkout", instrument=False)
        print(f"accepted={name}")
        break
    except platform_obs.ConfigError as exc:
        print(f"config_error={exc}")
    except BaseException as exc:
        print(f"raw={type(exc).__name__}: {exc}")
    del os.environ[name]
"""


def _init_each(cases: list[tuple[str, str]], env: dict[str, str] | None = None) -> list[str]:
    done = run_service(INIT_EACH, {"CASES": json.dumps(cases), **(env or {})})
    assert done.returncode == 0, done.stderr
    assert "accepted=" not in done.stdout and "raw=" not in done.stdout, done.stdout
    return [line.split("=", 1)[1] for line in done.stdout.splitlines() if line.startswith("config")]


def test_the_reported_values_are_config_errors_at_init() -> None:
    cases = [*ISSUE_CASES.items(), *ISSUE_CASES_2.items()]
    errors = _init_each(cases)
    assert len(errors) == len(cases)
    for (name, value), error in zip(cases, errors, strict=True):
        assert f"environment variable {name} has invalid value {value!r}: expected" in error


def test_prometheus_port_in_use_is_a_config_error_naming_port_and_variable() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (error,) = _init_each(
            [("OTEL_EXPORTER_PROMETHEUS_PORT", str(port))],
            {"OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1"},
        )
    assert f"127.0.0.1:{port}" in error
    assert "environment variable OTEL_EXPORTER_PROMETHEUS_PORT" in error
    assert "in use" in error


def test_a_failed_init_can_be_retried_with_a_good_value() -> None:
    done = run_service(
        """
        import os
        import platform_obs
        os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "1e400"
        try:
            platform_obs.init(service_name="checkout", instrument=False, metrics_exporter="none")
        except platform_obs.ConfigError:
            print("first=refused")
        os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "200"
        handle = platform_obs.init(service_name="checkout", instrument=False, metrics_exporter="none")
        print(f"delay={handle.settings.bsp_schedule_delay}")
        print(f"flushed={handle.shutdown(timeout=5)}")
        """,
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_LOGS_EXPORTER": "none"},
    )
    assert done.returncode == 0, done.stderr
    assert done.marker("first") == "refused" and done.marker("delay") == "0.2"
    assert done.marker("flushed") == "True"


# --- the same classes of value for every numeric setting ------------------------------------------

MILLIS = (
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_BLRP_SCHEDULE_DELAY",
    "OTEL_BLRP_EXPORT_TIMEOUT",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_METRIC_EXPORT_TIMEOUT",
)
SECONDS = ("PLATFORM_OBS_OTLP_TIMEOUT",)
SECONDS_OR_ZERO = ("PLATFORM_OBS_SHUTDOWN_TIMEOUT",)
COUNTS = (
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BLRP_MAX_QUEUE_SIZE",
    "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
)
SDK_LIMITS = (  # read by the OpenTelemetry SDK itself; 0 is allowed there
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
)
RATIOS = ("OTEL_TRACES_SAMPLER_ARG", "PLATFORM_OBS_SAMPLER_ARG")

NOT_NUMBERS = ["soon", "nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e400", "0x10", "1_0e"]
BAD: dict[str, list[str]] = {
    **{name: [*NOT_NUMBERS, "0", "-1", "-0.5", "86400001", "1e23"] for name in MILLIS},
    **{name: [*NOT_NUMBERS, "0", "-1", "86401", "1e23"] for name in SECONDS},
    **{name: [*NOT_NUMBERS, "-1", "-0.001", "86401"] for name in SECONDS_OR_ZERO},
    **{name: [*NOT_NUMBERS, "0", "-1", "1.5", "1e3", "2147483648", "1" * 30] for name in COUNTS},
    **{name: [*NOT_NUMBERS, "-1", "1.5", "2147483648"] for name in SDK_LIMITS},
    **{name: [*NOT_NUMBERS, "-0.1", "1.01", "2"] for name in RATIOS},
    "OTEL_EXPORTER_PROMETHEUS_PORT": [*NOT_NUMBERS, "0", "-1", "65536", "70000", "80.5"],
    "OTEL_EXPORTER_OTLP_ENDPOINT": [
        "http://[::1",
        "http://collector:notaport",
        "http://collector:99999",
        "ftp://collector:4317",
        "http://",
        "http://user:pw@[::1",
    ],
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": ["http://[::1", "https://h:-1"],
    "OTEL_EXPORTER_OTLP_HEADERS": ["Bad Name=x", "a=b%0Ac", "noequals"],
    "OTEL_METRICS_EXEMPLAR_FILTER": ["sometimes"],
    "OTEL_SERVICE_NAME": ["caf\udce9"],  # bytes that are not UTF-8, as os.environ decodes them
    "OTEL_RESOURCE_ATTRIBUTES": ["team=caf\udce9"],
}
CASES = [(name, value) for name, values in BAD.items() for value in values]


def _settings_with(name: str, value: str) -> None:
    from platform_obs._config import SIGNALS, exporter_target

    settings = load_settings({}, {name: value}, False)
    for signal in SIGNALS:  # per-signal variables are read here
        exporter_target(settings, signal, {name: value})


@pytest.mark.parametrize(("name", "value"), CASES)
def test_every_numeric_and_structured_setting_refuses_bad_values(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        _settings_with(name, value)
    message = str(err.value)
    assert name in message and "expected" in message
    if "pw@" in value:  # a password in a URL is masked, even in an error
        assert ":pw@" not in message and "user:***@" in message
    elif name != "OTEL_EXPORTER_OTLP_HEADERS":  # header values are secrets: not shown
        assert repr(value) in message  # the value, as given


GOOD: dict[str, tuple[str, str, object]] = {
    "OTEL_BSP_SCHEDULE_DELAY": ("250", "bsp_schedule_delay", 0.25),
    "OTEL_METRIC_EXPORT_INTERVAL": ("86400000", "metric_export_interval", 86400.0),
    "PLATFORM_OBS_SHUTDOWN_TIMEOUT": ("0", "shutdown_timeout", 0.0),
    "OTEL_BSP_MAX_QUEUE_SIZE": ("2147483647", "bsp_max_queue_size", 2147483647),
    "OTEL_EXPORTER_PROMETHEUS_PORT": ("65535", "prometheus_port", 65535),
    "OTEL_TRACES_SAMPLER_ARG": ("0", "sampler_arg", 0.0),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("collector:4317", "otlp_endpoint", "collector:4317"),
    "OTEL_EXPORTER_OTLP_HEADERS": (
        "Authorization=Bearer%20x, X-Tenant=a",
        "otlp_headers",
        {"authorization": "Bearer x", "x-tenant": "a"},
    ),
}


@pytest.mark.parametrize("name", list(GOOD))
def test_limits_are_inclusive(name: str) -> None:
    raw, field, expected = GOOD[name]
    assert getattr(load_settings({}, {name: raw}, False), field) == expected


def test_arguments_get_the_same_checks() -> None:
    for argument, value in [
        ("otlp_timeout", float("inf")),
        ("shutdown_timeout", float("nan")),
        ("bsp_max_queue_size", 10**30),
        ("prometheus_port", 70000),
        ("otlp_endpoint", "http://[::1"),
        ("sampler_arg", True),
    ]:
        with pytest.raises(ConfigError, match=rf"init\(\) argument '{argument}'"):
            load_settings({argument: value}, {}, False)


def test_the_limit_the_sdk_reads_on_import_is_checked_before() -> None:
    done = run_service("import platform_obs", {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "many"})
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "platform_obs._config.ConfigError: environment variable "
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT has invalid value 'many'"
    )
