"""Which Grafana objects this tool may change: proof of ownership, uids that cannot collide.

The rule: platform-obs changes only what it can prove it created, and never deletes what a person
added. Tags such as ``platform-obs`` and ``service:<name>`` are *not* proof: teams copy them onto
their own dashboards (the Backstage selector asks them to), and Grafana's "Save as" and
"Duplicate" copy them too.

Proof is an **ownership marker bound to the object's uid and to its owner** (team + service):

* dashboards carry the tag ``po-owner:<digest>``;
* alert rules carry the annotation ``platform_obs_owner: <team>/<service>#<digest>``;

where ``digest`` is a hash of (kind, uid, team, service). A copy gets a new uid, so a copied marker
does not verify; a marker made for another team's service names that owner. The marker is not a
secret: it guards against accidents and copies, not against someone deliberately forging it (they
could delete the object anyway).

Folders cannot carry markers; their proof is the uid namespace: Grafana never generates uids with
a hyphen, so ``po-...`` uids are ours. Folder uids are derived injectively (see
:func:`team_folder_uid`, :func:`service_folder_uid`).

Objects written by earlier releases (before the marker) are recognised as *legacy*: the old
``platform-obs`` + ``service:<name>`` tags (dashboards: plus the ``po-hash:`` tag) or the
``managed_by`` + ``service`` labels (rules), **and** a uid derived from the service's name, **and**
a ``po-`` folder. A hand-made object has none of the last two by accident. Legacy objects this
config declares (same uid) are adopted: the next apply rewrites them with the marker. Deleting
needs more: a legacy dashboard is deleted only while its ``po-hash:`` tag still matches its
content (untouched since platform-obs wrote it); legacy rules that are no longer declared are
kept, with a note in the plan.

Every object is classified as ``ours``, ``legacy``, ``other`` (proven for another owner) or
``foreign`` (not proven). Updates need ``ours``/``legacy`` (or ``--adopt``); deletes need
``ours`` (or a verified legacy dashboard) always; foreign rules inside a group we write are kept
unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson

from platform_obs.provisioning.model import (
    FOLDER_UID_PREFIX,
    MANAGED_BY_LABEL,
    MANAGER,
    SERVICE_TAG_PREFIX,
    UID_MAX_LEN,
    Problem,
    Rendered,
    stable_uid,
)

if TYPE_CHECKING:
    from platform_obs.provisioning.spec import ServiceSpec

OWNER_TAG_PREFIX: Final = "po-owner:"
OWNER_ANNOTATION: Final = "platform_obs_owner"
HASH_TAG_PREFIX: Final = "po-hash:"
TEAM_FOLDER_PREFIX: Final = f"{FOLDER_UID_PREFIX}team-"
#: Service names that would otherwise produce a team folder's uid (or each other's).
_RESERVED_SERVICE_PREFIXES: Final = ("team-", "svc-")
_MARKER_VERSION: Final = "platform-obs owner v1"
_UID_CHARS = re.compile(r"^[a-zA-Z0-9_-]+$")
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")

Status = Literal["ours", "legacy", "other", "foreign"]


# --- uids ---------------------------------------------------------------------------------------


def _distinct(name: str) -> str:
    """``name`` itself when every character may appear in a uid, else readable form + hash.

    ``pay.ments`` and ``pay-ments`` would both read ``pay-ments``; the hash keeps them apart while
    names without such characters keep the uid earlier releases gave them.
    """
    if _UID_CHARS.match(name):
        return name
    readable = _UNSAFE.sub("-", name).strip("-")
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def team_folder_uid(team: str) -> str:
    return stable_uid("po", "team", _distinct(team))


def service_folder_uid(service: str) -> str:
    """``po-<service>``, or ``po-svc-<service>`` for names that would look like a team folder."""
    if service.startswith(_RESERVED_SERVICE_PREFIXES):
        return stable_uid("po", "svc", _distinct(service))
    return stable_uid("po", _distinct(service))


def _in_service_namespace(uid: str, service: str) -> bool:
    """Whether ``uid`` has the shape of a dashboard or rule uid derived from ``service``.

    ``model.stable_uid(service, ...)`` gives ``<service>-...``, or for long names the first 29
    characters and a hash; Grafana's own generated uids (14 letters and digits) never match.
    """
    readable = _UNSAFE.sub("-", service).strip("-").lower()
    if uid.startswith(readable + "-"):
        return True
    # Long names: stable_uid keeps the first 29 characters and appends a hash (40 in all).
    keep = UID_MAX_LEN - 11
    truncated = readable[:keep].rstrip("-")
    return len(readable) >= keep and len(uid) == UID_MAX_LEN and uid.startswith(truncated)


# --- markers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    team: str
    service: str

    def __str__(self) -> str:
        if self.team:
            return f"service {self.service!r} of team {self.team!r}"
        return f"service {self.service!r}"


def owner_of(rendered: Rendered, service: str) -> Owner:
    return Owner(rendered.teams.get(service, ""), service)


@functools.lru_cache(maxsize=65536)  # each uid's marker is both stamped and checked in a plan
def _digest(kind: str, uid: str, owner: Owner) -> str:
    key = "\x00".join((_MARKER_VERSION, kind, uid, owner.team, owner.service))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def dashboard_marker(uid: str, owner: Owner) -> str:
    return f"{OWNER_TAG_PREFIX}{_digest('dashboard', uid, owner)}"


def rule_marker(uid: str, owner: Owner) -> str:
    return f"{owner.team}/{owner.service}#{_digest('rule', uid, owner)}"


def stamp_rule(rule: Mapping[str, Any], owner: Owner) -> dict[str, Any]:
    """A copy of a rendered rule carrying its ownership annotation."""
    out = dict(rule)
    out["annotations"] = {
        **(rule.get("annotations") or {}),
        OWNER_ANNOTATION: rule_marker(str(rule.get("uid", "")), owner),
    }
    return out


def stamp_dashboard_tags(tags: Sequence[Any], uid: str, owner: Owner) -> list[Any]:
    """Tags with exactly one ownership marker: the one for this uid and owner."""
    kept = [t for t in tags if not (isinstance(t, str) and t.startswith(OWNER_TAG_PREFIX))]
    return [*kept, dashboard_marker(uid, owner)]


# --- verdicts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    status: Status
    #: For ``other``: who owns it. For ``foreign``: why it is not ours.
    detail: str = ""

    @property
    def mine(self) -> bool:
        return self.status in ("ours", "legacy")


OURS = Verdict("ours")
LEGACY = Verdict("legacy", "created by an earlier platform-obs release (no ownership marker)")


def dashboard_verdict(hit: Mapping[str, Any], owner: Owner) -> Verdict:
    """Classify a live dashboard from its search hit or model (uid, tags, folderUid)."""
    uid = str(hit.get("uid", ""))
    raw_tags = hit.get("tags")
    tags = [t for t in raw_tags if isinstance(t, str)] if isinstance(raw_tags, list) else []
    folder = str(hit.get("folderUid") or "")
    markers = [t for t in tags if t.startswith(OWNER_TAG_PREFIX)]
    if dashboard_marker(uid, owner) in markers:
        return OURS
    if markers:
        # Whose marker is it? Candidates come from the tags it carries (service:<s>, team tag).
        services = [t[len(SERVICE_TAG_PREFIX) :] for t in tags if t.startswith(SERVICE_TAG_PREFIX)]
        teams = ["", *(t for t in tags if ":" not in t)]
        for service in services:
            for team in teams:
                candidate = Owner(team, service)
                if dashboard_marker(uid, candidate) in markers:
                    return Verdict("other", str(candidate))
        return Verdict(
            "foreign",
            "its platform-obs ownership tag does not match its uid (a copy of another dashboard?)",
        )
    legacy = (
        MANAGER in tags
        and f"{SERVICE_TAG_PREFIX}{owner.service}" in tags
        and any(t.startswith(HASH_TAG_PREFIX) for t in tags)
        and folder.startswith(FOLDER_UID_PREFIX)
        and _in_service_namespace(uid, owner.service)
    )
    if legacy:
        # Earlier releases tagged every dashboard with its team: another team's is not ours.
        if owner.team and owner.team not in tags:
            return Verdict("other", f"service {owner.service!r} of another team")
        return LEGACY
    if MANAGER in tags:
        return Verdict(
            "foreign",
            "it has the platform-obs tags but no ownership marker; tags alone are not proof",
        )
    return Verdict("foreign", "it was not created by platform-obs")


def content_hash(model: Mapping[str, Any], folder_uid: str) -> str:
    """The ``po-hash:`` tag value: a hash of the dashboard as sent (server fields and the hash tag
    left out) and its folder. Earlier releases computed it the same way."""
    body = {k: v for k, v in model.items() if k not in ("id", "version")}
    body["tags"] = [
        t
        for t in model.get("tags") or []
        if not (isinstance(t, str) and t.startswith(HASH_TAG_PREFIX))
    ]
    canonical = json_bytes({"dashboard": body, "folderUid": folder_uid})
    return hashlib.sha256(canonical).hexdigest()[:12]


#: orjson's bytes differ from :mod:`json`'s only for floats below 1e-4: ``0.00001`` and ``1e-6``
#: where json writes ``1e-05`` and ``1e-06``. With every digit read as 0, those show as ``0.0000``
#: or ``0e-`` (a match inside a string only costs the slow path); ``bytes.find`` is fast.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")


#: A line of orjson's indented output holding a float in one of its own spellings.
_SMALL_FLOAT_LINE = re.compile(
    rb'( *(?:"(?:[^"\\]|\\.)*": )?)(-?(?:0\.0000[0-9]*|[0-9](?:\.[0-9]+)?e-[0-9]+))(,?)'
)


def _respell_small_floats(text: bytes, marked: bytes) -> bytes:
    """orjson's indented ``text`` with floats below 1e-4 spelled as :mod:`json` spells them.

    Each line holds one scalar, so a line that is only a number (after its indent and key) is
    a number, never part of a string. Only lines with a candidate are looked at (``marked`` is
    ``text`` with every digit read as 0).
    """
    starts: set[int] = set()
    for needle, haystack in ((b"0.0000", text), (b"0e-", marked)):
        pos = haystack.find(needle)
        while pos >= 0:
            starts.add(text.rfind(b"\n", 0, pos) + 1)
            pos = haystack.find(needle, pos + 1)
    parts: list[bytes] = []
    done = 0
    for start in sorted(starts):
        end = text.find(b"\n", start)
        end = len(text) if end < 0 else end
        line = _SMALL_FLOAT_LINE.fullmatch(text, start, end)
        if line is not None:
            parts += [text[done:start], line[1], repr(float(line[2])).encode(), line[3]]
            done = end
    parts.append(text[done:])
    return b"".join(parts)


def json_bytes(data: Any, *, indent: bool = False) -> bytes:
    """``json.dumps(data, sort_keys=True, ensure_ascii=False)`` in UTF-8, compact
    (``separators=(",", ":")``) or with ``indent=2``: the form earlier releases hashed and showed.

    orjson writes the same bytes ten times faster, except for the floats above and what it
    refuses (integers beyond 64 bits, keys that are not strings, lone surrogates); those take
    :mod:`json`. NaN and Infinity differ (``null`` here), but JSON has neither, so no dashboard
    stored in Grafana was hashed with them.
    """
    option = orjson.OPT_SORT_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        fast = orjson.dumps(data, option=option)
    except TypeError:
        fast = None
    if fast is not None:
        marked = fast.translate(_DIGITS_AS_ZERO)
        if b"0.0000" not in fast and b"0e-" not in marked:
            return fast
        if indent:
            return _respell_small_floats(fast, marked)
    if indent:
        return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False).encode()
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def deletable(verdict: Verdict, live: Mapping[str, Any] | None) -> Verdict:
    """Whether a dashboard may be deleted: ours, or legacy and untouched since it was written.

    ``live`` is ``GET /api/dashboards/uid/...`` (``{"dashboard", "meta"}``).
    """
    if verdict.status == "ours" or not verdict.mine:
        return verdict
    model = (live or {}).get("dashboard") or {}
    folder = str(((live or {}).get("meta") or {}).get("folderUid") or "")
    tag = f"{HASH_TAG_PREFIX}{content_hash(model, folder)}"
    if tag in (model.get("tags") or []):
        return verdict
    return Verdict(
        "foreign",
        "created by an earlier platform-obs release and changed since (its po-hash tag no longer "
        "matches), so not proven ours; delete it in Grafana if it is not needed",
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _parse_rule_marker(value: str) -> Owner | None:
    owner_part, _, _digest_part = value.rpartition("#")
    team, slash, service = owner_part.partition("/")
    return Owner(team, service) if slash and service else None


def rule_verdict(rule: Mapping[str, Any], owner: Owner) -> Verdict:
    """Classify a live alert rule (provisioning-API shape)."""
    uid = str(rule.get("uid", ""))
    annotations = _mapping(rule.get("annotations"))
    labels = _mapping(rule.get("labels"))
    marker = annotations.get(OWNER_ANNOTATION)
    if isinstance(marker, str) and marker:
        if marker == rule_marker(uid, owner):
            return OURS
        claimed = _parse_rule_marker(marker)
        if claimed is not None and marker == rule_marker(uid, claimed):
            return Verdict("other", str(claimed))
        return Verdict(
            "foreign",
            "its platform-obs ownership annotation does not match its uid (a duplicated rule?)",
        )
    legacy = (
        labels.get(MANAGED_BY_LABEL) == MANAGER
        and labels.get("service") == owner.service
        and str(rule.get("folderUID", "")).startswith(FOLDER_UID_PREFIX)
        and _in_service_namespace(uid, owner.service)
    )
    if legacy:
        team = str(labels.get("team") or "")
        if owner.team and team and team != owner.team:
            return Verdict("other", str(Owner(team, owner.service)))
        return LEGACY
    return Verdict("foreign", "it was not created by platform-obs")


def folder_verdict(
    uid: str, declared_parent: str | None, live: Mapping[str, Any], folders: Mapping[str, Any]
) -> Verdict:
    """A folder with our uid is ours unless it sits in another team's folder."""
    live_parent = str(live.get("folderUid") or live.get("parentUid") or "")
    if (
        declared_parent
        and live_parent
        and live_parent != declared_parent
        and live_parent.startswith(TEAM_FOLDER_PREFIX)
    ):
        team = str((folders.get(live_parent) or {}).get("title") or live_parent)
        return Verdict("other", f"a service of team {team!r} (it is inside that team's folder)")
    return OURS


