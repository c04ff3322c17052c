"""A log call never raises into the service and always yields exactly one strict-JSON line.

Hostile values go through the same pipeline ``init()`` builds (see ``log_pipeline``): structlog
calls, stdlib ``logging`` records through the bridge, and the OTLP LogRecord path, whose records
must still encode as OTLP protobuf.
"""

from __future__ import annotations

import collections
import math
import types
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from log_pipeline import Pipeline, strict_json


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")

    def __str__(self) -> str:
        raise RuntimeError("str exploded")


class ReprReturnsNonString:
    def __repr__(self) -> Any:
        return 17

    __str__ = __repr__


class RaisingMapping(collections.abc.Mapping):  # type: ignore[type-arg]
    def __getitem__(self, key: Any) -> Any:
        raise RuntimeError("no items")

    def __iter__(self) -> Any:
        raise RuntimeError("no iteration")

    def __len__(self) -> int:
        return 1


def _circular_dict() -> dict[str, Any]:
    d: dict[str, Any] = {"name": "loop"}
    d["self"] = d
    return d


def _circular_list() -> list[Any]:
    items: list[Any] = [1]
    items.append(items)
    return items


def _deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels):
        node["k"] = {}
        node = node["k"]
    return root


HOSTILE: dict[str, Any] = {
    "raising_repr": RaisingRepr(),
    "raising_repr_nested": {"a": [RaisingRepr()]},
    "repr_not_a_string": ReprReturnsNonString(),
    "raising_mapping": RaisingMapping(),
    "circular_dict": _circular_dict(),
    "circular_list": _circular_list(),
    "deep_5000": _deep(5000),
    "non_string_keys": {"outer": {(1, 2): "tuple", None: "none", 1.5: "float", RaisingRepr(): 1}},
    "lone_surrogate": "caf\udce9",
    "surrogate_key": {"k\ud800": "v"},
    "nan": float("nan"),
    "infinities": [math.inf, -math.inf, {"x": -math.inf}],
    "huge_int": 10**40,
    "bytes": b"\xff\x00",
    "set_of_odd": {RaisingRepr(), 1},
}


def _check_line(text: str) -> dict[str, Any]:
    lines = text.splitlines()
    assert len(lines) == 1, lines
    return strict_json(lines[0])


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_value_gives_one_strict_json_line_and_an_encodable_record(name: str) -> None:
    pipeline = Pipeline()
    with pipeline.stdout() as out:
        pipeline.log.info("hostile", value=HOSTILE[name])  # must not raise
    entry = _check_line(out.getvalue())
    assert entry["event"] == "hostile" and entry["level"] == "info"
    assert "value" in entry
    # The LogRecord encodes as OTLP protobuf with the field in it: neither it nor its batch lost.
    ((body, exported),) = pipeline.exported_records()
    assert body == "hostile" and "value" in exported


def test_placeholders_name_the_type_and_special_floats_are_strings() -> None:
    pipeline = Pipeline()
    with pipeline.stdout() as out:
        pipeline.log.info(
            "x",
            bad=RaisingRepr(),
            loop=_circular_dict(),
            deep=_deep(5000),
            nan=float("nan"),
            inf=math.inf,
            ninf=-math.inf,
            text="caf\udce9",
            keys={"n": {(1, 2): 1}},
        )
    entry = _check_line(out.getvalue())
    assert entry["bad"] == "<unrepresentable RaisingRepr>"
    assert entry["loop"] == {"name": "loop", "self": "<circular reference: dict>"}
    node = entry["deep"]
    depth = 0
    while isinstance(node, dict):
        node, depth = node["k"], depth + 1
    assert node == "<nested deeper than 20: dict>" and depth == 20
    assert (entry["nan"], entry["inf"], entry["ninf"]) == ("NaN", "Infinity", "-Infinity")
    assert entry["text"] == "caf\ufffd"
    assert entry["keys"] == {"n": {"(1, 2)": 1}}


