"""Compare rendered objects with live Grafana and say what apply would do.

No-op detection without one GET per object:

* Dashboards are sent with a tag ``po-hash:<12 hex>``: a hash of the canonical JSON of what we send
  (model + folder). Grafana stores dashboards as sent, and search results carry tags and folderUid,
  so one search call decides "unchanged" for every dashboard. Only dashboards whose hash differs
  are fetched, to show a diff. Trade-off: a UI edit that keeps the tag is invisible to the fast
  path; ``deep=True`` (``--deep``) fetches and compares every managed dashboard.
* Alert rules come from one ``GET /api/v1/provisioning/alert-rules`` and are grouped by folder and
  group; the rule list has no group interval, so intervals come from one export call (falling back
  to one GET per group only on servers without the export endpoint).
* Folders come from one search for ``dash-folder``.

Server-side fields (ids, versions, provenance, timestamps, defaults Grafana fills in) are removed on
both sides before comparing, so an unchanged object never shows as changed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Protocol

from platform_obs.provisioning import ownership
from platform_obs.provisioning.durations import duration_seconds
from platform_obs.provisioning.model import (
    FOLDER_UID_PREFIX,
    MANAGER,
    SERVICE_TAG_PREFIX,
    Dashboard,
    Folder,
    Rendered,
    RuleGroup,
)
from platform_obs.provisioning.ownership import Owner

#: ``refuse``: an update of an object not proven ours (see ``ownership``); apply writes nothing.
Action = Literal["create", "update", "delete", "unchanged", "skip", "refuse"]
Kind = Literal["folder", "dashboard", "rule_group"]

HASH_TAG_PREFIX = ownership.HASH_TAG_PREFIX
#: Rule labels that may name the service a rule belongs to (first match wins).
SERVICE_LABELS = ("service", "service_name")


class LiveReader(Protocol):
    """What planning needs from Grafana (implemented by ``grafana.Grafana``)."""

    def list_folders(self) -> list[dict[str, Any]]: ...
    def list_managed_dashboards(self) -> list[dict[str, Any]]: ...
    def get_dashboard(self, uid: str) -> dict[str, Any] | None: ...
    def list_alert_rules(self) -> list[dict[str, Any]]: ...
    def rule_intervals(self) -> dict[str, float] | None: ...
    def get_rule_group(self, folder_uid: str, group: str) -> dict[str, Any] | None: ...
    def search_folder_contents(self, folder_uid: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Change:
    action: Action
    kind: Kind
    #: Folder uid, dashboard uid, or ``<folderUid>/<group>``.
    key: str
    service: str = ""
    title: str = ""
    #: Names both sides of the raw JSON diff of ``before`` and ``after`` (empty: no diff).
    diff_label: str = ""
    #: Why an object is skipped (file-provisioned, not managed ...) or refused.
    reason: str = ""
    #: What else the change does, in words (rules it keeps, objects it adopts ...).
    notes: tuple[str, ...] = ()
    #: What apply sends (create/update) or needs to identify the object (delete). Not printed.
    payload: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: Normalised live and desired state (None where there is none), for field-level views.
    before: Any = field(default=None, repr=False, compare=False)
    after: Any = field(default=None, repr=False, compare=False)

    @cached_property
    def diff(self) -> str:
        """The raw JSON diff, live -> rendered; made on first use, as most plans never show it
        (indented JSON and difflib cost more than the rest of planning when much changes)."""
        return unified_diff(self.before, self.after, self.diff_label) if self.diff_label else ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action,
            "kind": self.kind,
            "key": self.key,
            "service": self.service,
            "title": self.title,
        }
        if self.diff:
            out["diff"] = self.diff
        if self.reason:
            out["reason"] = self.reason
        if self.notes:
            out["notes"] = list(self.notes)
        return out


_KIND_ORDER = {"folder": 0, "dashboard": 1, "rule_group": 2}


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    prune: bool = False

    def by_action(self, action: Action) -> list[Change]:
        return [c for c in self.changes if c.action == action]

    @property
    def writes(self) -> list[Change]:
        return [c for c in self.changes if c.action in ("create", "update", "delete")]

    @property
    def deletes(self) -> list[Change]:
        return self.by_action("delete")

    @property
    def has_changes(self) -> bool:
        return bool(self.writes)

    @property
    def refused(self) -> list[Change]:
        return self.by_action("refuse")

    def counts(self) -> dict[str, int]:
        names: tuple[Action, ...] = ("create", "update", "delete", "unchanged", "skip", "refuse")
        return {a: len(self.by_action(a)) for a in names}

    def to_json(self) -> dict[str, Any]:
        return {
            "prune": self.prune,
            "has_changes": self.has_changes,
            "summary": self.counts(),
            "changes": [c.to_json() for c in self.changes],
        }


# --- canonical forms ----------------------------------------------------------------------------


def unified_diff(before: Any, after: Any, label: str) -> str:
    a = ownership.json_bytes(before, indent=True).decode().splitlines()
    b = ownership.json_bytes(after, indent=True).decode().splitlines()
    lines = difflib.unified_diff(a, b, f"live/{label}", f"rendered/{label}", lineterm="", n=3)
    return "\n".join(lines)


def _strip_hash_tags(tags: Iterable[Any]) -> list[Any]:
    return [t for t in tags if not (isinstance(t, str) and t.startswith(HASH_TAG_PREFIX))]


def hash_tag(tags: Iterable[Any]) -> str | None:
    for t in tags:
        if isinstance(t, str) and t.startswith(HASH_TAG_PREFIX):
            return t
    return None


def desired_dashboard(d: Dashboard, owner: Owner | None = None) -> dict[str, Any]:
    """The dashboard JSON apply sends: model + tags + ownership marker + content hash tag."""
    # Only top-level keys change: a shallow copy (a deep copy per dashboard dominated planning).
    model = dict(d.model)
    for server_field in ("id", "version"):
        model.pop(server_field, None)
    tags = _strip_hash_tags(model.get("tags") or [])
    for tag in (MANAGER, f"{SERVICE_TAG_PREFIX}{d.service}"):
        if tag not in tags:
            tags.append(tag)
    tags = ownership.stamp_dashboard_tags(tags, d.uid, owner or Owner("", d.service))
    model["tags"] = tags
    digest = ownership.content_hash(model, d.folder_uid)
    model["tags"] = [*tags, f"{HASH_TAG_PREFIX}{digest}"]
    return model


def normalise_dashboard(model: dict[str, Any]) -> dict[str, Any]:
    """Drop what Grafana adds or owns (id, version) and our hash tag, for diffing.

    Shallow: only top-level keys change, and the result is only read (compared, shown); a deep
    copy of every changed dashboard cost more than the rest of its planning.
    """
    out = {k: v for k, v in model.items() if k not in ("id", "version")}
    out["tags"] = _strip_hash_tags(model.get("tags") or [])
    return out


_SERVER_RULE_FIELDS = frozenset(
    ("id", "orgID", "orgId", "updated", "provenance", "folderUID", "ruleGroup")
)
_RULE_DURATION_FIELDS = ("for", "keep_firing_for")
#: Values that mean "not set" (``in`` compares with ``==``, as Grafana leaves them out or not).
_EMPTY: tuple[Any, ...] = (None, {}, [], "")


def normalise_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule with server-owned fields and empty/default values removed, durations in seconds."""
    # Shallow: only top-level keys change, and normalised rules are only read (compared, shown).
    out = {k: v for k, v in rule.items() if k not in _SERVER_RULE_FIELDS and v not in _EMPTY}
    if out.get("isPaused") is False:
        del out["isPaused"]
    for key in _RULE_DURATION_FIELDS:
        if key in out:
            seconds = duration_seconds(out[key])
            if seconds is not None:
                if seconds == 0:
                    del out[key]
                else:
                    out[key] = seconds
    return out