def refusal(kind: str, key: str, verdict: Verdict, owner: Owner) -> str:
    """The message for an update platform-obs refuses: what, why, how to resolve."""
    if verdict.status == "other":
        why = f"it belongs to {verdict.detail}, not to {owner}"
        fix = (
            "Rename this service if it is a different one; if ownership really moved, "
            "pass --adopt to take it over"
        )
    else:
        why = f"platform-obs cannot prove it created it: {verdict.detail}"
        fix = "Delete or rename it in Grafana, or pass --adopt to take it over"
    return f"{kind} {key} would be overwritten, but {why}. {fix}"


# --- rule groups --------------------------------------------------------------------------------

#: Fields Grafana fills in; left out when a kept rule is sent back.
_SERVER_RULE_FIELDS = ("id", "updated", "provenance")


@dataclass
class GroupMerge:
    """The body to PUT for one of our rule groups, with what it keeps and removes."""

    rules: list[dict[str, Any]]
    #: Our rendered rules, stamped with the ownership marker (the first part of ``rules``).
    desired: list[dict[str, Any]]
    #: Live rules that are not ours, sent back unchanged, with why they are not ours.
    kept: list[tuple[dict[str, Any], Verdict]]
    #: Our live rules that are no longer declared.
    removed: list[dict[str, Any]]
    #: Live rules with a uid we would overwrite that are not proven ours.
    conflicts: list[tuple[dict[str, Any], Verdict]]

    def notes(self) -> list[str]:
        out = []
        foreign = [r for r, v in self.kept if v.status == "foreign"]
        if foreign:
            out.append(f"keeps {_count(foreign)} not managed by platform-obs: {_titles(foreign)}")
        legacy = [r for r, v in self.kept if v.status == "legacy"]
        if legacy:
            out.append(
                f"keeps {_count(legacy)} that an earlier platform-obs release created but this "
                f"config no longer declares (no ownership marker, so not deleted; delete by hand "
                f"if not needed): {_titles(legacy)}"
            )
        others: dict[str, list[dict[str, Any]]] = {}
        for r, v in self.kept:
            if v.status == "other":
                others.setdefault(v.detail, []).append(r)
        for who, rules in others.items():
            out.append(f"keeps {_count(rules)} of {who}: {_titles(rules)}")
        for r in self.removed:
            out.append(f"removes rule {_titles([r])} (no longer declared)")
        return out