def test_bad_format_arguments_and_stdlib_records_never_raise() -> None:
    pipeline = Pipeline()
    with pipeline.stdout() as out:
        pipeline.log.info("%s and %s", "only one")
        pipeline.log.warning("%d items", "not a number")
        pipeline.stdlib.info("lib %s %s", "one")
        pipeline.stdlib.info(
            "lib ok",
            extra={"payload": _circular_dict(), "bad": RaisingRepr(), "n": float("nan")},
        )
        pipeline.stdlib.error("lib \udce9 %s", RaisingRepr())
    lines = [strict_json(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 5
    assert lines[0]["event"] == "%s and %s <arguments did not match the format>"
    assert lines[2]["event"] == "lib %s %s <arguments did not match the format>"
    assert lines[3]["payload"]["self"] == "<circular reference: dict>"
    assert lines[3]["bad"] == "<unrepresentable RaisingRepr>" and lines[3]["n"] == "NaN"
    assert pipeline.exported_bytes()


def test_a_processor_that_raises_still_gives_one_line() -> None:
    pipeline = Pipeline()

    def broken(_logger: Any, _name: str, _event: Any) -> Any:
        raise RuntimeError("a third-party processor failed")

    pipeline.processors.insert(0, broken)
    with pipeline.stdout() as out:
        pipeline.log.error("still visible", secret_field="hidden")
    entry = _check_line(out.getvalue())
    assert entry["event"] == "still visible" and entry["level"] == "error"
    assert "RuntimeError" in entry["log_error"] and "hidden" not in out.getvalue()


def test_console_format_survives_hostile_values() -> None:
    pipeline = Pipeline(renderer="console")
    with pipeline.stdout() as out:
        pipeline.log.info("hostile", **{k: v for k, v in HOSTILE.items() if k != "deep_5000"})
    (line,) = out.getvalue().splitlines()
    assert "hostile" in line and "<unrepresentable RaisingRepr>" in line
    line.encode("utf-8")


# --- property test ----------------------------------------------------------------------------------

_text = st.text(st.characters(codec=None), max_size=8)  # surrogates included
_keys = st.one_of(_text, st.integers(), st.none(), st.tuples(st.integers()), st.floats())
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),  # NaN and infinities included
    _text,
    st.binary(max_size=4),
    st.builds(RaisingRepr),
    st.builds(ReprReturnsNonString),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(_keys, children, max_size=4),
        st.dictionaries(_text, children, max_size=3).map(collections.OrderedDict),
        st.dictionaries(_text, children, max_size=3).map(types.MappingProxyType),
        st.frozensets(st.one_of(st.integers(), _text), max_size=3),
    )


_values = st.recursive(_leaves, _containers, max_leaves=25)


@st.composite
def _events(draw: st.DrawFn) -> dict[str, Any]:
    fields = draw(
        st.dictionaries(
            st.text("abcdefghij_", min_size=1, max_size=6).filter(
                lambda k: k not in ("event", "exc_info")
            ),
            _values,
            max_size=4,
        )
    )
    if draw(st.booleans()):  # a cycle through the event
        loop: dict[str, Any] = {"payload": draw(_values)}
        loop["again"] = [loop]
        fields["cycle"] = loop
    return fields


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=_text, fields=_events(), otlp=st.booleans(), via_stdlib=st.booleans())
def test_any_event_gives_exactly_one_strict_json_line(
    event: str, fields: dict[str, Any], otlp: bool, via_stdlib: bool
) -> None:
    pipeline = Pipeline(otlp=otlp)
    with pipeline.stdout() as out:
        if via_stdlib:
            pipeline.stdlib.info(event, extra={f"x_{k}": v for k, v in fields.items()})
        else:
            pipeline.log.info(event, **fields)
    entry = _check_line(out.getvalue())
    assert entry["level"] == "info"
    if otlp:
        assert len(pipeline.records()) == 1
        assert pipeline.exported_bytes()


# --- redaction inside every shape (finding: only plain dicts were searched) -------------------------


def test_redaction_reaches_every_mapping_and_sequence_and_leaves_callers_objects_alone() -> None:
    secret = "hunter2-marker"
    headers = collections.OrderedDict(Authorization=f"Bearer {secret}", accept="json")
    shapes: dict[str, Any] = {
        "ordered": headers,
        "default": collections.defaultdict(list, {"password": secret}),
        "proxy": types.MappingProxyType({"api_key": secret}),
        "list_of_dicts": [{"token": secret}, {"n": 1}],
        "tuple_of_dicts": ({"secret": secret},),
        "nested": {"a": [{"b": ({"client_secret": secret},)}]},
        "pairs": [(b"cookie", secret.encode()), ("x-trace", "ok")],
    }
    before = repr(shapes)
    pipeline = Pipeline()
    with pipeline.stdout() as out:
        pipeline.log.info("request", **shapes)
    entry = _check_line(out.getvalue())
    assert secret not in out.getvalue()
    assert entry["ordered"] == {"Authorization": "[REDACTED]", "accept": "json"}
    assert entry["list_of_dicts"] == [{"token": "[REDACTED]"}, {"n": 1}]
    assert entry["nested"] == {"a": [{"b": [{"client_secret": "[REDACTED]"}]}]}
    assert entry["pairs"][0][1] == "[REDACTED]" and entry["pairs"][1] == ["x-trace", "ok"]
    ((_body, exported),) = pipeline.exported_records()
    assert secret not in repr(exported)
    assert repr(shapes) == before  # copies were redacted, the service's own objects untouched