def normalise_group(interval: float | None, rules: Iterable[dict[str, Any]]) -> dict[str, Any]:
    # Rules keyed by uid: evaluation order inside a group is not significant for alerting.
    by_uid = {str(r.get("uid", "")): normalise_rule(r) for r in rules}
    return {"interval": interval, "rules": dict(sorted(by_uid.items()))}


# --- live state ---------------------------------------------------------------------------------


@dataclass
class LiveRuleGroup:
    folder_uid: str
    title: str
    rules: list[dict[str, Any]]

    @property
    def provenance(self) -> str:
        for r in self.rules:
            if r.get("provenance"):
                return str(r["provenance"])
        return ""

    @property
    def service(self) -> str:
        for r in self.rules:
            labels = r.get("labels") or {}
            for name in SERVICE_LABELS:
                if labels.get(name):
                    return str(labels[name])
        return ""


def group_rules(rules: Iterable[dict[str, Any]]) -> dict[tuple[str, str], LiveRuleGroup]:
    groups: dict[tuple[str, str], LiveRuleGroup] = {}
    for rule in rules:
        key = (str(rule.get("folderUID", "")), str(rule.get("ruleGroup", "")))
        groups.setdefault(key, LiveRuleGroup(key[0], key[1], [])).rules.append(rule)
    return groups


