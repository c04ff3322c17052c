"""The Prometheus / Alertmanager test servers: they start on 127.0.0.1, evaluate rules, deliver
alerts, reload, and leave nothing running."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_servers import (
    ALERTMANAGER_BINARIES,
    PROMETHEUS_BINARIES,
    AlertmanagerServer,
    PrometheusServer,
    require_binary,
    wait_for,
)

ALWAYS_FIRING = """\
groups:
  - name: smoke
    interval: 1s
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        labels: {severity: info}
"""


@pytest.fixture(scope="module", autouse=True)
def _binaries() -> None:
    require_binary(PROMETHEUS_BINARIES)
    require_binary(ALERTMANAGER_BINARIES)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_rule_fires_and_reaches_alertmanager_then_everything_stops(tmp_path: Path) -> None:
    rules = tmp_path / "smoke.rules.yaml"
    rules.write_text(ALWAYS_FIRING)
    with (
        AlertmanagerServer() as am,
        PrometheusServer(rule_files=[rules], alertmanager=am.address) as prom,
    ):
        assert prom.url.startswith("http://127.0.0.1:") and am.url.startswith("http://127.0.0.1:")
        assert prom.query("vector(2)")[0]["value"][1] == "2"
        wait_for(lambda: am.alerts(alertname="AlwaysFiring"), 30, what="AlwaysFiring in AM")
        assert [a["state"] for a in prom.alerts()] == ["firing"]
        assert am.alerts(alertname="NoSuchAlert") == []
        pids = [prom.process.pid, am.process.pid]  # type: ignore[union-attr]
        dirs = [prom.dir, am.dir]
    assert not any(_alive(pid) for pid in pids)
    assert not any(d.exists() for d in dirs)


def test_reload_applies_new_rules_and_rejects_broken_ones(tmp_path: Path) -> None:
    with PrometheusServer() as prom:
        assert prom.rules() == []
        rules = tmp_path / "smoke.rules.yaml"
        rules.write_text(ALWAYS_FIRING)
        prom.write_config(rule_files=[rules])
        prom.reload()
        assert [r["name"] for r in prom.rules()] == ["AlwaysFiring"]
        rules.write_text("groups: [{name: x, rules: [{alert: A, expr: 'sum('}]}]")
        prom.write_config(rule_files=[rules])
        with pytest.raises(Exception, match="reload failed"):
            prom.reload()
