"""Fixtures for provisioning tests: a running Grafana HTTP double."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests are not a package; make the shared double importable from here too.
_TESTS_DIR = str(Path(__file__).resolve().parent.parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from grafana_double import GrafanaDouble  # noqa: E402

#: Contact points the shared double starts with: Grafana's default plus the example's receivers.
CONTACT_POINTS = ("grafana-default-email", "payments-oncall", "payments-infra", "search-oncall")


@pytest.fixture
def grafana() -> Iterator[GrafanaDouble]:
    """A started Grafana double; stopped after the test."""
    with GrafanaDouble(contact_points=CONTACT_POINTS) as double:
        yield double