def _group_key(folder_uid: str, group: str) -> str:
    return f"{folder_uid}/{group}"


def _provisioned_reason(live: dict[str, Any] | None) -> str:
    meta = (live or {}).get("meta") or {}
    if meta.get("provisioned"):
        return "file-provisioned in Grafana; the API cannot change or delete it"
    return ""


# --- planning -----------------------------------------------------------------------------------


def build_plan(
    rendered: Rendered,
    grafana: LiveReader,
    *,
    prune: bool = False,
    deep: bool = False,
    adopt: bool = False,
) -> Plan:
    """Read live state (a constant number of calls for unchanged objects) and diff it.

    Every update and delete is checked against ``ownership``: objects not proven ours are
    refused (``refuse``; with ``adopt`` they are taken over) and never deleted.
    """
    changes: list[Change] = []
    # First and alone: an unreachable or misconfigured Grafana fails here, and says so once.
    live_folders = {str(f["uid"]): f for f in grafana.list_folders()}
    changes += _plan_folders(rendered, live_folders, adopt=adopt)

    # The two big reads (every rule; then, if there are any, the export with group intervals)
    # run on a second thread while this one reads the dashboard list and hashes the rendered
    # dashboards: Grafana's time to answer is hidden behind that work.
    with ThreadPoolExecutor(1, thread_name_prefix="plan-read") as reader:
        rules_read = reader.submit(grafana.list_alert_rules)
        try:
            hits = {str(h["uid"]): h for h in grafana.list_managed_dashboards()}
        except Exception:
            rules_read.result()  # a failure of the earlier read is the one to report
            raise
        models = [
            desired_dashboard(d, ownership.owner_of(rendered, d.service))
            for d in rendered.dashboards
        ]
        live_rules = rules_read.result()
        live_groups = group_rules(live_rules)
        # One export call gives every group's interval (keyed by rule uid).
        intervals = reader.submit(grafana.rule_intervals) if live_groups else None
        dash_changes = _plan_dashboards(
            rendered, grafana, hits, models, prune=prune, deep=deep, adopt=adopt
        )
        by_rule = intervals.result() if intervals is not None else {}
    rule_changes = _plan_rule_groups(
        rendered, grafana, live_groups, live_rules, by_rule, prune=prune, adopt=adopt
    )
    changes += dash_changes + rule_changes

    if prune:
        object_changes = dash_changes + rule_changes
        changes += _plan_folder_prune(rendered, grafana, live_folders, live_groups, object_changes)

    order = {"create": 0, "update": 0, "unchanged": 0, "skip": 1, "refuse": 1, "delete": 2}
    changes.sort(key=lambda c: (order[c.action], _KIND_ORDER[c.kind]))
    return Plan(changes=changes, prune=prune)


