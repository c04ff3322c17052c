"""Configuration: precedence, the spec's parsing rules, and errors that name the culprit."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from platform_obs._config import ConfigError, exporter_target, load_settings

NO_FILE = False


def test_exporter_lists_follow_the_spec() -> None:
    env = {"OTEL_TRACES_EXPORTER": "otlp, console,otlp", "OTEL_LOGS_EXPORTER": "none"}
    s = load_settings({}, env, NO_FILE)
    assert s.traces_exporter == ("otlp", "console")  # de-duplicated, order kept
    assert s.logs_exporter == ()
    assert s.metrics_exporter == ("otlp",)
    assert load_settings({"metrics_exporter": "prometheus"}, {}, NO_FILE).metrics_exporter == (
        "prometheus",
    )


def test_defaults() -> None:
    s = load_settings({}, {}, NO_FILE)
    assert (
        s.otlp_protocol == "grpc"
        and s.sampler == "parentbased_traceidratio"
        and s.sampler_arg == 1.0
    )
    assert exporter_target(s, "traces", {}).endpoint == "http://localhost:4317"


def test_precedence_argument_platform_env_otel_env_pyproject_default(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[tool.platform_obs]\nservice_name = "from-file"\nenvironment = "file-env"\nlog_level = "debug"\n'
    )
    env = {
        "OTEL_SERVICE_NAME": "from-otel",
        "PLATFORM_OBS_SERVICE_NAME": "from-platform",
        "PLATFORM_OBS_ENVIRONMENT": "prod",
    }
    assert load_settings({"service_name": "from-arg"}, env, pyproject).service_name == "from-arg"
    assert load_settings({}, env, pyproject).service_name == "from-platform"
    del env["PLATFORM_OBS_SERVICE_NAME"]
    assert load_settings({}, env, pyproject).service_name == "from-otel"
    s = load_settings({}, {}, pyproject)
    assert (s.service_name, s.environment, s.log_level) == ("from-file", "file-env", "debug")
    assert s.sources["service_name"].kind == "pyproject"
    assert load_settings({}, {}, NO_FILE).service_name is None


def test_per_signal_variables_beat_general_otel_but_not_platform_or_arguments() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:4318/custom/logs",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2500",
    }
    s = load_settings({}, env, NO_FILE)
    traces = exporter_target(s, "traces", env)
    assert traces.endpoint == "http://collector:4318/v1/traces"  # general endpoint is a base
    assert traces.timeout == 2.5  # milliseconds in the variable, seconds in the exporter
    assert (
        exporter_target(s, "logs", env).endpoint == "http://logs:4318/custom/logs"
    )  # per-signal used as is
    assert exporter_target(s, "metrics", env).protocol == "grpc"
    s = load_settings({"otlp_endpoint": "http://arg:4318"}, env, NO_FILE)
    assert exporter_target(s, "logs", env).endpoint == "http://arg:4318/v1/logs"


def test_headers_are_parsed_percent_decoded_and_never_printed() -> None:
    s = load_settings({}, {"OTEL_EXPORTER_OTLP_HEADERS": "api-key=s%3Dcr3t,x-tenant=acme"}, NO_FILE)
    assert s.otlp_headers == {"api-key": "s=cr3t", "x-tenant": "acme"}
    described = s.describe()
    assert "s=cr3t" not in repr(described) and "acme" not in repr(described)
    with pytest.raises(ConfigError) as err:
        load_settings({}, {"OTEL_EXPORTER_OTLP_HEADERS": "api-key"}, NO_FILE)
    assert "OTEL_EXPORTER_OTLP_HEADERS" in str(err.value) and "api-key" not in str(err.value)


def test_resource_attributes_with_sensitive_keys_are_redacted_when_described() -> None:
    s = load_settings({}, {"OTEL_RESOURCE_ATTRIBUTES": "team=a,db.password=x"}, NO_FILE)
    assert s.describe()["resource_attributes"] == {"team": "a", "db.password": "[REDACTED]"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"OTEL_TRACES_SAMPLER": "sometimes"},
            "environment variable OTEL_TRACES_SAMPLER has invalid value 'sometimes': expected one of always_on",
        ),
        (
            {"OTEL_BSP_MAX_QUEUE_SIZE": "-3"},
            "environment variable OTEL_BSP_MAX_QUEUE_SIZE has invalid value '-3': expected a whole number from 1 to 2147483647",
        ),
        (
            {"OTEL_SDK_DISABLED": "yes"},
            "environment variable OTEL_SDK_DISABLED has invalid value 'yes': expected true or false",
        ),
        (
            {"OTEL_METRICS_EXPORTER": "otlp,zipkin"},
            "expected a comma-separated list of otlp, console, none, prometheus (unknown: zipkin)",
        ),
        ({"OTEL_TRACES_EXPORTER": "none,otlp"}, "expected 'none' alone, or a comma-separated list"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "expected one of grpc, http/protobuf"),
        (
            {"PLATFORM_OBS_SHUTDOWN_TIMEOUT": "soon"},
            "PLATFORM_OBS_SHUTDOWN_TIMEOUT has invalid value 'soon'",
        ),
    ],
)
def test_invalid_values_raise_naming_variable_value_and_expectation(
    env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({}, env, NO_FILE)
    assert expected in str(err.value)


def test_invalid_argument_and_unknown_argument_are_named() -> None:
    with pytest.raises(ConfigError, match=r"init\(\) argument 'sampler_arg' has invalid value 2"):
        load_settings({"sampler_arg": 2}, {}, NO_FILE)
    with pytest.raises(ConfigError, match=r"unknown argument.*servce_name"):
        load_settings({"servce_name": "x"}, {}, NO_FILE)


def test_unknown_pyproject_key_is_named(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.platform_obs]\nsample_rate = 0.5\n")
    with pytest.raises(ConfigError, match=r"unknown key.*sample_rate"):
        load_settings({}, {}, pyproject)


# --- property-based: the spec's parsing rules hold for every value --------------------------------

blank = st.text(alphabet=" \t", max_size=3)


@given(blank)
def test_empty_or_blank_value_is_unset(value: str) -> None:
    s = load_settings(
        {},
        {"OTEL_SERVICE_NAME": value, "OTEL_TRACES_SAMPLER_ARG": value, "OTEL_SDK_DISABLED": value},
        NO_FILE,
    )
    assert s.service_name is None and s.sampler_arg == 1.0 and s.sdk_disabled is False


@given(st.sampled_from(["true", "TRUE", "True", "tRuE", " true "]))
def test_boolean_true_only_for_case_insensitive_true(value: str) -> None:
    assert load_settings({}, {"OTEL_SDK_DISABLED": value}, NO_FILE).sdk_disabled is True


@given(
    st.text(min_size=1).filter(lambda v: v.strip() and v.strip().lower() not in ("true", "false"))
)
def test_boolean_anything_else_is_an_error_not_silently_false(value: str) -> None:
    with pytest.raises(ConfigError, match="OTEL_SDK_DISABLED"):
        load_settings({}, {"OTEL_SDK_DISABLED": value}, NO_FILE)


@given(st.floats(min_value=0, max_value=1, allow_nan=False))
def test_sampler_ratio_round_trips(ratio: float) -> None:
    assert load_settings({}, {"OTEL_TRACES_SAMPLER_ARG": repr(ratio)}, NO_FILE).sampler_arg == ratio


@given(
    arg=st.one_of(st.none(), st.just("arg")),
    platform=st.one_of(st.none(), st.just("platform")),
    otel=st.one_of(st.none(), st.just("otel")),
)
def test_precedence_is_total(arg: str | None, platform: str | None, otel: str | None) -> None:
    env = {
        k: v
        for k, v in {"PLATFORM_OBS_SERVICE_NAME": platform, "OTEL_SERVICE_NAME": otel}.items()
        if v
    }
    got = load_settings({"service_name": arg} if arg else {}, env, NO_FILE).service_name
    assert got == (arg or platform or otel)


@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z.]{0,10}", fullmatch=True), st.text(max_size=8), max_size=4
    )
)
def test_resource_attributes_percent_encoding_round_trips(attrs: dict[str, str]) -> None:
    from urllib.parse import quote

    raw = ",".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in attrs.items())
    parsed = load_settings({}, {"OTEL_RESOURCE_ATTRIBUTES": raw}, NO_FILE).resource_attributes
    assert parsed == attrs  # percent-encoded whitespace is data, kept as is