def _count(rules: Sequence[Any]) -> str:
    return f"{len(rules)} rule" + ("" if len(rules) == 1 else "s")


def _titles(rules: Iterable[Mapping[str, Any]]) -> str:
    return ", ".join(repr(str(r.get("title") or r.get("uid"))) for r in rules)


def merge_group(
    desired: Iterable[Mapping[str, Any]], live: Iterable[Mapping[str, Any]], owner: Owner
) -> GroupMerge:
    """Our rendered rules (stamped) plus every live rule that is not ours, unchanged."""
    desired_rules = [stamp_rule(r, owner) for r in desired]
    wanted = {str(r.get("uid")) for r in desired_rules}
    kept: list[tuple[dict[str, Any], Verdict]] = []
    removed: list[dict[str, Any]] = []
    conflicts: list[tuple[dict[str, Any], Verdict]] = []
    for rule in live:
        verdict = rule_verdict(rule, owner)
        if str(rule.get("uid")) in wanted:
            if not verdict.mine:
                conflicts.append((dict(rule), verdict))
        elif verdict.status == "ours":
            removed.append(dict(rule))
        else:
            kept.append(({k: v for k, v in rule.items() if k not in _SERVER_RULE_FIELDS}, verdict))
    return GroupMerge(desired_rules + [r for r, _ in kept], desired_rules, kept, removed, conflicts)