def _folder_depths(folders: list[Folder]) -> dict[str, int]:
    parents = {f.uid: f.parent_uid for f in folders}
    depths: dict[str, int] = {}
    for uid in parents:
        depth, cur, seen = 0, parents.get(uid), {uid}
        while cur and cur in parents and cur not in seen:
            seen.add(cur)
            depth += 1
            cur = parents[cur]
        depths[uid] = depth
    return depths


def _plan_folders(
    rendered: Rendered, live: dict[str, dict[str, Any]], *, adopt: bool
) -> list[Change]:
    folders = rendered.folders
    depths = _folder_depths(folders)
    services = _folders_by_service(rendered)
    out: list[Change] = []
    # Parents first, so team folders exist before the service folders inside them.
    for f in sorted(folders, key=lambda f: depths[f.uid]):
        payload = {"uid": f.uid, "title": f.title, "parentUid": f.parent_uid}
        have = live.get(f.uid)
        if have is None:
            after = {"title": f.title, "parentUid": f.parent_uid}
            out.append(
                Change("create", "folder", f.uid, title=f.title, payload=payload, after=after)
            )
            continue
        verdict = ownership.folder_verdict(f.uid, f.parent_uid, have, live)
        notes: tuple[str, ...] = ()
        if not verdict.mine:
            service = services.get(f.uid, f.title)
            owner = ownership.owner_of(rendered, service)
            reason = ownership.refusal("folder", f.uid, verdict, owner)
            if not adopt:
                out.append(Change("refuse", "folder", f.uid, service, f.title, reason=reason))
                continue
            notes = (f"adopts it (--adopt): it belonged to {verdict.detail}",)
        before = {"title": have.get("title"), "parentUid": have.get("folderUid") or None}
        after = {"title": f.title, "parentUid": f.parent_uid}
        if "folderUid" not in have:
            # Servers whose search hits omit a folder's parent: compare titles only.
            before["parentUid"] = after["parentUid"]
        if before == after:
            out.append(Change("unchanged", "folder", f.uid, title=f.title))
        else:
            out.append(
                Change(
                    "update",
                    "folder",
                    f.uid,
                    title=f.title,
                    diff_label=f"folder/{f.uid}",
                    payload=payload,
                    notes=notes,
                    before=before,
                    after=after,
                )
            )
    return out


