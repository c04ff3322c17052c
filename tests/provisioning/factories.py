"""Hand-built ``Rendered`` objects for plan/apply tests (independent of the render pipeline)."""

from __future__ import annotations

from typing import Any

from platform_obs import conventions
from platform_obs.provisioning.model import (
    FOLDER_UID_PREFIX,
    MANAGED_BY_LABEL,
    MANAGER,
    SERVICE_TAG_PREFIX,
    Dashboard,
    Folder,
    Rendered,
    RuleGroup,
    stable_uid,
)

TEAM = "payments"
REQUESTS = conventions.HTTP_SERVER_REQUEST_DURATION.series("count")


def team_folder_uid(team: str = TEAM) -> str:
    return stable_uid(FOLDER_UID_PREFIX + "team", team)


def service_folder_uid(service: str) -> str:
    return stable_uid(FOLDER_UID_PREFIX + "svc", service)


def dashboard(service: str, kind: str = "red", *, title: str | None = None) -> Dashboard:
    model: dict[str, Any] = {
        "uid": stable_uid(service, kind),
        "title": title or f"{service} / {kind.upper()}",
        "tags": [MANAGER, f"{SERVICE_TAG_PREFIX}{service}"],
        "schemaVersion": 41,
        "timezone": "browser",
        "panels": [
            {
                "id": 1,
                "type": "timeseries",
                "title": "Request rate",
                "targets": [
                    {
                        "refId": "A",
                        "expr": f'sum(rate({REQUESTS}{{service_name="{service}"}}[5m]))',
                    }
                ],
            }
        ],
    }
    return Dashboard(service=service, folder_uid=service_folder_uid(service), model=model)


def rule(service: str, name: str, *, threshold: float = 0.05, for_: str = "5m") -> dict[str, Any]:
    group = f"{service}-alerts"
    return {
        "uid": stable_uid(service, name),
        "title": f"{service} {name}",
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": 600, "to": 0},
                "datasourceUid": "prometheus",
                "model": {
                    "refId": "A",
                    "expr": (
                        f'sum(rate({REQUESTS}{{service_name="{service}",'
                        'http_response_status_code=~"5.."}[5m]))'
                    ),
                    "instant": True,
                },
            },
            {
                "refId": "C",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "A",
                    "conditions": [{"evaluator": {"type": "gt", "params": [threshold]}}],
                },
            },
        ],
        "noDataState": "NoData",
        "execErrState": "Error",
        "for": for_,
        "labels": {MANAGED_BY_LABEL: MANAGER, "service": service, "severity": "page"},
        "annotations": {"summary": f"{service}: {name}"},
        "isPaused": False,
        "folderUID": service_folder_uid(service),
        "ruleGroup": group,
    }


def rule_group(service: str, *, threshold: float = 0.05, interval: int = 60) -> RuleGroup:
    return RuleGroup(
        service=service,
        folder_uid=service_folder_uid(service),
        title=f"{service}-alerts",
        interval_seconds=interval,
        rules=(
            rule(service, "high-error-rate", threshold=threshold),
            rule(service, "high-latency"),
        ),
    )


def rendered(
    services: list[str] | int = 2,
    *,
    thresholds: dict[str, float] | None = None,
    extra_dashboards: dict[str, list[str]] | None = None,
) -> Rendered:
    """Everything for ``services`` (names, or a count) in one team folder."""
    names = [f"svc{i:03d}" for i in range(services)] if isinstance(services, int) else services
    thresholds = thresholds or {}
    extra_dashboards = extra_dashboards or {}
    out = Rendered(services=list(names))
    out.folders.append(Folder(team_folder_uid(), "Payments"))
    for name in names:
        out.folders.append(Folder(service_folder_uid(name), name, parent_uid=team_folder_uid()))
        out.dashboards.append(dashboard(name))
        for kind in extra_dashboards.get(name, []):
            out.dashboards.append(dashboard(name, kind))
        out.rule_groups.append(rule_group(name, threshold=thresholds.get(name, 0.05)))
    return out