# --- validate-time collisions -------------------------------------------------------------------


def collisions(specs: Sequence[ServiceSpec], rendered: Rendered) -> list[Problem]:
    """Two configs that would own the same folder, dashboard, rule group or rule uid.

    Each problem names both config files and lines.
    """
    seen: dict[tuple[str, str], tuple[str, ServiceSpec, str]] = {}
    by_name = {s.name: s for s in specs}
    #: (spec, other spec) -> the objects both would own, in order found.
    clashes: dict[tuple[str, str], list[tuple[str, str, str, str]]] = {}
    pairs: dict[tuple[str, str], tuple[ServiceSpec, ServiceSpec]] = {}

    def claim(kind: str, key: str, owner_id: str, spec: ServiceSpec | None, what: str) -> None:
        if spec is None:
            return
        first = seen.get((kind, key))
        if first is None:
            seen[(kind, key)] = (owner_id, spec, what)
            return
        if first[0] == owner_id:
            return
        _, other, other_what = first
        pair = (spec.file + "\x00" + spec.name, other.file + "\x00" + other.name)
        pairs[pair] = (spec, other)
        clashes.setdefault(pair, []).append((kind, key, what, other_what))

    for spec in specs:
        team_uid = team_folder_uid(spec.team)
        claim("folder", team_uid, f"team:{spec.team}", spec, f"team {spec.team!r}")
        service_uid = service_folder_uid(spec.name)
        claim("folder", service_uid, f"service:{spec.name}", spec, f"service {spec.name!r}")
    for d in rendered.dashboards:
        what = f"service {d.service!r}"
        claim("dashboard", d.uid, d.service, by_name.get(d.service), what)
    for g in rendered.rule_groups:
        group_spec, what = by_name.get(g.service), f"service {g.service!r}"
        claim("rule group", f"{g.folder_uid}/{g.title}", g.service, group_spec, what)
        for rule in g.rules:
            claim("alert rule uid", str(rule.get("uid")), g.service, group_spec, what)
    problems: list[Problem] = []
    for pair, found in clashes.items():
        spec, other = pairs[pair]
        kind, key, what, other_what = found[0]
        line = other.line("service")
        where = other.file + (f":{line}" if line else "")
        more = f" (and {len(found) - 1} more objects)" if len(found) > 1 else ""
        problems.append(
            spec.problem(
                "service",
                f"{kind} {key!r} of {what} is also the {kind} of {other_what} (declared in "
                f"{where}){more}; two configs would own the same Grafana objects",
                spec.name,
                "a service name that gives this service its own objects",
            )
        )
    return problems
