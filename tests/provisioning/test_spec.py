"""Service config loading: good configs load; every bad input is a precise problem; all at once."""

from __future__ import annotations

import json
import string
from pathlib import Path

import jsonschema
import pytest
import yaml
from fixtures_render import EXAMPLE, SLOS, config, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_obs.provisioning import spec as spec_module
from platform_obs.provisioning.model import Problem, ValidationFailed
from platform_obs.provisioning.pipeline import build
from platform_obs.provisioning.spec import load_specs


def problems_of(paths: list[Path], *, full: bool = False) -> list[Problem]:
    with pytest.raises(ValidationFailed) as info:
        if full:
            build(paths, run_promtool=False)
        else:
            load_specs(paths)
    return info.value.problems


def test_example_config_loads() -> None:
    [spec] = load_specs([EXAMPLE])
    assert (spec.name, spec.team, spec.tier, spec.receiver) == (
        "checkout",
        "payments",
        1,
        "payments-oncall",
    )
    assert spec.environments == ("production", "staging")
    assert spec.slos is not None and spec.slos.availability == 99.9
    assert spec.slos.latency is not None and spec.slos.latency.threshold == 0.25
    assert spec.alerts["high-error-ratio"] == {"threshold": 0.02, "for": "10m"}
    assert spec.custom_alerts[0].name == "CheckoutPaymentProviderErrors"
    assert spec.line("alerts.high-error-ratio.threshold") == _line_of(EXAMPLE, "threshold: 0.02")


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_defaults(tmp_path: Path) -> None:
    [spec] = load_specs([write(tmp_path, config())])
    assert spec.environments == ("production",)
    assert spec.tier == 2
    assert spec.dashboards is None and spec.slos is None and spec.alerts == {}
    assert spec.datasources.prometheus == "prometheus"


BAD = [
    # (yaml text, key path, line, bad value, words in expected / message)
    (
        "apiVersion: platform-obs/v2\nkind: Service\nservice: a\nteam: t\nreceiver: r\n",
        "apiVersion",
        1,
        "platform-obs/v2",
        "platform-obs/v1",
    ),
    (
        "apiVersion: platform-obs/v1\nkind: Service\nservice: a\nteam: t\nrecevier: r\nreceiver: r\n",
        "recevier",
        5,
        "recevier",
        "did you mean 'receiver'",
    ),
    (
        "apiVersion: platform-obs/v1\nkind: Service\nteam: t\nreceiver: r\n",
        "service",
        1,
        None,
        "service.name",
    ),
    (
        "apiVersion: platform-obs/v1\nkind: Service\nservice: Check Out\nteam: t\nreceiver: r\n",
        "service",
        3,
        "Check Out",
        "matching",
    ),
    (
        "apiVersion: platform-obs/v1\nkind: Service\nservice: a\nteam: t\nreceiver: r\ntier: 5\n",
        "tier",
        6,
        5,
        "one of 1, 2, 3",
    ),
    (
        "apiVersion: platform-obs/v1\nkind: Service\nservice: a\nteam: t\nreceiver: r\n"
        "slos:\n  availability:\n    objective: 100\n",
        "slos.availability.objective",
        8,
        100,
        "between 0 and 100",
    ),
    (
        "apiVersion: platform-obs/v1\nkind: Service\nservice: a\nteam: t\nreceiver: r\n"
        "slos:\n  window: 30 days\n",
        "slos.window",
        7,
        "30 days",
        "matching",
    ),
    (
        "apiVersion: platform-obs/v1\nkind: Service\nservice: a\nteam: t\nreceiver: r\n"
        "slos:\n  availabilty: {objective: 99}\n",
        "slos.availabilty",
        7,
        "availabilty",
        "did you mean 'availability'",
    ),
    (
        "apiVersion: platform-obs/v1\nkind: Service\nservice: a\nteam: t\nreceiver: r\n"
        "custom_alerts:\n  - name: X\n    expr: up == 0\n",
        "custom_alerts[0].summary",
        7,
        None,
        "string",
    ),
    (
        "apiVersion: platform-obs/v1\nkind: Service\nservice: a\nteam: t\nreceiver: r\n"
        "alerts:\n  high-error-ratio: 3\n",
        "alerts.high-error-ratio",
        7,
        3,
        "mapping",
    ),
    (
        "apiVersion: platform-obs/v1\nkind: Service\nservice: a\nteam: t\nreceiver: r\nenvironments: []\n",
        "environments",
        6,
        [],
        "list",
    ),
    (
        "apiVersion: platform-obs/v1\nkind: Service\nservice: a\nteam: t\nreceiver: r\nteam: u\n",
        "team",
        6,
        "team",
        "each key once",
    ),
    ("apiVersion: platform-obs/v1\nkind: Service\nservice: [a\nteam: t\n", "", 4, None, "YAML"),
    ("- just\n- a list\n", "", 1, ["just", "a list"], "key: value"),
    ("", "", None, None, "apiVersion"),
]


@pytest.mark.parametrize(("text", "path", "line", "value", "words"), BAD)
def test_bad_input_is_a_precise_problem(
    tmp_path: Path, text: str, path: str, line: int | None, value: object, words: str
) -> None:
    file = write(tmp_path, text)
    problems = problems_of([file])
    match = [p for p in problems if p.path == path]
    assert match, f"no problem at {path!r}: {problems}"
    problem = match[0]
    assert problem.file == str(file)
    assert problem.line == line
    assert problem.value == value
    assert words in problem.expected + problem.message
    assert str(file) in str(problem)


