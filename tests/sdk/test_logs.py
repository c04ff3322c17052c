"""Structured logs in a real process: one pipeline, one line per event, ids, redaction, formats."""

from __future__ import annotations

import re

from service_process import run_service

LOGGING = """
import logging
logging.basicConfig(level=logging.INFO)  # a library or an old habit: must not double the lines
import platform_obs
from opentelemetry import trace
platform_obs.init(service_name="checkout", environment="prod", traces_exporter="none",
                  metrics_exporter="none", logs_exporter="none", redact_keys=["iban"])
platform_obs.init(service_name="checkout", environment="prod", traces_exporter="none",
                  metrics_exporter="none", logs_exporter="none", redact_keys=["iban"])
log = platform_obs.get_logger("checkout.api")
log.info("outside span", user="ann")
with trace.get_tracer("t").start_as_current_span("req"):
    log.warning("inside span", password="hunter2", headers={"Authorization": "Bearer x", "accept": "json"},
                x_api_key="k", session_id="s", customer_iban="DE00", amount=3)
    logging.getLogger("thirdparty.lib").info("lib says %s", "hi", extra={"db_password": "p", "rows": 2})
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed")
        logging.getLogger("thirdparty.lib").exception("lib failed")
log.debug("below level")
"""


def test_one_json_line_per_event_from_structlog_and_stdlib() -> None:
    done = run_service(LOGGING, env={"OTEL_TRACES_SAMPLER": "always_on"})
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # basicConfig's stderr handler was replaced, not kept beside ours
    lines = done.json_lines
    assert [e["event"] for e in lines] == [
        "outside span",
        "inside span",
        "lib says hi",
        "lookup failed",
        "lib failed",
    ]
    assert len(done.stdout.strip().splitlines()) == len(lines)  # nothing else, nothing twice
    for entry in lines:
        assert entry["service"] == "checkout" and entry["env"] == "prod"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", entry["timestamp"])
    by_event = {e["event"]: e for e in lines}
    assert (
        by_event["outside span"]["logger"] == "checkout.api"
        and by_event["outside span"]["level"] == "info"
    )
    assert "trace_id" not in by_event["outside span"] and "span_id" not in by_event["outside span"]
    inside = by_event["inside span"]
    assert re.fullmatch(r"[0-9a-f]{32}", inside["trace_id"]) and re.fullmatch(
        r"[0-9a-f]{16}", inside["span_id"]
    )
    lib = by_event["lib says hi"]
    assert (lib["logger"], lib["level"], lib["rows"]) == ("thirdparty.lib", "info", 2)
    assert lib["trace_id"] == inside["trace_id"]


def test_sensitive_keys_are_redacted_in_log_lines() -> None:
    done = run_service(LOGGING)
    by_event = {e["event"]: e for e in done.json_lines}
    inside = by_event["inside span"]
    for key in ("password", "x_api_key", "session_id", "customer_iban"):
        assert inside[key] == "[REDACTED]", key
    assert inside["headers"] == {"Authorization": "[REDACTED]", "accept": "json"}
    assert inside["amount"] == 3
    assert by_event["lib says hi"]["db_password"] == "[REDACTED]"
    assert (
        "hunter2" not in done.stdout and "Bearer x" not in done.stdout and "DE00" not in done.stdout
    )


def test_exceptions_are_structured_data_without_locals() -> None:
    done = run_service(LOGGING)
    by_event = {e["event"]: e for e in done.json_lines}
    for event in ("lookup failed", "lib failed"):
        entry = by_event[event]
        assert entry["level"] == "error"
        (exc,) = entry["exception"]
        assert exc["exc_type"] == "KeyError" and exc["exc_value"] == "'missing'"
        assert exc["frames"] and all("locals" not in frame for frame in exc["frames"])


def test_console_format_switch_gives_readable_lines() -> None:
    done = run_service(
        """
        import platform_obs
        platform_obs.init(service_name="checkout", log_format="console", traces_exporter="none",
                          metrics_exporter="none", logs_exporter="none")
        platform_obs.get_logger("x").info("hello", n=1)
        """,
        env={"PLATFORM_OBS_LOG_FORMAT": ""},
    )
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.strip().splitlines()
    assert not line.startswith("{") and "hello" in line and "n=1" in line and "info" in line


def test_log_level_filters_both_pipelines() -> None:
    done = run_service(
        """
        import logging
        import platform_obs
        platform_obs.init(service_name="s", log_level="warning", traces_exporter="none", metrics_exporter="none", logs_exporter="none")
        platform_obs.get_logger("x").info("quiet")
        logging.getLogger("lib").info("quiet too")
        platform_obs.get_logger("x").error("loud")
        """
    )
    assert [e["event"] for e in done.json_lines] == ["loud"]
