"""pytest plugin (registered through the ``pytest11`` entry point): the ``telemetry`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from platform_obs.testing import CapturedTelemetry, capture


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "platform_obs_service_name",
        "service.name used by the telemetry fixture",
        default="test-service",
    )


@pytest.fixture
def telemetry(request: pytest.FixtureRequest) -> Iterator[CapturedTelemetry]:
    """Spans, metrics and logs emitted during this test, captured in memory and isolated per test."""
    captured = capture(service_name=request.config.getini("platform_obs_service_name"))
    captured.clear()
    yield captured
    captured.clear()
