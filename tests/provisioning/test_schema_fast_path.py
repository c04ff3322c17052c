"""The fast schema check never accepts a config the reference implementation rejects."""

from __future__ import annotations

from typing import Any

from fixtures_render import SLOS, config
from hypothesis import given, settings
from hypothesis import strategies as st

from platform_obs.provisioning.spec import _fast_validator, _validator

_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 200),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["checkout\n", "Checkout", "a" * 70, "99.9", "5m", "tier", "-x", "x_y.z"]),
    st.lists(st.sampled_from(["production", "staging", "", "Prod"]), max_size=3),
    st.dictionaries(st.sampled_from(["threshold", "for", "x"]), st.integers(0, 3), max_size=2),
)
_KEYS = [
    "service",
    "team",
    "receiver",
    "tier",
    "environments",
    "slos",
    "alerts",
    "labels",
    "namespace",
    "custom_alerts",
    "unknown",
    "apiVersion",
]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=4), st.booleans())
def test_fast_validator_is_never_more_lenient(changes: dict[str, Any], slos: bool) -> None:
    data = config(slos=SLOS if slos else None, tier=2)
    data.update(changes)
    if _fast_validator().is_valid(data):
        assert not list(_validator().iter_errors(data)), data
