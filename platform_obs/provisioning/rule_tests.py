"""``promtool test rules`` cases generated from the ``tests:`` section of each alert template.

Every alert template carries synthetic series and the rules expected to fire on them, so a new
template brings its own proof that it fires on bad data and stays silent on healthy data. The
template is rendered for a synthetic service (``svc`` in ``production`` with an availability and
a latency SLO), exactly as for a real one.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from platform_obs.provisioning.model import Problem
from platform_obs.provisioning.placeholders import PlaceholderError, Scope, expand
from platform_obs.provisioning.render.definitions import template_alerts
from platform_obs.provisioning.render.prometheus_rules import (
    RECEIVER_LABEL,
    prometheus_rule,
    render_recording_file,
)
from platform_obs.provisioning.render.scope import ENV_LABEL, SERVICE_LABEL, base_values, quote
from platform_obs.provisioning.spec import LatencySLO, ServiceSpec, SLOs
from platform_obs.provisioning.templates import AlertTemplate, Templates
from platform_obs.provisioning.yamlsrc import join

SERVICE = "svc"
ENVIRONMENT = "production"
RULES_FILE = "rules.yaml"


@dataclass(frozen=True)
class RuleTest:
    """One generated case: a rule file and the promtool test file that exercises it."""

    template: str
    name: str
    path: str
    rules: dict[str, Any]
    test: dict[str, Any]
    firing: tuple[str, ...]


def synthetic_spec(template: AlertTemplate, case: dict[str, Any]) -> ServiceSpec:
    return ServiceSpec(
        name=SERVICE,
        team="team",
        receiver="receiver",
        file=template.file,
        environments=(ENVIRONMENT,),
        slos=SLOs(
            window=str(case.get("slo_window", "30d")),
            availability=99.9,
            latency=LatencySLO(threshold=0.5, objective=99.0),
        ),
        alerts={template.id: dict(case.get("params") or {})},
    )


def build_cases(template: AlertTemplate, templates: Templates) -> list[RuleTest]:
    """The promtool cases of one template (empty when it has no ``tests:``)."""
    out = []
    for i, case in enumerate(template.tests):
        spec = synthetic_spec(template, case)
        defns = template_alerts(spec, template, templates)
        rules = []
        for defn in defns:
            rule = prometheus_rule(defn)
            rule.pop("annotations", None)  # text is checked by `promtool check rules`
            rules.append(rule)
        # The SLO recordings first: alerts on recorded series read them in the same evaluation.
        recordings = render_recording_file(spec, templates)
        if recordings is not None:
            rules = recordings.document["groups"][0]["rules"] + rules
        rules_doc = {"groups": [{"name": "test", "rules": rules}]}
        values = {
            **base_values(spec, dashboard=False),
            "series_labels": f"{SERVICE_LABEL}={quote(SERVICE)}, {ENV_LABEL}={quote(ENVIRONMENT)}",
        }
        scope = Scope(values=values)
        series = [
            {"series": expand(str(s["series"]), scope), "values": str(s["values"])}
            for s in case.get("input_series") or []
        ]
        by_rule = {d.rule_id: d for d in defns}
        expected: dict[str, list[dict[str, Any]]] = {r.alert: [] for r in template.rules}
        firing = []
        for entry in case.get("firing") or []:
            rule_id = entry["rule"] if isinstance(entry, dict) else entry
            # Every template alert is per service and environment (``${service_labels}``).
            identity = {SERVICE_LABEL: SERVICE, ENV_LABEL: ENVIRONMENT}
            extra = entry.get("labels", identity) if isinstance(entry, dict) else identity
            firing.append(rule_id)
            rendered = by_rule.get(rule_id)
            if rendered is None:  # disabled by the case's params: expect it to fire anyway -> fails
                disabled = next(r for r in template.rules if r.id == rule_id)
                expected[disabled.alert].append(
                    {"exp_labels": {"alertname": disabled.alert, **extra}}
                )
                continue
            labels = {**rendered.labels, RECEIVER_LABEL: rendered.receiver, **extra}
            expected[rendered.alert].append({"exp_labels": dict(sorted(labels.items()))})
        test = {
            "rule_files": [RULES_FILE],
            "evaluation_interval": "1m",
            "tests": [
                {
                    "name": str(case.get("name", f"case {i}")),
                    "interval": str(case.get("interval", "1m")),
                    "input_series": series,
                    "alert_rule_test": [
                        {
                            "eval_time": str(case.get("eval_time", "10m")),
                            "alertname": name,
                            "exp_alerts": alerts,
                        }
                        for name, alerts in sorted(expected.items())
                    ],
                }
            ],
        }
        out.append(
            RuleTest(
                template.id,
                str(case.get("name", i)),
                join("tests", i),
                rules_doc,
                test,
                tuple(firing),
            )
        )
    return out


def run_case(case: RuleTest, promtool: str = "promtool") -> tuple[bool, str]:
    """Run one case with ``promtool test rules``; (passed, output)."""
    with tempfile.TemporaryDirectory(prefix="po-ruletest-") as tmp:
        (Path(tmp) / RULES_FILE).write_text(
            yaml.safe_dump(case.rules, sort_keys=True), encoding="utf-8"
        )
        (Path(tmp) / "test.yaml").write_text(
            yaml.safe_dump(case.test, sort_keys=True), encoding="utf-8"
        )
        result = subprocess.run(
            [promtool, "test", "rules", "test.yaml"],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
    return result.returncode == 0, result.stdout + result.stderr


def check_template_tests(templates: Templates) -> list[Problem]:
    """Run every template's cases; a template without a firing and a silent case is a problem."""
    problems: list[Problem] = []
    promtool = shutil.which("promtool")
    for template in templates.alerts.values():
        if not any(c.get("firing") for c in template.tests) or not any(
            not c.get("firing") for c in template.tests
        ):
            problems.append(
                Problem(
                    template.file,
                    "tests",
                    "template needs a firing and a silent test case",
                    None,
                    "tests: with at least one case that fires and one with firing: []",
                )
            )
        if promtool is None:
            continue
        try:
            cases = build_cases(template, templates)
        except (PlaceholderError, KeyError, TypeError) as exc:
            problems.append(Problem(template.file, "tests", f"cannot build test cases: {exc}"))
            continue
        for case in cases:
            ok, output = run_case(case, promtool)
            if not ok:
                problems.append(
                    Problem(
                        template.file,
                        case.path,
                        f"promtool test failed: {case.name}: {output.strip()}",
                    )
                )
    return problems
