"""Rules may only route to contact points that exist: checked against Grafana before a plan.

Grafana accepts a rule whose ``notification_settings.receiver`` names no contact point, and its
notifications then go nowhere. ``plan``, ``apply`` and ``doctor`` read the contact points once
and refuse such configs with the list of names that do exist.
"""

from __future__ import annotations

from typing import Protocol

from platform_obs.provisioning.model import Problem, Rendered


class ContactPoints(Protocol):
    def list_contact_points(self) -> list[str]: ...


def unknown_receivers(rendered: Rendered, existing: list[str]) -> list[Problem]:
    """One problem per service and receiver that is not an existing contact point."""
    known = set(existing)
    problems = []
    for group in rendered.rule_groups:
        by_receiver: dict[str, list[str]] = {}
        for rule in group.rules:
            receiver = (rule.get("notification_settings") or {}).get("receiver")
            if receiver and receiver not in known:
                by_receiver.setdefault(str(receiver), []).append(str(rule.get("title")))
        for receiver, rules in sorted(by_receiver.items()):
            problems.append(
                Problem(
                    f"service {group.service}",
                    "receiver",
                    f"contact point does not exist in Grafana (alerts {', '.join(rules)})",
                    receiver,
                    "an existing contact point: " + (", ".join(sorted(known)) or "(none)"),
                )
            )
    return problems


def check(rendered: Rendered, grafana: ContactPoints) -> list[Problem]:
    if not rendered.rule_groups:
        return []
    return unknown_receivers(rendered, grafana.list_contact_points())
