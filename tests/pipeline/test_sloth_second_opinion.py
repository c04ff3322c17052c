"""Sloth as a second opinion on the burn-rate alerts.

For the SLOs of ``examples/service-config/platform-obs.yaml`` the real Sloth (built from its
upstream module, ``tests/peers/sloth``) generates its rules from a Sloth spec with the same SLIs.
Both rule files are loaded into one ``promtool test rules`` run over the same synthetic traffic,
and at every evaluation point the two must agree: an alert tier of ours is active (pending or
firing) exactly when Sloth's same tier fires. The comparison runs on whatever our renderer
produces today, so it stays valid when the templates change.

Deliberate differences (docs/metric-pipeline.md, "Sloth as a second opinion"):

* ours hold a tier for ``page_for`` / ``ticket_for`` before firing (Sloth's alerts have no
  ``for``), so ours are compared in the *pending or firing* state;
* Sloth's SLO-period panels use its ``slo:*`` recording rules; ours compute the same in the
  dashboards.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from peers import peer_binary
from prometheus_servers import require_binary

from platform_obs import conventions
from platform_obs.provisioning.pipeline import build
from platform_obs.provisioning.render.scope import ENV_LABEL, le_matcher, series_selector
from platform_obs.provisioning.spec import ServiceSpec, read_specs

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "service-config"
COUNT = conventions.HTTP_SERVER_REQUEST_DURATION.series("count")
BUCKET = conventions.HTTP_SERVER_REQUEST_DURATION.series("bucket")
STATUS = conventions.prom_label(conventions.HTTP_RESPONSE_STATUS_CODE)
#: Our alert names per SLO (alerts/slo-*-burn-rate.yaml) and the tiers Sloth generates.
OURS = {"availability": "AvailabilityErrorBudgetBurn", "latency": "LatencyErrorBudgetBurn"}
SLOTH_ALERT = "SlothBurn"
TIERS = ("page", "ticket")
#: Samples every minute (a 5m window holds five); both rule sets evaluated every EVAL_MIN
#: minutes (our rule group's interval is overridden to match); compared every COMPARE_EVERY_MIN.
STEP_MIN = 1
EVAL_MIN = 5
COMPARE_EVERY_MIN = 10
REQUESTS_PER_MIN = 10000


def _spec() -> ServiceSpec:
    specs, problems = read_specs([EXAMPLE])
    assert not problems, problems
    (spec,) = specs
    assert spec.slos and spec.slos.availability and spec.slos.latency
    return spec


def _our_rules(spec: ServiceSpec) -> dict[str, Any]:
    rendered = build([EXAMPLE], run_promtool=False)
    # The alert rules and the SLO recordings they read, as one rule file.
    groups = [
        group
        for r in rendered.prometheus_rules
        if r.service == spec.name
        for group in r.document["groups"]
    ]
    assert groups
    # Recording groups first, as in Sloth's output: promtool evaluates groups in file order, so
    # alerts listed before the recordings they read would see values one evaluation old.
    groups.sort(key=lambda g: not all("record" in rule for rule in g["rules"]))
    return {"groups": groups}


def _our_tiers(rules: dict[str, Any]) -> dict[str, set[str]]:
    """SLO -> the tiers our rendered rule file alerts on (a tier switched off is not there)."""
    tiers: dict[str, set[str]] = {slo: set() for slo in OURS}
    for group in rules["groups"]:
        for rule in group["rules"]:
            for slo, alert in OURS.items():
                if str(rule.get("alert", "")).startswith(alert):
                    tiers[slo].add(
                        rule["labels"].get("tier") or rule["alert"][len(alert) :].lower()
                    )
    return tiers


def sloth_spec(spec: ServiceSpec, tiers: dict[str, set[str]]) -> dict[str, Any]:
    """A Sloth ``prometheus/v1`` spec with the service's SLIs, objectives and enabled tiers."""
    assert spec.slos and spec.slos.availability and spec.slos.latency
    selector = series_selector(spec, dashboard=False)
    by = f"sum by ({ENV_LABEL})"
    total = f"{by} (rate({COUNT}{{{selector}}}[{{{{.window}}}}]))"
    errors = f'{by} (rate({COUNT}{{{selector}, {STATUS}=~"5.."}}[{{{{.window}}}}]))'
    fast = (
        f"{by} (rate({BUCKET}{{{selector}, {le_matcher(spec.slos.latency.threshold)}}}"
        "[{{.window}}]))"
    )
    slos = []
    for name, objective, error_query in (
        ("availability", spec.slos.availability, errors),
        ("latency", spec.slos.latency.objective, f"({total}) - ({fast})"),
    ):
        alerting: dict[str, Any] = {"name": SLOTH_ALERT, "labels": {"slo": name}}
        for tier in TIERS:
            key = f"{tier}_alert"
            alerting[key] = {"labels": {"tier": tier}} if tier in tiers[name] else {"disable": True}
        slos.append(
            {
                "name": name,
                "objective": objective,
                "sli": {"events": {"error_query": error_query, "total_query": total}},
                "alerting": alerting,
            }
        )
    return {"version": "prometheus/v1", "service": spec.name, "slos": slos}