def test_all_problems_at_once(tmp_path: Path) -> None:
    text = (
        "apiVersion: platform-obs/v1\nkind: Service\nservice: Bad Name\nteam: t\n"
        "tier: 9\nslos:\n  window: 1 month\nextra: 1\n"
    )
    problems = problems_of([write(tmp_path, text)])
    assert {p.path for p in problems} == {"service", "tier", "slos.window", "extra", "receiver"}
    assert all(p.line for p in problems)


def test_problems_from_several_files_are_reported_together(tmp_path: Path) -> None:
    write(tmp_path, config(tier=7), "a.yaml")
    write(tmp_path, config(service="other", team=None), "b.yml")
    write(tmp_path, "not: [yaml", "c.yaml")
    problems = problems_of([tmp_path])
    assert {Path(p.file).name for p in problems} == {"a.yaml", "b.yml", "c.yaml"}


def test_directory_loading_and_duplicates(tmp_path: Path) -> None:
    write(tmp_path, config(), "a.yaml")
    write(tmp_path, config(service="search", team="discovery"), "b.yaml")
    (tmp_path / "notes.txt").write_text("ignored")
    assert [s.name for s in load_specs([tmp_path])] == ["checkout", "search"]
    write(tmp_path, config(), "c.yaml")
    [problem] = problems_of([tmp_path])
    assert problem.path == "service" and "already defined" in problem.message and problem.line == 3


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    problems = problems_of([tmp_path / "nope.yaml", tmp_path / "empty"])
    assert ["no such file" in p.message for p in problems] == [True, False]
    assert "no service config" in problems[1].message


CHECKS = [
    # config overrides, key path, words
    (
        {"alerts": {"high-eror-ratio": {"threshold": 0.1}}},
        "alerts.high-eror-ratio",
        "did you mean 'high-error-ratio'",
    ),
    (
        {"alerts": {"high-error-ratio": {"treshold": 0.1}}},
        "alerts.high-error-ratio.treshold",
        "did you mean 'threshold'",
    ),
    (
        {"alerts": {"high-error-ratio": {"threshold": 5}}},
        "alerts.high-error-ratio.threshold",
        "between 0",
    ),
    (
        {"alerts": {"high-error-ratio": {"for": "ten minutes"}}},
        "alerts.high-error-ratio.for",
        "duration",
    ),
    (
        {"alerts": {"high-error-ratio": {"severity": "sev1"}}},
        "alerts.high-error-ratio.severity",
        "critical",
    ),
    (
        {"alerts": {"slo-availability-burn-rate": {"page": "no"}}},
        "alerts.slo-availability-burn-rate",
        "needs slo.availability",
    ),
    (
        {"slos": SLOS, "alerts": {"slo-availability-burn-rate": {"page": "no"}}},
        "alerts.slo-availability-burn-rate.page",
        "true or false",
    ),
    ({"dashboards": ["overview", "slo"]}, "dashboards[1]", "needs slo"),
    ({"dashboards": ["overveiw"]}, "dashboards[0]", "did you mean 'overview'"),
    (
        {"slos": {"latency": {"threshold": "300ms", "objective": 99}}},
        "slos.latency.threshold",
        "bucket boundary",
    ),
    ({"slos": {"window": "7d", "availability": {"objective": 99}}}, "slos.window", "30d"),
    ({"evaluation_interval": "15s"}, "evaluation_interval", "multiple of 10s"),
    (
        {"custom_alerts": [{"name": "HighErrorRatio", "expr": "up == 0", "summary": "s"}]},
        "custom_alerts[0].name",
        "already used",
    ),
]


@pytest.mark.parametrize(("overrides", "path", "words"), CHECKS)
def test_checks_against_templates(tmp_path: Path, overrides: dict, path: str, words: str) -> None:
    file = write(tmp_path, config(**overrides))
    problems = problems_of([file], full=True)
    match = [p for p in problems if p.path == path]
    assert match, problems
    assert words in match[0].message + match[0].expected
    assert match[0].file == str(file) and match[0].line is not None


def test_schema_is_a_valid_json_schema_and_documents_every_key() -> None:
    schema = spec_module.schema()
    jsonschema.validators.validator_for(schema).check_schema(schema)
    docs = (EXAMPLE.parents[2] / "docs" / "service-config.md").read_text()
    for key in schema["properties"]:
        assert f"`{key}`" in docs, key


def test_example_validates_against_the_raw_schema() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    jsonschema.validate(data, spec_module.schema())
    json.dumps(spec_module.schema())


_KEYS = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12)


@settings(
    max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(key=_KEYS, value=st.one_of(st.integers(), st.text(max_size=5), st.booleans()))
def test_unknown_top_level_keys_are_named(tmp_path: Path, key: str, value: object) -> None:
    if key in spec_module.schema()["properties"]:
        return
    [problem] = problems_of([write(tmp_path, config(**{key: value}))])
    assert problem.path == key and problem.value == key and problem.line


@settings(
    max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(
    tier=st.one_of(st.integers(-5, 10), st.text(max_size=3), st.floats(allow_nan=False)),
    service=st.text(max_size=20),
)
def test_any_values_load_or_fail_cleanly(tmp_path: Path, tier: object, service: str) -> None:
    file = write(tmp_path, config(tier=tier, service=service))
    try:
        [spec] = load_specs([file])
    except ValidationFailed as exc:
        assert exc.problems and all(p.file == str(file) for p in exc.problems)
        assert all(p.line for p in exc.problems)
    else:
        assert spec.tier in (1, 2, 3) and spec.name == service