def _plan_dashboards(
    rendered: Rendered,
    grafana: LiveReader,
    hits: dict[str, dict[str, Any]],
    desired: list[dict[str, Any]],
    *,
    prune: bool,
    deep: bool,
    adopt: bool,
) -> list[Change]:
    """``hits``: search hits of managed dashboards by uid; ``desired``: ``desired_dashboard`` of
    each rendered dashboard, in order."""
    out: list[Change] = []
    declared: set[str] = set()
    models = list(zip(rendered.dashboards, desired, strict=True))

    def fresh(d: Dashboard, model: dict[str, Any], hit: dict[str, Any]) -> bool:
        same_hash = hash_tag(hit.get("tags") or []) == hash_tag(model["tags"])
        return same_hash and (hit.get("folderUid") or "") == d.folder_uid and not deep

    fresh_uids = {d.uid for d, m in models if d.uid in hits and fresh(d, m, hits[d.uid])}
    # The JSON of every dashboard that may have changed, fetched concurrently where possible.
    stale = [d.uid for d, _ in models if d.uid in hits and d.uid not in fresh_uids]
    get_many = getattr(grafana, "get_many", None)
    fetched = get_many(grafana.get_dashboard, stale) if get_many else {}
    for d, model in models:
        declared.add(d.uid)
        owner = ownership.owner_of(rendered, d.service)
        payload: dict[str, Any] = {"dashboard": model, "folderUid": d.folder_uid, "owner": owner}
        payload["adopt"] = adopt
        hit = hits.get(d.uid)
        if hit is None:
            out.append(Change("create", "dashboard", d.uid, d.service, d.title, payload=payload))
            continue
        verdict = ownership.dashboard_verdict(hit, owner)
        notes: tuple[str, ...] = ()
        if verdict.status == "legacy":
            notes = (f"adopts it: {verdict.detail}; the update adds the marker",)
        elif not verdict.mine:
            if not adopt:
                reason = ownership.refusal("dashboard", d.uid, verdict, owner)
                out.append(Change("refuse", "dashboard", d.uid, d.service, d.title, reason=reason))
                continue
            notes = (f"adopts it (--adopt): {verdict.detail or 'not proven ours'}",)
        if d.uid in fresh_uids and verdict.status == "ours":
            out.append(Change("unchanged", "dashboard", d.uid, d.service, d.title))
            continue
        same_hash = hash_tag(hit.get("tags") or []) == hash_tag(model["tags"])
        live = fetched[d.uid] if d.uid in fetched else grafana.get_dashboard(d.uid)
        if live is None:  # deleted between search and get
            out.append(Change("create", "dashboard", d.uid, d.service, d.title, payload=payload))
            continue
        live_model = live.get("dashboard") or {}
        live_folder = (live.get("meta") or {}).get("folderUid") or ""
        before: dict[str, Any] = {
            "folderUid": live_folder,
            "dashboard": normalise_dashboard(live_model),
        }
        after: dict[str, Any] = {"folderUid": d.folder_uid, "dashboard": normalise_dashboard(model)}
        if before == after and same_hash:
            out.append(Change("unchanged", "dashboard", d.uid, d.service, d.title))
            continue
        reason = _provisioned_reason(live)
        if reason:
            out.append(Change("skip", "dashboard", d.uid, d.service, d.title, reason=reason))
            continue
        # Optimistic locking: a UI edit after this read makes the save fail with 412.
        payload["version"] = live_model.get("version")
        if before == after:
            # Same content, stale or missing hash tag: the rewrite only refreshes the tag.
            before["dashboard"]["tags"] = list(live_model.get("tags") or [])
            after["dashboard"]["tags"] = list(model["tags"])
        out.append(
            Change(
                "update",
                "dashboard",
                d.uid,
                d.service,
                d.title,
                f"dashboard/{d.uid}",
                payload=payload,
                notes=notes,
                before=before,
                after=after,
            )
        )

    if prune:
        scope = set(rendered.services)
        for uid, hit in sorted(hits.items()):
            if uid in declared:
                continue
            tags = hit.get("tags") or []
            service = _service_from_tags(tags)
            if MANAGER not in tags or service not in scope:
                continue
            title = str(hit.get("title", ""))
            owner = ownership.owner_of(rendered, service)
            verdict = ownership.dashboard_verdict(hit, owner)
            if not verdict.mine:
                # Tags alone are not proof: never delete what platform-obs cannot prove it made.
                reason = f"kept, not deleted: {verdict.detail}"
                if verdict.status == "other":
                    reason = f"kept, not deleted: it belongs to {verdict.detail}"
                out.append(Change("skip", "dashboard", uid, service, title, reason=reason))
                continue
            live = grafana.get_dashboard(uid)
            if live is None:
                continue
            verdict = ownership.deletable(verdict, live)
            if not verdict.mine:
                reason = f"kept, not deleted: {verdict.detail}"
                out.append(Change("skip", "dashboard", uid, service, title, reason=reason))
                continue
            reason = _provisioned_reason(live)
            if reason:
                out.append(Change("skip", "dashboard", uid, service, title, reason=reason))
                continue
            folder = str(hit.get("folderUid") or "")
            payload = {"folderUid": folder, "owner": owner}
            out.append(Change("delete", "dashboard", uid, service, title, payload=payload))
    return out


def _service_from_tags(tags: Iterable[Any]) -> str:
    for t in tags:
        if isinstance(t, str) and t.startswith(SERVICE_TAG_PREFIX):
            return t[len(SERVICE_TAG_PREFIX) :]
    return ""