def sloth_rules(sloth: Path, spec_doc: dict[str, Any], window: str, tmp: Path) -> dict[str, Any]:
    spec_file, out = tmp / "sloth-spec.yaml", tmp / "sloth-rules.yaml"
    spec_file.write_text(yaml.safe_dump(spec_doc, sort_keys=False), encoding="utf-8")
    result = subprocess.run(
        [
            str(sloth),
            "generate",
            f"--input={spec_file}",
            f"--out={out}",
            f"--default-slo-period={window}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(out.read_text(encoding="utf-8")))


# --- synthetic traffic ----------------------------------------------------------------------------

#: Per-minute share of failed and of slow (> threshold) requests, as a function of the minute.
Shape = Callable[[int], tuple[float, float]]


@dataclass(frozen=True)
class Scenario:
    name: str
    minutes: int
    #: environment -> traffic shape
    shapes: dict[str, Shape]
    #: (environment, slo, tier) that must fire at some point; every other enabled tier must not.
    fires: frozenset[tuple[str, str, str]]


def _phases(*phases: tuple[int, float, float]) -> Shape:
    """(minutes, error share, slow share) phases, one after the other; the last one lasts."""

    def shape(minute: int) -> tuple[float, float]:
        start = 0
        for length, err, slow in phases:
            if minute < start + length:
                return err, slow
            start += length
        return phases[-1][1], phases[-1][2]

    return shape


HOUR, DAY = 60, 1440
SCENARIOS = [
    Scenario(
        "incident after a quiet half day, and a slow burn",
        36 * HOUR,
        {
            "production": _phases(
                (12 * HOUR, 0.0002, 0.001), (3 * HOUR, 0.1, 0.2), (DAY, 0.0002, 0.001)
            ),
            "staging": _phases((36 * HOUR, 0.005, 0.004)),
        },
        # 10% errors burn the 0.1% budget 100x, 20% slow requests the 1% budget 20x; 0.5% errors
        # burn it 5x: below both page factors, above the first ticket factor.
        frozenset(
            {
                ("production", "availability", "page"),
                ("production", "availability", "ticket"),
                ("production", "latency", "page"),
                ("staging", "availability", "ticket"),
            }
        ),
    ),
    Scenario(
        "short spike, and a steady 2% of errors",
        12 * HOUR,
        {
            "production": _phases((2 * HOUR, 0.0, 0.0), (10, 1.0, 1.0), (DAY, 0.0, 0.0)),
            "staging": _phases((12 * HOUR, 0.02, 0.0)),
        },
        # Ten minutes of failures are 1/6 of the 1h window (burn ~167) and 1/144 of a day (~7).
        frozenset(
            {
                ("production", "availability", "page"),
                ("production", "availability", "ticket"),
                ("staging", "availability", "page"),
                ("staging", "availability", "ticket"),
            }
        ),
    ),
    Scenario(
        # 6 x the 0.1% budget is 0.6% (6% for the 1% latency budget): one side of the slower
        # page factor each; both above the 3x ticket factor.
        "either side of a page factor",
        8 * HOUR,
        {
            "production": _phases((8 * HOUR, 0.0061, 0.061)),
            "staging": _phases((8 * HOUR, 0.0059, 0.059)),
        },
        frozenset(
            {
                ("production", "availability", "page"),
                ("production", "availability", "ticket"),
                ("production", "latency", "page"),
                ("staging", "availability", "ticket"),
            }
        ),
    ),
]


def _values(increments: Sequence[int]) -> str:
    """promtool's expanding notation for a counter with these per-minute increments."""
    tokens: list[str] = []
    value, i = 0, 0
    tokens.append("0")
    while i < len(increments):
        step, run = increments[i], 1
        while i + run < len(increments) and increments[i + run] == step:
            run += 1
        tokens.append(f"{value + step}+{step}x{run - 1}")
        value += step * run
        i += run
    return " ".join(tokens)


def input_series(spec: ServiceSpec, scenario: Scenario) -> list[dict[str, str]]:
    assert spec.slos and spec.slos.latency
    le = format(spec.slos.latency.threshold, ".15g")
    out = []
    for env, shape in scenario.shapes.items():
        labels = f'service_name="{spec.name}", {ENV_LABEL}="{env}"'
        ok, failed, fast_ok = [], [], []
        for minute in range(scenario.minutes):
            err, slow = shape(minute)
            errors = round(REQUESTS_PER_MIN * err)
            slow_n = min(round(REQUESTS_PER_MIN * slow), REQUESTS_PER_MIN - errors)
            ok.append(REQUESTS_PER_MIN - errors)
            failed.append(errors)
            fast_ok.append(REQUESTS_PER_MIN - errors - slow_n)
        for status, counts, fast in (("200", ok, fast_ok), ("500", failed, failed)):
            out.append(
                {"series": f'{COUNT}{{{labels}, {STATUS}="{status}"}}', "values": _values(counts)}
            )
            out.append(
                {
                    "series": f'{BUCKET}{{{labels}, {STATUS}="{status}", le="{le}"}}',
                    "values": _values(fast),
                }
            )
    return out


def _active(alert_filter: str, state: str) -> str:
    return f'count by (slo, tier, {ENV_LABEL}) (ALERTS{{{alert_filter}, alertstate=~"{state}"}})'


def _differences() -> dict[str, str]:
    ours = _active('alertname=~"(' + "|".join(OURS.values()) + ')(Page|Ticket)?"', "pending|firing")
    sloth = _active(f'alertname="{SLOTH_ALERT}"', "firing")
    on = f"on (slo, tier, {ENV_LABEL})"
    return {
        "ours without Sloth": f"{ours} unless {on} {sloth}",
        "Sloth without ours": f"{sloth} unless {on} {ours}",
    }


@pytest.fixture(scope="module")
def sloth() -> Path:
    return peer_binary("sloth")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_burn_rate_alerts_agree_with_sloth(sloth: Path, scenario: Scenario, tmp_path: Path) -> None:
    promtool = require_binary(("promtool",))
    spec = _spec()
    assert spec.slos
    ours = _our_rules(spec)
    tiers = _our_tiers(ours)
    assert tiers["availability"], "the example has availability burn-rate alerts"
    theirs = sloth_rules(sloth, sloth_spec(spec, tiers), spec.slos.window, tmp_path)
    # Sloth's SLO-period recordings (30d budget panels) feed no alert: left out, they only cost.
    theirs["groups"] = [g for g in theirs["groups"] if "meta-recordings" not in g["name"]]
    for group in ours["groups"]:
        group["interval"] = f"{EVAL_MIN}m"
    # Sloth's alerts read its recordings: evaluate those first in each round, as a ruler whose
    # recordings ran just before would (promtool otherwise orders groups by name).
    order = sorted((g["name"] for g in theirs["groups"]), key=lambda n: "-alerts-" in n) + [
        g["name"] for g in ours["groups"]
    ]
    (tmp_path / "ours.yaml").write_text(yaml.safe_dump(ours, sort_keys=False), encoding="utf-8")
    (tmp_path / "sloth.yaml").write_text(yaml.safe_dump(theirs, sort_keys=False), encoding="utf-8")
    series = input_series(spec, scenario)
    evals = range(COMPARE_EVERY_MIN, scenario.minutes, COMPARE_EVERY_MIN)
    assert COMPARE_EVERY_MIN % EVAL_MIN == 0
    checks = [
        {"expr": expr, "eval_time": f"{t}m", "exp_samples": []}
        for t in evals
        for expr in _differences().values()
    ]
    # Not agreement by both staying silent: each tier fires or stays silent as the traffic says.
    end = f"{scenario.minutes - EVAL_MIN}m"
    enabled = {(env, slo, tier) for env in scenario.shapes for slo in OURS for tier in tiers[slo]}
    assert scenario.fires <= enabled
    for env, slo, tier in sorted(enabled):
        selector = (
            f'ALERTS{{alertname="{SLOTH_ALERT}", alertstate="firing", slo="{slo}", '
            f'tier="{tier}", {ENV_LABEL}="{env}"}}[{end}]'
        )
        fn = "absent_over_time" if (env, slo, tier) in scenario.fires else "count_over_time"
        checks.append({"expr": f"{fn}({selector})", "eval_time": end, "exp_samples": []})
    tests = {
        "rule_files": ["ours.yaml", "sloth.yaml"],
        "evaluation_interval": f"{EVAL_MIN}m",
        "group_eval_order": order,
        "tests": [
            {
                "name": scenario.name,
                "interval": f"{STEP_MIN}m",
                "input_series": series,
                "promql_expr_test": checks,
            }
        ],
    }
    (tmp_path / "compare.yaml").write_text(yaml.safe_dump(tests, sort_keys=False), encoding="utf-8")
    result = subprocess.run(
        [promtool, "test", "rules", "compare.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
