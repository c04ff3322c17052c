"""Execute a :class:`~platform_obs.provisioning.plan.Plan` against Grafana.

Concurrent, in the order Grafana needs: a folder is written after its parent folder, a dashboard
or rule group after its folder; deletes start once every write is done (rule groups and
dashboards, then the folders they emptied). Up to ``parallelism`` changes are in flight; the
Grafana client's shared throttle slows everyone down when Grafana answers 429. Unchanged objects
are never written, so a second apply is a no-op.

Each change goes through :func:`execute_change` (one change, one place to add checks).

Failure policy: an auth failure, an unreachable Grafana or something that is not Grafana stops the
run (every later request would fail the same way; changes already in flight finish, the rest are
"not attempted"); any other failed object is recorded and the run continues, so one bad object
does not block the rest. The result counts failures; the CLI exits non-zero when any failed.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from platform_obs.provisioning import ownership
from platform_obs.provisioning.grafana import (
    DEFAULT_PARALLELISM,
    FATAL_ERRORS,
    Grafana,
    GrafanaError,
    VersionMismatch,
)
from platform_obs.provisioning.plan import Change, Plan

DEFAULT_MAX_DELETES = 10


class TooManyDeletes(Exception):
    """Prune would delete more objects than allowed; nothing was written."""

    def __init__(self, count: int, limit: int) -> None:
        self.count = count
        self.limit = limit
        super().__init__(
            f"prune would delete {count} objects, more than --max-deletes={limit}. Review the "
            "plan; raise --max-deletes or pass --force if this is intended"
        )


class OwnershipRefused(Exception):
    """The plan would overwrite objects not proven ours; nothing was written."""

    def __init__(self, refused: list[Change]) -> None:
        self.refused = refused
        lines = [f"{c.kind} {c.key}: {c.reason}" for c in refused]
        super().__init__(
            f"{len(refused)} object(s) are not owned by this config; nothing was written:\n  "
            + "\n  ".join(lines)
        )


class NotOwned(GrafanaError):
    """Right before a write, the object turned out not to be ours (changed since the plan)."""


@dataclass(frozen=True)
class Outcome:
    change: Change
    #: created | updated | deleted | unchanged | skipped | failed | not-attempted
    status: str
    error: str = ""


@dataclass
class ApplyResult:
    outcomes: list[Outcome] = field(default_factory=list)
    #: Set when a fatal error (auth, unreachable) stopped the run early.
    aborted: str = ""

    def counts(self) -> dict[str, int]:
        names = ("created", "updated", "deleted", "unchanged", "skipped", "failed", "not-attempted")
        return {n: sum(1 for o in self.outcomes if o.status == n) for n in names}

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.aborted

    @property
    def wrote(self) -> bool:
        """Whether anything was written (to tell a partial apply from one that wrote nothing)."""
        return any(o.status in ("created", "updated", "deleted") for o in self.outcomes)


# CI systems' variables for "which commit / which run", first match wins.
_COMMIT_VARS = (
    "GITHUB_SHA",
    "CI_COMMIT_SHA",
    "BUILD_SOURCEVERSION",
    "GIT_COMMIT",
    "BUILDKITE_COMMIT",
)
_RUN_VARS = (
    "GITHUB_RUN_ID",
    "CI_PIPELINE_ID",
    "BUILD_BUILDID",
    "BUILD_NUMBER",
    "BUILDKITE_BUILD_ID",
)


def ci_message(env: Mapping[str, str] | None = None, explicit: str | None = None) -> str:
    """The dashboard version message: ``--message`` if given, else the CI commit and run."""
    if explicit:
        return explicit
    env = os.environ if env is None else env
    parts = ["platform-obs apply"]
    commit = next((env[v] for v in _COMMIT_VARS if env.get(v)), "")
    run = next((env[v] for v in _RUN_VARS if env.get(v)), "")
    if commit:
        parts.append(f"commit {commit[:12]}")
    if run:
        parts.append(f"run {run}")
    url = _run_url(env)
    if url:
        parts.append(url)
    return ", ".join(parts)


def _run_url(env: Mapping[str, str]) -> str:
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return env.get("CI_PIPELINE_URL", "")


def check_deletes(plan: Plan, *, max_deletes: int, force: bool) -> None:
    count = len(plan.deletes)
    if count > max_deletes and not force:
        raise TooManyDeletes(count, max_deletes)


_DELETE_ORDER = {"rule_group": 0, "dashboard": 1, "folder": 2}


def ordered(plan: Plan) -> list[Change]:
    """Writes first in plan order (folders, dashboards, rule groups), deletes last."""
    writes = [c for c in plan.changes if c.action in ("create", "update")]
    deletes = sorted(plan.deletes, key=lambda c: _DELETE_ORDER[c.kind])
    return writes + deletes


def dependencies(todo: Sequence[Change]) -> dict[int, set[int]]:
    """Index -> indexes of the changes that must finish first.

    A folder waits for its parent folder's write, a dashboard or rule group for its folder's
    write; every delete waits for all writes (a replacement may need the old object's name
    until it exists), and a folder delete for the deletes of what it holds.
    """
    folder_writes: dict[str, int] = {}
    writes: list[int] = []
    for i, c in enumerate(todo):
        if c.action in ("create", "update"):
            writes.append(i)
            if c.kind == "folder":
                folder_writes[str(c.payload.get("uid") or c.key)] = i
    content_deletes = [i for i, c in enumerate(todo) if c.action == "delete" and c.kind != "folder"]
    deps: dict[int, set[int]] = {}
    for i, c in enumerate(todo):
        if c.action == "delete":
            deps[i] = set(writes) | (set(content_deletes) if c.kind == "folder" else set())
            continue
        folder = c.payload.get("parentUid") if c.kind == "folder" else c.payload.get("folderUid")
        first = folder_writes.get(str(folder or ""))
        deps[i] = {first} if first is not None and first != i else set()
    return deps


def apply_plan(
    plan: Plan,
    grafana: Grafana,
    *,
    message: str,
    allow_ui_edits: bool = False,
    max_deletes: int = DEFAULT_MAX_DELETES,
    force: bool = False,
    on_step: Callable[[Outcome], None] | None = None,
    parallelism: int = DEFAULT_PARALLELISM,
) -> ApplyResult:
    """Write every create/update/delete in the plan.

    Raises OwnershipRefused or TooManyDeletes before any write. ``on_step`` is called from the
    calling thread, once per finished change.
    """
    if plan.refused:
        raise OwnershipRefused(plan.refused)
    check_deletes(plan, max_deletes=max_deletes, force=force)
    result = ApplyResult()
    for c in plan.changes:
        if c.action == "unchanged":
            result.outcomes.append(Outcome(c, "unchanged"))
        elif c.action == "skip":
            result.outcomes.append(Outcome(c, "skipped", c.reason))

    todo = ordered(plan)
    deps = dependencies(todo)
    waiting_on = {i: set(d) for i, d in deps.items()}
    dependents: dict[int, list[int]] = {i: [] for i in range(len(todo))}
    for i, d in deps.items():
        for j in d:
            dependents[j].append(i)
    ready = deque(i for i in range(len(todo)) if not waiting_on[i])
    done: dict[int, Outcome] = {}

    def run_one(i: int) -> tuple[Outcome, bool]:
        change = todo[i]
        try:
            status = execute_change(change, grafana, message=message, allow_ui_edits=allow_ui_edits)
            return Outcome(change, status), False
        except FATAL_ERRORS as exc:
            return Outcome(change, "failed", str(exc)), True
        except GrafanaError as exc:
            return Outcome(change, "failed", str(exc)), False

    workers = max(1, min(parallelism, len(todo) or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apply") as pool:
        running: dict[Future[tuple[Outcome, bool]], int] = {}
        while ready or running:
            while ready and not result.aborted and len(running) < workers:
                i = ready.popleft()
                running[pool.submit(run_one, i)] = i
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: running[f]):
                i = running.pop(future)
                outcome, fatal = future.result()
                done[i] = outcome
                if fatal and not result.aborted:
                    result.aborted = outcome.error
                if on_step is not None:
                    on_step(outcome)
                # Dependents run even when this failed: their own error then says what is missing.
                for j in dependents[i]:
                    waiting_on[j].discard(i)
                    if not waiting_on[j]:
                        ready.append(j)
    result.outcomes += [done.get(i) or Outcome(c, "not-attempted") for i, c in enumerate(todo)]
    return result


def execute_change(change: Change, grafana: Grafana, *, message: str, allow_ui_edits: bool) -> str:
    """Write one change; returns its outcome status (created, updated, deleted)."""
    p = change.payload
    if change.kind == "folder":
        if change.action == "create":
            grafana.create_folder(p["uid"], p["title"], p.get("parentUid"))
            return "created"
        if change.action == "update":
            live = grafana.get_folder(p["uid"]) or {}
            if live.get("title") != p["title"]:
                grafana.update_folder(p["uid"], p["title"])
            if (live.get("parentUid") or None) != p.get("parentUid"):
                grafana.move_folder(p["uid"], p.get("parentUid"))
            return "updated"
        _recheck_folder_delete(change, grafana)
        grafana.delete_folder(change.key)
        return "deleted"

    if change.kind == "dashboard":
        if change.action == "delete":
            _recheck_dashboard_delete(change, grafana)
            grafana.delete_dashboard(change.key)
            return "deleted"
        return _save_dashboard(change, grafana, message)

    body = _recheck_rule_group(change, grafana)
    if body is None:
        grafana.delete_rule_group(p["folderUid"], p["group"])
        return "deleted"
    grafana.put_rule_group(p["folderUid"], p["group"], body, disable_provenance=allow_ui_edits)
    return "created" if change.action == "create" else "updated"


# The plan checked ownership; these re-check against Grafana as it is right before the write, so
# a rule a person added (or a dashboard they replaced) since the plan is never lost.


def _recheck_dashboard_delete(change: Change, grafana: Grafana) -> None:
    owner = change.payload.get("owner")
    if owner is None:
        return
    live = grafana.get_dashboard(change.key)
    if live is None:
        return
    hit = {
        "uid": change.key,
        "tags": (live.get("dashboard") or {}).get("tags") or [],
        "folderUid": (live.get("meta") or {}).get("folderUid") or "",
    }
    verdict = ownership.deletable(ownership.dashboard_verdict(hit, owner), live)
    if not verdict.mine:
        raise NotOwned(
            f"delete dashboard {change.key}: not deleted, it changed since the plan and is no "
            f"longer proven ours ({verdict.detail or verdict.status}); run plan again"
        )


def _recheck_folder_delete(change: Change, grafana: Grafana) -> None:
    # Deleting a folder deletes everything in it: never while it holds what a person put there.
    left = grafana.search_folder_contents(change.key)
    if left:
        titles = ", ".join(repr(str(h.get("title", h.get("uid")))) for h in left[:3])
        raise NotOwned(
            f"delete folder {change.key}: not deleted, it now holds {len(left)} dashboard(s) or "
            f"folder(s) platform-obs did not delete ({titles}); run plan again"
        )


def _recheck_rule_group(change: Change, grafana: Grafana) -> dict[str, Any] | None:
    """The body to PUT (others' rules merged in as they are now), or None to delete the group."""
    p = change.payload
    owner = p.get("owner")
    if owner is None or change.action == "create":
        return None if change.action == "delete" else p["body"]
    live = grafana.get_rule_group(p["folderUid"], p["group"]) or {}
    merge = ownership.merge_group(p.get("declared") or [], live.get("rules") or [], owner)
    if merge.conflicts and not p.get("adopt"):
        rule, verdict = merge.conflicts[0]
        raise NotOwned(
            f"save rule group {change.key}: rule {rule.get('uid')} changed since the plan and "
            f"is no longer proven ours ({verdict.detail or verdict.status}); run plan again"
        )
    if not merge.rules:
        return None  # nothing left in the group: delete it rather than PUT an empty one
    body = dict(p.get("body") or {"title": p["group"], "folderUid": p["folderUid"]})
    body.setdefault("interval", live.get("interval") or 60)
    body["rules"] = merge.rules
    return body


def _save_dashboard(change: Change, grafana: Grafana, message: str) -> str:
    p = change.payload
    model: dict[str, Any] = dict(p["dashboard"])  # only the top-level version is set here
    if change.action == "update" and p.get("version") is not None:
        # Optimistic locking against the version the plan diffed: a UI edit since then -> 412.
        model["version"] = p["version"]
    try:
        grafana.save_dashboard(model, p["folderUid"], message, overwrite=False)
    except VersionMismatch as exc:
        if change.action != "create":
            raise
        live = grafana.get_dashboard(change.key) if p.get("adopt") else None
        if live is None:
            raise VersionMismatch(
                f"save dashboard {change.key}: a dashboard with this uid or title already exists "
                "in Grafana but is not managed by platform-obs (it lacks the 'platform-obs' tag). "
                "Delete or rename it, or pass --adopt to take over one with this uid",
                path=exc.path,
            ) from None
        # --adopt: take over the dashboard at our uid, still locked to the version just read.
        model["version"] = (live.get("dashboard") or {}).get("version")
        grafana.save_dashboard(model, p["folderUid"], message, overwrite=False)
    return "created" if change.action == "create" else "updated"