def _plan_rule_groups(
    rendered: Rendered,
    grafana: LiveReader,
    live_groups: dict[tuple[str, str], LiveRuleGroup],
    live_rules: list[dict[str, Any]],
    by_rule: dict[str, float] | None,
    *,
    prune: bool,
    adopt: bool,
) -> list[Change]:
    """``by_rule``: rule uid -> its group's interval, from the export; None where Grafana has no
    export endpoint (then each group is read on its own)."""
    rules_by_uid = {str(r.get("uid")): r for r in live_rules}
    out: list[Change] = []
    declared: set[tuple[str, str]] = set()
    bodies: dict[Any, Any] = {}
    get_many = getattr(grafana, "get_many", None)
    if by_rule is None and get_many is not None:
        # No export endpoint: one GET per existing group, concurrently.
        keys = [(g.folder_uid, g.title) for g in rendered.rule_groups]
        bodies = get_many(grafana.get_rule_group, [k for k in keys if k in live_groups])

    def live_interval(key: tuple[str, str], have: LiveRuleGroup) -> float | None:
        if by_rule is not None:
            for r in have.rules:
                if str(r.get("uid")) in by_rule:
                    return by_rule[str(r.get("uid"))]
            return None
        body = bodies[key] if key in bodies else grafana.get_rule_group(*key)
        return duration_seconds(body.get("interval")) if body else None

    for g in rendered.rule_groups:
        key = (g.folder_uid, g.title)
        declared.add(key)
        label = _group_key(*key)
        owner = ownership.owner_of(rendered, g.service)
        have = live_groups.get(key)
        merge = ownership.merge_group(g.rules, have.rules if have else [], owner)
        conflicts = list(merge.conflicts)
        for rule in g.rules:
            # Grafana moves a rule whose uid lives in another group into the group we write.
            elsewhere = rules_by_uid.get(str(rule.get("uid")))
            if (
                elsewhere is not None
                and (elsewhere.get("folderUID"), elsewhere.get("ruleGroup")) != key
            ):
                verdict = ownership.rule_verdict(elsewhere, owner)
                if not verdict.mine:
                    conflicts.append((elsewhere, verdict))
        notes = merge.notes()
        if conflicts:
            rule, verdict = conflicts[0]
            what = f"alert rule {rule.get('uid')} ({rule.get('title')!r})"
            if not adopt:
                reason = ownership.refusal(what, f"in {label}", verdict, owner)
                out.append(Change("refuse", "rule_group", label, g.service, g.title, reason=reason))
                continue
            notes += [f"adopts {len(conflicts)} rule(s) not proven ours (--adopt)"]
        if have is not None and any(
            ownership.rule_verdict(r, owner).status == "legacy" for r in have.rules
        ):
            notes.append(f"adopts rules {ownership.LEGACY.detail}; the update adds the marker")
        body = {**g.api_body(), "rules": merge.rules}
        payload = {"folderUid": g.folder_uid, "group": g.title, "body": body, "owner": owner}
        payload["adopt"] = adopt
        # What apply re-merges with the group as it is right before the write.
        payload["declared"] = merge.desired
        if have is None:
            after = normalise_group(float(g.interval_seconds), g.rules)
            out.append(
                Change(
                    "create", "rule_group", label, g.service, g.title, payload=payload, after=after
                )
            )
            continue
        if have.provenance == "file":
            reason = "file-provisioned in Grafana; the API cannot change it"
            out.append(Change("skip", "rule_group", label, g.service, g.title, reason=reason))
            continue
        after = normalise_group(float(g.interval_seconds), merge.rules)
        before = normalise_group(live_interval(key, have), have.rules)
        if before == after:
            out.append(Change("unchanged", "rule_group", label, g.service, g.title))
            continue
        out.append(
            Change(
                "update",
                "rule_group",
                label,
                g.service,
                g.title,
                f"rule_group/{label}",
                payload=payload,
                notes=tuple(notes),
                before=before,
                after=after,
            )
        )

    if prune:
        scope = set(rendered.services)
        declared_folders = _folders_by_service(rendered)
        for key, have in sorted(live_groups.items()):
            if key in declared:
                continue
            service = have.service or declared_folders.get(key[0], "")
            if service not in scope:
                continue
            owner = ownership.owner_of(rendered, service)
            merge = ownership.merge_group([], have.rules, owner)
            if not merge.removed:
                continue  # nothing in it is proven ours
            label = _group_key(*key)
            if have.provenance == "file":
                reason = "file-provisioned in Grafana; the API cannot delete it"
                out.append(Change("skip", "rule_group", label, service, key[1], reason=reason))
                continue
            payload = {"folderUid": key[0], "group": key[1], "owner": owner}
            if not merge.kept:
                before = normalise_group(None, have.rules)
                out.append(
                    Change(
                        "delete",
                        "rule_group",
                        label,
                        service,
                        key[1],
                        payload=payload,
                        before=before,
                    )
                )
                continue
            # Others' rules stay: the group is rewritten with only them.
            interval = live_interval(key, have) or 60
            payload["body"] = {
                "title": key[1],
                "folderUid": key[0],
                "interval": int(interval),
                "rules": merge.rules,
            }
            payload["declared"] = []
            before = normalise_group(interval, have.rules)
            after = normalise_group(interval, merge.rules)
            out.append(
                Change(
                    "update",
                    "rule_group",
                    label,
                    service,
                    key[1],
                    f"rule_group/{label}",
                    payload=payload,
                    notes=tuple(merge.notes()),
                    before=before,
                    after=after,
                )
            )
    return out


