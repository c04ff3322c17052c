"""Output YAML is exactly what PyYAML's own safe dumper writes, however it is made faster."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures_render import SLOS, config, templates, write
from hypothesis import given, settings
from hypothesis import strategies as st

from platform_obs.provisioning import outputs
from platform_obs.provisioning.pipeline import render_all
from platform_obs.provisioning.spec import load_specs

REFERENCE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def reference(data: Any) -> str:
    """PyYAML's safe dumper, with the options of the output files."""
    return yaml.dump(
        data,
        Dumper=REFERENCE_DUMPER,
        sort_keys=True,
        allow_unicode=True,
        default_flow_style=False,
        width=2**31 - 1,
    )


SHARED = {"severity": "page", "team": "payments"}
AWKWARD = [
    "",
    " leading",
    "trailing ",
    "yes",
    "on",
    "No",
    "~",
    "null",
    "123",
    "0x1f",
    "1e3",
    "1_000",
    "2001-12-14",
    "a: b",
    "# not a comment",
    "- item",
    "multi\nline\n",
    "tab\there",
    "é ünïcode ✓",
    "{{ $labels.x }}",
    "quote \" and ' both",
    "x" * 300,
]


@pytest.mark.parametrize(
    "data",
    [
        {"groups": [{"labels": SHARED}, {"labels": SHARED}]},  # one object twice: an alias
        {"a": [SHARED, SHARED], "b": SHARED},
        {text: text for text in AWKWARD},
        [[1, 2], [], {}, [[]], {"k": {}}],
        {"ints": [0, -1, 10**20], "floats": [0.5, 1.0, 1e-06, -2.5e30, math.inf, -math.inf]},
        {"bools": [True, False], "none": None, "nested": {"z": 1, "a": {"y": [None]}}},
        {1: "int key", "b": 2, None: "none key"},  # keys that do not sort: their order stays
        {"tuple": (1, ("a", "b"))},
        "a plain string",
        42,
    ],
)
def test_awkward_documents_are_written_as_pyyaml_writes_them(data: Any) -> None:
    assert outputs.dump_yaml(data) == reference(data)


scalars = st.one_of(
    st.text(max_size=20),
    st.sampled_from(AWKWARD),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=10), st.sampled_from(AWKWARD)), children),
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_any_document_is_written_as_pyyaml_writes_it(data: Any) -> None:
    assert outputs.dump_yaml(data) == reference(data)


def test_every_yaml_file_of_a_fleet_is_written_as_pyyaml_writes_it(tmp_path: Path) -> None:
    for i, name in enumerate(["checkout", "on", "123", "a.b", "orders"]):
        customs = [{"name": "Backlog", "expr": "queue > 1", "summary": f"{name}: backlog"}]
        data = config(
            service=name,
            team="payments",
            receiver="payments-oncall",
            slos=SLOS if i % 2 else None,
            tier=2,
            custom_alerts=customs if i % 2 else None,
        )
        write(tmp_path, data, f"{i}.yaml")
    files = outputs.render_files(render_all(load_specs([tmp_path]), templates()).rendered)
    written = {path: text for path, text in files.items() if path.endswith(".yaml")}
    assert len(written) > 10
    for path, text in written.items():
        assert text == reference(yaml.safe_load(text)), path
