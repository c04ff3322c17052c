"""The test kit as a user meets it: the ``telemetry`` fixture arrives through the pytest11 entry point."""

from __future__ import annotations

import pytest

USER_TESTS = """
import logging
import platform_obs
from opentelemetry import metrics, trace


def place_order(order_id):
    platform_obs.init(service_name="checkout")  # the application's own init joins the capture
    log = platform_obs.get_logger("orders")
    with trace.get_tracer("orders").start_as_current_span("place_order") as span:
        span.set_attribute("order.id", order_id)
        span.set_attribute("card_token", "tok_123")
        with trace.get_tracer("orders").start_as_current_span("charge"):
            log.info("order_placed", order_id=order_id, password="x")
        metrics.get_meter("orders").create_counter("orders.placed").add(1, {"tier": "gold"})
        metrics.get_meter("orders").create_histogram("orders.duration", unit="s").record(0.2)


def test_first(telemetry):
    place_order(17)
    span = telemetry.span("place_order")
    assert span.attributes["order.id"] == 17
    assert span.attributes["card_token"] == "[REDACTED]"
    assert [s.name for s in telemetry.children(span)] == ["charge"]
    entry = telemetry.log("order_placed")
    assert entry["order_id"] == 17 and entry["password"] == "[REDACTED]"
    assert entry["trace_id"] == format(span.context.trace_id, "032x")
    assert telemetry.metric_sum("orders.placed", tier="gold") == 1
    (point,) = telemetry.metric_points("orders.duration")
    assert point.explicit_bounds[0] == 0.005  # second-scale by default


def test_second_sees_only_its_own(telemetry):
    assert telemetry.spans() == [] and telemetry.logs() == []
    assert telemetry.metric_sum("orders.placed") == 0
    place_order(18)
    place_order(19)
    assert len(telemetry.spans("place_order")) == 2
    assert telemetry.metric_sum("orders.placed") == 2


def test_helpers_fail_with_a_useful_message(telemetry):
    place_order(20)
    try:
        telemetry.span("nope")
    except AssertionError as exc:
        assert "spans seen: ['charge', 'place_order']" in str(exc)
    else:
        raise AssertionError("span() should have failed")
"""


def test_fixture_captures_and_isolates_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_fixture_detects_a_failing_expectation(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
from opentelemetry import trace

def test_wrong(telemetry):
    with trace.get_tracer("t").start_as_current_span("real"):
        pass
    assert telemetry.span("real").attributes.get("missing") == 1
"""
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