def _folders_by_service(rendered: Rendered) -> dict[str, str]:
    """Folder uid -> service, for folders holding objects of exactly one service."""
    owners: dict[str, set[str]] = {}
    objects: list[Dashboard | RuleGroup] = [*rendered.dashboards, *rendered.rule_groups]
    for obj in objects:
        owners.setdefault(obj.folder_uid, set()).add(obj.service)
    return {uid: next(iter(s)) for uid, s in owners.items() if len(s) == 1}


def _plan_folder_prune(
    rendered: Rendered,
    grafana: LiveReader,
    live_folders: dict[str, dict[str, Any]],
    live_groups: dict[tuple[str, str], LiveRuleGroup],
    changes: list[Change],
) -> list[Change]:
    """Delete a managed folder only when this plan empties it and nothing declares it."""
    declared = {f.uid for f in rendered.folders}
    declared |= {d.folder_uid for d in rendered.dashboards}
    declared |= {g.folder_uid for g in rendered.rule_groups}
    emptied: dict[str, str] = {}
    for c in changes:
        if c.action == "delete":
            emptied.setdefault(str(c.payload.get("folderUid", "")), c.service)
    # Computed once, not per emptied folder: pruning many services stays linear.
    parents = {str(f.get("folderUid") or "") for f in live_folders.values()}
    deleted = {c.key for c in changes if c.action == "delete" and c.kind == "dashboard"}
    deleted_groups = {
        (c.payload.get("folderUid"), c.payload.get("group"))
        for c in changes
        if c.action == "delete" and c.kind == "rule_group"
    }
    folders_with_rules = {k[0] for k in live_groups if k not in deleted_groups}
    out: list[Change] = []
    for uid, service in sorted(emptied.items()):
        if not uid.startswith(FOLDER_UID_PREFIX) or uid in declared or uid not in live_folders:
            continue
        if uid in parents:
            continue  # has subfolders
        remaining = [h for h in grafana.search_folder_contents(uid) if h.get("uid") not in deleted]
        if remaining or uid in folders_with_rules:
            continue
        title = str(live_folders[uid].get("title", ""))
        out.append(Change("delete", "folder", uid, service, title, payload={"uid": uid}))
    return out
