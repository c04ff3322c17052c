"""Fuzzing the config loader and validator: whatever the input, the only exception is the tool's
own ``ValidationFailed``, and each limit that bounds time and memory holds exactly at its edge.

Time and memory per input are bounded by the limits (file size, nesting depth, expanded values,
PromQL size), so these tests check the limits, not the clock.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from fixtures_render import EXAMPLE, config, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_obs.provisioning import limits, yamlsrc
from platform_obs.provisioning.model import Problem, ValidationFailed
from platform_obs.provisioning.pipeline import build

FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_handled(path: Path) -> None:
    """Validating ``path`` succeeds or raises ValidationFailed with printable problems."""
    try:
        build([path], run_promtool=False)
    except ValidationFailed as exc:
        assert exc.problems and all(isinstance(p, Problem) for p in exc.problems)
        assert all(str(p) for p in exc.problems)
        assert any(p.file == str(path) for p in exc.problems)


# --- arbitrary edits of a real config -----------------------------------------------------------

HOSTILE = [
    "\x00", "\x07", "\ufeff", "\u200b", "\n", "\t", "\r", " ", "'", '"', "\\", ":", ": ", "- ",
    "#", "&a ", "*a", "<<: *a\n", "{", "}", "[", "]", "{{", "}}", "{{ if }}", "$labels", ".nan",
    ".inf", "-.inf", "1e400", "9" * 400, "!!binary AAAA", "!!python/object/apply:os.system ['x']",
    "!!set {a}", "? [a, b]\n: c\n", "~", "---\n", "...\n", "%YAML 1.1\n", "  ", "\n  - ",
    "99999999999y", "0x1F", "0o17", "+.5", "2001-12-14", "yes", "no", "on", "null",
]  # fmt: skip
EXAMPLE_TEXT = EXAMPLE.read_text()


@st.composite
def edited_texts(draw: st.DrawFn) -> str:
    text = EXAMPLE_TEXT
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 12))
        insert = draw(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=6)))
        text = text[:at] + insert + text[at + cut :]
    return text


@FUZZ
@given(text=edited_texts())
def test_edited_configs_never_raise_anything_else(tmp_path: Path, text: str) -> None:
    path = tmp_path / "platform-obs.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    assert_handled(path)


# --- arbitrary values in every place ------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**20, max_value=10**400),
    st.floats(),  # NaN and infinities included
    st.text(max_size=12),
    st.sampled_from(["5m", "0s", "99999999999y", "{{ $labels.x", "checkout\n", " a", "\x00"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
TEMPLATE_IDS = ["high-error-ratio", "high-latency", "saturation", "traffic-drop"]
PARAMS = ["threshold", "for", "severity", "receiver", "runbook_url", "memory_bytes", "nope"]
CUSTOM_KEYS = ["name", "expr", "summary", "for", "labels", "runbook_url", "description", "no_data"]


@st.composite
def configs(draw: st.DrawFn) -> dict[str, object]:
    data: dict[str, object] = dict(config())
    keys = ["service", "team", "receiver", "tier", "environments", "labels", "datasources",
            "namespace", "evaluation_interval", "runbook_base_url", "slos", "dashboards"]  # fmt: skip
    for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)):
        data[key] = draw(VALUES)
    if draw(st.booleans()):
        data["alerts"] = {
            draw(st.sampled_from(TEMPLATE_IDS)): {draw(st.sampled_from(PARAMS)): draw(VALUES)}
        }
    if draw(st.booleans()):
        custom: dict[str, object] = {"name": "Custom", "expr": "up == 0", "summary": "s"}
        custom[draw(st.sampled_from(CUSTOM_KEYS))] = draw(VALUES)
        data["custom_alerts"] = [custom]
    if draw(st.booleans()):
        objective = draw(SCALARS)
        data["slos"] = {"availability": {"objective": objective}}
    return data


@FUZZ
@given(data=configs())
def test_any_values_never_raise_anything_else(tmp_path: Path, data: dict[str, object]) -> None:
    assert_handled(write(tmp_path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True)))


# --- each limit holds exactly at its edge -------------------------------------------------------


def _refused(text: str) -> list[Problem]:
    return yamlsrc.parse(text, "fuzz.yaml").problems


@settings(max_examples=40, deadline=None)
@given(levels=st.integers(0, 200), flow=st.booleans())
def test_nesting_limit(levels: int, flow: bool) -> None:
    # The document's top mapping is level 1; `labels` adds `levels` more.
    if flow:
        text = "labels: " + "[" * levels + "]" * levels + "\n"
    else:
        text = "labels:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(levels))
    problems = _refused(text)
    deep = 1 + levels > limits.MAX_DEPTH
    assert bool(problems) == deep, problems
    if deep:
        assert f"deeper than {limits.MAX_DEPTH}" in problems[0].message


@settings(max_examples=40, deadline=None)
@given(width=st.integers(1, 12), depth=st.integers(1, 8))
def test_alias_expansion_limit(width: int, depth: int) -> None:
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    for i in range(1, depth):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    text = "\n".join(lines) + "\n"
    # Every level repeats the one below `width` times: its expansion is sum(width**k).
    expanded = 1 + sum(2 + sum(width**k for k in range(1, level + 2)) - 1 for level in range(depth))
    problems = _refused(text)
    if expanded > limits.MAX_NODES * 1.01:
        assert problems and "expands to more than" in problems[0].message
    elif expanded < limits.MAX_NODES * 0.99:
        assert not problems, problems
    assert len(text) < 1024  # tiny inputs: the expansion, not the size, is what is bounded


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(extra=st.integers(-3, 3))
def test_file_size_limit(tmp_path: Path, extra: int) -> None:
    base = yaml.safe_dump(config(), sort_keys=False)
    size = limits.MAX_FILE_BYTES + extra
    path = tmp_path / "sized.yaml"
    path.write_text(base + "#" * (size - len(base) - 1) + "\n")
    assert path.stat().st_size == size
    problems = yamlsrc.load(path).problems
    assert bool(problems) == (size > limits.MAX_FILE_BYTES), problems


OPERATORS = ["+", "-", "*", "/", " and ", " or ", " unless ", " > ", " == ", "^", "%"]


@settings(max_examples=40, deadline=None)
@given(
    terms=st.lists(st.sampled_from(OPERATORS), min_size=0, max_size=400),
    parens=st.integers(0, 50),
)
def test_expression_complexity_limit(terms: list[str], parens: int) -> None:
    expr = "(" * parens + "up" + "".join(f"{op}up" for op in terms) + ")" * parens
    complexity = len(terms) + parens
    why = limits.promql_problem(expr)
    assert (why is not None) == (complexity > limits.MAX_EXPR_COMPLEXITY), (complexity, why)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_anywhere_are_refused(tmp_path: Path, value: float) -> None:
    for data in (
        config(tier=value),
        config(alerts={"traffic-drop": {"threshold": value}}),
        config(slos={"latency": {"threshold": value, "objective": 99}}),
    ):
        with pytest.raises(ValidationFailed) as info:
            build([write(tmp_path, data)], run_promtool=False)
        assert any("finite" in p.message and p.line for p in info.value.problems)
