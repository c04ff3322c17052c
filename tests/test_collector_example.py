"""The documented collector pipeline (examples/collector/otel-collector.yaml) gives the names the
dashboards use: the promoted resource attributes on every series, the JSON log line in Loki."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from platform_obs import conventions

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "collector" / "otel-collector.yaml"


def _config() -> dict[str, Any]:
    return dict(yaml.safe_load(CONFIG.read_text(encoding="utf-8")))


def _statements(processor: dict[str, Any], key: str) -> list[str]:
    return [s for group in processor[key] for s in group["statements"]]


def test_metrics_promote_exactly_the_conventions_resource_attributes() -> None:
    config = _config()
    pipeline = config["service"]["pipelines"]["metrics"]
    assert pipeline["exporters"] == ["prometheusremotewrite"]
    assert "transform/promote_resource_attributes" in pipeline["processors"]
    statements = _statements(
        config["processors"]["transform/promote_resource_attributes"], "metric_statements"
    )
    promoted = [
        m[1]
        for s in statements
        if (m := re.match(r'set\(attributes\["([^"]+)"\], resource\.attributes\["\1"\]\)', s))
    ]
    assert sorted(promoted) == sorted(conventions.PROMOTED_RESOURCE_ATTRIBUTES)
    exporter = config["exporters"]["prometheusremotewrite"]
    assert exporter["add_metric_suffixes"] is True  # _seconds / _total, as conventions.prom_name


def test_logs_reach_loki_as_the_json_line_the_dashboards_parse() -> None:
    config = _config()
    pipeline = config["service"]["pipelines"]["logs"]
    assert pipeline["exporters"] == ["otlphttp/loki"]
    assert config["exporters"]["otlphttp/loki"]["endpoint"].rstrip("}").endswith("/otlp")
    assert "transform/loki_json_line" in pipeline["processors"]
    statements = _statements(config["processors"]["transform/loki_json_line"], "log_statements")
    fields = {m[1] for s in statements if (m := re.match(r'set\(cache\["([^"]+)"\]', s))}
    f = conventions.LOG_FIELDS
    assert {f.event, f.level, f.service, f.environment, f.trace_id, f.span_id} <= fields
    assert statements[-1] == "set(body, cache)"
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["otlp/tempo"]
