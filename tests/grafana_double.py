"""A Grafana HTTP API double for tests.

A real HTTP server on 127.0.0.1 that enforces the parts of Grafana's HTTP API the provisioner
uses (folders, dashboards, search, alerting provisioning), so the real ``grafana-client`` can be
driven against it over real HTTP. Behaviour follows Grafana's documented API and its source:
status codes, error bodies and the validation that makes real pushes fail.

Standard library only. State is plain dicts, readable and seedable by tests; a single lock
guards it because the server handles each connection in its own thread.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

__all__ = ["GrafanaDouble", "Injection", "RecordedRequest"]

UID_RE = re.compile(r"^[a-zA-Z0-9_-]*$")
RULE_UID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
MAX_UID_LEN = 40
MAX_RULE_TITLE_LEN = 190
BASE_INTERVAL_SECONDS = 10
DEFAULT_RULE_GROUP_INTERVAL = 60
SEARCH_DEFAULT_LIMIT = 1000
SEARCH_MAX_LIMIT = 5000
NO_DATA_STATES = frozenset({"NoData", "Alerting", "OK", "KeepLast"})
EXEC_ERR_STATES = frozenset({"Error", "Alerting", "OK", "KeepLast"})
# Folder uids Grafana reserves for virtual folders.
RESERVED_FOLDER_UIDS = frozenset({"general", "sharedwithme"})

_DURATION_RE = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_DURATION_UNITS_MS = (
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
)


def parse_duration_ms(value: str) -> int:
    """Parse a Prometheus-style duration ("5m", "1h30m", "0") the way Grafana's model does."""
    if value == "0":
        return 0
    match = _DURATION_RE.match(value)
    if not value or not match:
        raise ValueError(f'not a valid duration string: "{value}"')
    total = 0
    for (_, unit_ms), part in zip(_DURATION_UNITS_MS, match.groups(), strict=True):
        if part:
            total += int(part) * unit_ms
    return total


def format_duration_ms(total: int) -> str:
    """Format like Prometheus ``model.Duration.String``: Grafana returns "5m" for "300s"."""
    if total == 0:
        return "0s"
    out = []
    for unit, unit_ms in _DURATION_UNITS_MS:
        count, total = divmod(total, unit_ms)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def slugify(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return slug or "-"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_uid() -> str:
    # Grafana generates 14-character alphanumeric uids.
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(14))


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    #: ``time.monotonic()`` when the request arrived.
    started: float = 0.0


@dataclass
class Injection:
    status: int | None
    remaining: int
    delay: float
    drop: bool
    method: str | None
    path_prefix: str | None
    retry_after: str | None
    #: Raw answer body (with ``content_type``) instead of Grafana's JSON error body.
    body: bytes | None = None
    content_type: str = "application/json"
    #: Perform the request, then close the connection without answering (the answer is lost).
    lose_answer: bool = False
    #: Perform the request, then wait this long before answering (past a client's timeout).
    answer_delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        if self.remaining <= 0:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


class ApiError(Exception):
    """An HTTP error response with Grafana's JSON body."""

    def __init__(self, code: int, message: str, /, **extra: Any) -> None:
        super().__init__(message)
        self.status = code
        self.body: dict[str, Any] = {"message": message, **extra}


class _Dropped(Exception):
    """The connection is closed without any response."""


@dataclass
class _Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Sent as is (with ``content_type``) instead of ``body`` as JSON.
    raw: bytes | None = None
    content_type: str = "application/json"


#: What a reverse proxy or an SSO gateway in front of Grafana answers instead of the API.
LOGIN_PAGE = (
    b'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    b'<title>Sign in - Example SSO</title>\n</head>\n<body>\n<form method="post">\n'
    b'<input name="username"><input name="password" type="password">\n</form>\n'
    b"</body>\n</html>\n"
)
NOT_FOUND_PAGE = (
    b"<html>\n<head><title>404 Not Found</title></head>\n<body>\n"
    b"<center><h1>404 Not Found</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n"
)


class GrafanaDouble:
    """In-process Grafana HTTP API double. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        token: str = "test-token",
        *,
        grafana_version: str = "11.6.0",
        viewer_token: str | None = None,
        contact_points: Sequence[str] = ("grafana-default-email",),
        latency: float = 0.0,
        mount: str = "",
    ) -> None:
        self.token = token
        self.viewer_token = viewer_token
        self.grafana_version = grafana_version
        #: Seconds every request waits before it is handled: a round trip to a remote Grafana.
        self.latency = latency
        #: Serve under a sub-path ("/grafana") like Grafana behind a reverse proxy with
        #: ``root_url``/``serve_from_sub_path``; anything outside it gets the proxy's 404 page.
        self.mount = "/" + mount.strip("/") if mount.strip("/") else ""
        #: "normal"; "repeat": search ignores ``page`` and always answers page 1 (a proxy that
        #: drops the query, an old server); "endless": every page is full of new hits.
        self.search_paging = "normal"
        self.url = ""
        self.base_url = ""
        self.requests: list[RecordedRequest] = []
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.rule_groups: dict[tuple[str, str], dict[str, Any]] = {}
        # Grafana starts with one email contact point; rules may only route to existing ones.
        self.contact_points: list[dict[str, Any]] = [
            {"uid": f"cp-{i}", "name": name, "type": "email", "settings": {"addresses": "x@y"}}
            for i, name in enumerate(contact_points)
        ]
        self._dashboard_history: dict[str, list[dict[str, Any]]] = {}
        self._injections: list[Injection] = []
        self._next_id = 1
        self._next_rule_id = 1
        self._filled: dict[str, set[Any]] = {
            "folders": set(),
            "dashboards": set(),
            "rule_groups": set(),
        }
        self._lock = threading.RLock()
        #: Requests being handled right now, and the most seen at once.
        self.in_flight = 0
        self.max_in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> GrafanaDouble:
        if self._server is not None:
            return self
        double = self

        class Handler(_Handler):
            owner = double

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        # The default prints tracebacks for client disconnects (timeouts, drops) to stderr.
        server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._server = server
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        self.url = self.base_url + self.mount
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> GrafanaDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ inspection and seeding

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def writes(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method != "GET" and 200 <= r.status < 300]

    def inject(
        self,
        *,
        status: int | None = None,
        times: int = 1,
        delay: float = 0.0,
        drop: bool = False,
        method: str | None = None,
        path_prefix: str | None = None,
        retry_after: str | None = None,
        body: bytes | str | None = None,
        content_type: str = "application/json",
        lose_answer: bool = False,
        answer_delay: float = 0.0,
    ) -> None:
        """Make the next ``times`` matching requests fail, stall or lose their connection.

        ``status`` answers with that code (and ``body``/``content_type`` instead of Grafana's
        JSON error, e.g. an HTML login page or JSON of the wrong shape); ``delay`` sleeps first
        (then handles normally unless ``status``/``drop`` is also set); ``drop`` closes the
        connection without a response. ``lose_answer`` performs the request and then closes the
        connection; ``answer_delay`` performs it and answers only after that many seconds: the
        write lands but the client never sees the answer.
        """
        if status is None and not (drop or lose_answer) and delay <= 0 and answer_delay <= 0:
            raise ValueError("inject() needs status, drop, lose_answer or a delay")
        raw = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._injections.append(
                Injection(
                    status,
                    times,
                    delay,
                    drop,
                    method,
                    path_prefix,
                    retry_after,
                    raw,
                    content_type,
                    lose_answer,
                    answer_delay,
                )
            )

    def clear_injections(self) -> None:
        with self._lock:
            self._injections.clear()

    def dashboard_versions(self, uid: str) -> int:
        """How many versions of the dashboard were saved (0 if it never existed)."""
        with self._lock:
            return len(self._dashboard_history.get(uid, []))

    def add_folder(self, uid: str, title: str, parent_uid: str | None = None) -> dict[str, Any]:
        """Seed a folder directly (no HTTP, no validation beyond existence of the parent)."""
        with self._lock:
            if parent_uid and parent_uid not in self.folders:
                raise KeyError(parent_uid)
            return self._create_folder(uid, title, parent_uid)

    def seed_file_provisioned_dashboard(self, model: dict[str, Any], folder_uid: str) -> None:
        """Store a dashboard as if it came from file provisioning: the API may not touch it."""
        with self._lock:
            if folder_uid and folder_uid not in self.folders:
                raise KeyError(folder_uid)
            dash = copy.deepcopy(model)
            uid = dash.get("uid") or _new_uid()
            self._store_dashboard(dash, uid, folder_uid or "", "", provenance="file")

    def seed_file_provisioned_rule_group(self, folder_uid: str, group: dict[str, Any]) -> None:
        """Store a rule group as if it came from file provisioning (provenance "file")."""
        with self._lock:
            if folder_uid not in self.folders:
                raise KeyError(folder_uid)
            title = group.get("title") or group["name"]
            interval = int(group.get("interval", DEFAULT_RULE_GROUP_INTERVAL))
            for r in group.get("rules", []):
                self._validate_rule(r, title)
            rules = [
                self._normalise_rule(copy.deepcopy(r), folder_uid, title, "file", existing=None)
                for r in group.get("rules", [])
            ]
            self.rule_groups[(folder_uid, title)] = {
                "title": title,
                "folderUid": folder_uid,
                "interval": interval,
                "rules": rules,
            }

    def all_rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for g in self.rule_groups.values() for r in g["rules"]]

    # ------------------------------------------------------------------ request entry

    def _take_injection(self, method: str, path: str) -> Injection | None:
        with self._lock:
            for inj in self._injections:
                if inj.matches(method, path):
                    inj.remaining -= 1
                    return inj
        return None

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        raw: bytes,
    ) -> _Response:
        if self.latency > 0:
            time.sleep(self.latency)
        if self.mount:
            if path != self.mount and not path.startswith(self.mount + "/"):
                return _Response(404, raw=NOT_FOUND_PAGE, content_type="text/html")
            path = path[len(self.mount) :] or "/"
        injection = self._take_injection(method, path)
        if injection is not None:
            if injection.delay > 0:
                time.sleep(injection.delay)
            if injection.drop:
                raise _Dropped
            if injection.status is not None:
                extra = {"Retry-After": injection.retry_after} if injection.retry_after else {}
                if injection.body is not None:
                    return _Response(
                        injection.status,
                        headers=extra,
                        raw=injection.body,
                        content_type=injection.content_type,
                    )
                return _Response(
                    injection.status, {"message": f"injected status {injection.status}"}, extra
                )
        try:
            response = self._dispatch(method, path, query, headers, raw)
        except ApiError as err:
            response = _Response(err.status, err.body)
        if injection is not None and injection.lose_answer:
            raise _Dropped
        if injection is not None and injection.answer_delay > 0:
            time.sleep(injection.answer_delay)
        return response

    def _dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        raw: bytes,
    ) -> _Response:
        # Grafana serves these without authentication (the login page needs them).
        if path == "/api/health" and method == "GET":
            return _Response(
                200, {"commit": "0000000", "database": "ok", "version": self.grafana_version}
            )
        if path == "/api/frontend/settings" and method == "GET":
            return _Response(200, self._frontend_settings())

        role = self._authenticate(headers)
        if method != "GET" and role == "Viewer":
            raise ApiError(
                403,
                "Access denied: you'll need additional permissions to perform this action",
                title="Access denied",
            )

        body: Any = None
        if method in ("POST", "PUT", "PATCH"):
            body = self._parse_json(raw)

        route = self._route(method, path)
        if route is None:
            raise ApiError(404, "Not found")
        handler, args = route
        with self._lock:
            self._fill_seeded_defaults()
            response = handler(*args, query=query, headers=headers, body=body, role=role)
            # Serialised while the state is locked: the answer is a snapshot, so read handlers
            # need not deep-copy what they return (a copy of every rule cost seconds at 1,000).
            # orjson writes floats as Go's encoding/json does (1e-6 and 0.00001, not 1e-06 and
            # 1e-05), and a fleet's rule list in a fraction of the time.
            if response.raw is None and response.status != 204 and response.body is not None:
                response.raw = orjson.dumps(response.body, option=orjson.OPT_NON_STR_KEYS)
            return response

    def _fill_seeded_defaults(self) -> None:
        """Complete entries that tests put straight into the state dicts.

        Only keys not seen before are looked at (a set difference, so a request costs no walk
        over all of the state); tests seed by adding keys, the API stores complete entries.
        """
        now = _now()
        seen = self._filled
        for uid in self.folders.keys() - seen["folders"]:
            folder = self.folders[uid]
            folder.setdefault("uid", uid)
            folder.setdefault("title", uid)
            folder.setdefault("parentUid", None)
            folder.setdefault("version", 1)
            folder.setdefault("orgId", 1)
            folder.setdefault("created", now)
            folder.setdefault("updated", now)
            if "id" not in folder:
                folder["id"] = self._alloc_id()
        for uid in self.dashboards.keys() - seen["dashboards"]:
            entry = self.dashboards[uid]
            dash = entry.setdefault("dashboard", {})
            dash.setdefault("uid", uid)
            if "id" not in dash:
                dash["id"] = self._alloc_id()
            entry.setdefault("version", dash.get("version") or 1)
            dash["version"] = entry["version"]
            entry.setdefault("folderUid", "")
            entry["folderUid"] = entry["folderUid"] or ""
            entry.setdefault("message", "")
            entry.setdefault("provenance", "")
            entry.setdefault("created", now)
            entry.setdefault("updated", now)
        for key in self.rule_groups.keys() - seen["rule_groups"]:
            folder_uid, name = key
            group = self.rule_groups[key]
            group.setdefault("title", name)
            group.setdefault("folderUid", folder_uid)
            group.setdefault("interval", DEFAULT_RULE_GROUP_INTERVAL)
            for rule in group.setdefault("rules", []):
                if "uid" not in rule:
                    rule["uid"] = _new_uid()
                if "id" not in rule:
                    rule["id"] = self._next_rule_pk()
                rule.setdefault("orgID", 1)
                rule.setdefault("folderUID", folder_uid)
                rule.setdefault("ruleGroup", name)
                rule.setdefault("provenance", "")
                rule.setdefault("updated", now)
        seen["folders"] = set(self.folders)
        seen["dashboards"] = set(self.dashboards)
        seen["rule_groups"] = set(self.rule_groups)

    def _authenticate(self, headers: dict[str, str]) -> str:
        auth = headers.get("authorization", "")
        scheme, _, credential = auth.partition(" ")
        if scheme.lower() == "bearer" and credential:
            if secrets.compare_digest(credential, self.token):
                return "Admin"
            if self.viewer_token and secrets.compare_digest(credential, self.viewer_token):
                return "Viewer"
        raise ApiError(401, "Unauthorized")

    @staticmethod
    def _parse_json(raw: bytes) -> Any:
        if not raw:
            raise ApiError(400, "bad request data")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"bad request data: {exc}") from exc

    def _route(self, method: str, path: str) -> tuple[Any, tuple[str, ...]] | None:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        n = len(parts)
        if parts[0] != "api":
            return None
        p = parts[1:]
        if p == ["user"] and method == "GET":
            return self._get_user, ()
        if p == ["org"] and method == "GET":
            return self._get_org, ()
        if p == ["search"] and method == "GET":
            return self._search, ()
        # Folders
        if p == ["folders"]:
            return {"GET": (self._list_folders, ()), "POST": (self._post_folder, ())}.get(method)
        if len(p) == 2 and p[0] == "folders":
            return {
                "GET": (self._get_folder, (p[1],)),
                "PUT": (self._put_folder, (p[1],)),
                "DELETE": (self._delete_folder, (p[1],)),
            }.get(method)
        # Dashboards
        if p == ["dashboards", "db"] and method == "POST":
            return self._post_dashboard, ()
        if len(p) == 3 and p[:2] == ["dashboards", "uid"]:
            return {
                "GET": (self._get_dashboard, (p[2],)),
                "DELETE": (self._delete_dashboard, (p[2],)),
            }.get(method)
        # Alerting provisioning
        if n >= 4 and p[:2] == ["v1", "provisioning"]:
            q = p[2:]
            if q == ["alert-rules"]:
                return {"GET": (self._list_rules, ()), "POST": (self._post_rule, ())}.get(method)
            if q == ["alert-rules", "export"] and method == "GET":
                return self._export_all, ()
            if q == ["contact-points"]:
                return {
                    "GET": (self._list_contact_points, ()),
                    "POST": (self._post_contact_point, ()),
                }.get(method)
            if len(q) == 2 and q[0] == "alert-rules":
                return {
                    "GET": (self._get_rule, (q[1],)),
                    "PUT": (self._put_rule, (q[1],)),
                    "DELETE": (self._delete_rule, (q[1],)),
                }.get(method)
            if len(q) == 4 and q[0] == "folder" and q[2] == "rule-groups":
                return {
                    "GET": (self._get_group, (q[1], q[3])),
                    "PUT": (self._put_group, (q[1], q[3])),
                    "DELETE": (self._delete_group, (q[1], q[3])),
                }.get(method)
            if len(q) == 5 and q[0] == "folder" and q[2] == "rule-groups" and q[4] == "export":
                return ({"GET": (self._export_group, (q[1], q[3]))}).get(method)
        return None

    # ------------------------------------------------------------------ misc endpoints

    def _frontend_settings(self) -> dict[str, Any]:
        return {
            "appUrl": self.url + "/",
            "appSubUrl": "",
            "buildInfo": {
                "version": self.grafana_version,
                "commit": "0000000",
                "edition": "Open Source",
                "env": "production",
                "hideVersion": False,
                "hasUpdate": False,
                "latestVersion": "",
            },
            "featureToggles": {"nestedFolders": True},
            "unifiedAlertingEnabled": True,
        }

    def _get_user(self, **kw: Any) -> _Response:
        role = kw["role"]
        login = "admin" if role == "Admin" else "viewer"
        return _Response(
            200,
            {
                "id": 1 if role == "Admin" else 2,
                "login": login,
                "orgId": 1,
                "isGrafanaAdmin": False,
            },
        )

    def _get_org(self, **kw: Any) -> _Response:
        return _Response(200, {"id": 1, "name": "Main Org."})

    def _alloc_id(self) -> int:
        # Folders and dashboards share one id sequence, as they share a table in Grafana.
        value = self._next_id
        self._next_id += 1
        return value

    # ------------------------------------------------------------------ folders

    @staticmethod
    def _check_uid(uid: str) -> None:
        if not UID_RE.match(uid):
            raise ApiError(400, "uid contains illegal characters")
        if len(uid) > MAX_UID_LEN:
            raise ApiError(400, "uid too long, max 40 characters")

    def _create_folder(self, uid: str, title: str, parent_uid: str | None) -> dict[str, Any]:
        now = _now()
        folder = {
            "id": self._alloc_id(),
            "uid": uid,
            "orgId": 1,
            "title": title,
            "parentUid": parent_uid or None,
            "version": 1,
            "created": now,
            "updated": now,
        }
        self.folders[uid] = folder
        return folder

    def _folder_json(self, folder: dict[str, Any]) -> dict[str, Any]:
        out = {
            "id": folder["id"],
            "uid": folder["uid"],
            "orgId": 1,
            "title": folder["title"],
            "url": f"/dashboards/f/{folder['uid']}/{slugify(folder['title'])}",
            "hasAcl": False,
            "canSave": True,
            "canEdit": True,
            "canAdmin": True,
            "canDelete": True,
            "createdBy": "admin",
            "created": folder["created"],
            "updatedBy": "admin",
            "updated": folder["updated"],
            "version": folder["version"],
        }
        if folder.get("parentUid"):
            out["parentUid"] = folder["parentUid"]
            out["parents"] = [
                {"uid": p["uid"], "title": p["title"]} for p in self._folder_parents(folder)
            ]
        return out

    def _folder_parents(self, folder: dict[str, Any]) -> list[dict[str, Any]]:
        parents: list[dict[str, Any]] = []
        parent_uid = folder.get("parentUid")
        while parent_uid and parent_uid in self.folders:
            parent = self.folders[parent_uid]
            parents.insert(0, parent)
            parent_uid = parent.get("parentUid")
        return parents

    def _require_folder(self, uid: str) -> dict[str, Any]:
        folder = self.folders.get(uid)
        if folder is None:
            raise ApiError(404, "folder not found", messageId="folder.notFound", statusCode=404)
        return folder

    def _post_folder(self, **kw: Any) -> _Response:
        body = kw["body"]
        if not isinstance(body, dict):
            raise ApiError(400, "bad request data")
        uid = body.get("uid") or ""
        title = (body.get("title") or "").strip()
        parent_uid = body.get("parentUid") or None
        if not title:
            raise ApiError(400, "folder title cannot be empty")
        if uid:
            self._check_uid(uid)
            if uid.lower() in RESERVED_FOLDER_UIDS:
                raise ApiError(400, "invalid uid for folder provided")
        else:
            uid = _new_uid()
        if uid in self.folders or uid in self.dashboards:
            raise ApiError(409, "a folder with the same uid already exists")
        if parent_uid and parent_uid not in self.folders:
            raise ApiError(404, "parent folder not found", messageId="folder.notFound")
        folder = self._create_folder(uid, title, parent_uid)
        return _Response(200, self._folder_json(folder))

    def _get_folder(self, uid: str, **kw: Any) -> _Response:
        return _Response(200, self._folder_json(self._require_folder(uid)))

    def _list_folders(self, **kw: Any) -> _Response:
        query = kw["query"]
        parent_uid = query.get("parentUid", [""])[0] or None
        limit = _int_param(query, "limit", 1000)
        page = max(_int_param(query, "page", 1), 1)
        items = [f for f in self.folders.values() if (f.get("parentUid") or None) == parent_uid]
        items.sort(key=lambda f: f["title"].lower())
        window = items[(page - 1) * limit : page * limit] if limit > 0 else items
        out = []
        for f in window:
            entry = {"id": f["id"], "uid": f["uid"], "title": f["title"]}
            if f.get("parentUid"):
                entry["parentUid"] = f["parentUid"]
            out.append(entry)
        return _Response(200, out)

    def _put_folder(self, uid: str, **kw: Any) -> _Response:
        body = kw["body"]
        if not isinstance(body, dict):
            raise ApiError(400, "bad request data")
        folder = self._require_folder(uid)
        overwrite = bool(body.get("overwrite"))
        version = body.get("version")
        if not overwrite and version != folder["version"]:
            raise ApiError(
                412, "the folder has been changed by someone else", status="version-mismatch"
            )
        title = body.get("title")
        if title is not None:
            if not str(title).strip():
                raise ApiError(400, "folder title cannot be empty")
            folder["title"] = str(title).strip()
        folder["version"] += 1
        folder["updated"] = _now()
        return _Response(200, self._folder_json(folder))

    def _subtree(self, uid: str) -> list[str]:
        out = [uid]
        for child in [f["uid"] for f in self.folders.values() if f.get("parentUid") == uid]:
            out.extend(self._subtree(child))
        return out

    def _delete_folder(self, uid: str, **kw: Any) -> _Response:
        folder = self._require_folder(uid)
        force = kw["query"].get("forceDeleteRules", ["false"])[0].lower() == "true"
        subtree = set(self._subtree(uid))
        rule_keys = [k for k in self.rule_groups if k[0] in subtree]
        if rule_keys and not force:
            raise ApiError(400, "folder cannot be deleted: folder contains alert rules")
        for key in rule_keys:
            del self.rule_groups[key]
        for dash_uid in [u for u, d in self.dashboards.items() if d["folderUid"] in subtree]:
            del self.dashboards[dash_uid]
        for folder_uid in subtree:
            del self.folders[folder_uid]
        return _Response(
            200,
            {
                "title": folder["title"],
                "message": f"Folder {folder['title']} deleted",
                "id": folder["id"],
            },
        )

    # ------------------------------------------------------------------ dashboards

    def _dashboard_url(self, uid: str, title: str) -> str:
        return f"/d/{uid}/{slugify(title)}"

    def _store_dashboard(
        self,
        dash: dict[str, Any],
        uid: str,
        folder_uid: str,
        message: str,
        *,
        provenance: str = "",
    ) -> dict[str, Any]:
        existing = self.dashboards.get(uid)
        now = _now()
        version = existing["version"] + 1 if existing else 1
        dash_id = existing["dashboard"]["id"] if existing else self._alloc_id()
        dash["id"] = dash_id
        dash["uid"] = uid
        dash["version"] = version
        entry = {
            "dashboard": dash,
            "folderUid": folder_uid,
            "version": version,
            "message": message,
            "provenance": provenance if not existing else existing["provenance"] or provenance,
            "created": existing["created"] if existing else now,
            "updated": now,
        }
        self.dashboards[uid] = entry
        self._dashboard_history.setdefault(uid, []).append(
            {"version": version, "message": message, "created": now, "data": _json_copy(dash)}
        )
        return entry

    def _post_dashboard(self, **kw: Any) -> _Response:
        body = kw["body"]
        if not isinstance(body, dict):
            raise ApiError(400, "bad request data")
        dash = body.get("dashboard")
        if not isinstance(dash, dict):
            raise ApiError(400, "Dashboard title cannot be empty", status="empty-name")
        dash = _json_copy(dash)
        overwrite = bool(body.get("overwrite"))
        message = body.get("message") or ""
        title = dash.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ApiError(400, "Dashboard title cannot be empty", status="empty-name")
        uid = dash.get("uid") or ""
        if not isinstance(uid, str):
            raise ApiError(400, "uid contains illegal characters")
        if uid:
            self._check_uid(uid)

        folder_uid = body.get("folderUid") or ""
        if not folder_uid and body.get("folderId"):
            # Deprecated numeric folder reference, still accepted by Grafana.
            match = [f for f in self.folders.values() if f["id"] == body["folderId"]]
            if not match:
                raise ApiError(400, "folder not found", status="not-found")
            folder_uid = match[0]["uid"]
        if folder_uid and folder_uid not in self.folders:
            raise ApiError(400, "folder not found", status="not-found")

        # Find the existing dashboard by id and/or uid, as Grafana's save validation does.
        dash_id = dash.get("id") or 0
        existing_by_id = None
        if dash_id:
            existing_by_id = next(
                (d for d in self.dashboards.values() if d["dashboard"]["id"] == dash_id), None
            )
            if existing_by_id is None:
                raise ApiError(404, "Dashboard not found", status="not-found")
            if not uid:
                uid = existing_by_id["dashboard"]["uid"]
        existing_by_uid = self.dashboards.get(uid) if uid else None
        if existing_by_id is not None and existing_by_uid not in (None, existing_by_id):
            raise ApiError(400, "A dashboard with the same uid already exists")
        existing = existing_by_id or existing_by_uid
        if uid in self.folders:
            raise ApiError(400, "A dashboard with the same uid already exists")

        if existing is not None:
            if existing["provenance"] == "file":
                raise ApiError(400, "Cannot save provisioned dashboard")
            # Grafana compares versions exactly: a save without the current version is stale too.
            if dash.get("version") != existing["version"] and not overwrite:
                raise ApiError(
                    412,
                    "The dashboard has been changed by someone else",
                    status="version-mismatch",
                )

        # Same title (compared by slug) in the same folder under another uid.
        slug = slugify(title)
        same_name = next(
            (
                d
                for d in self.dashboards.values()
                if d["folderUid"] == folder_uid
                and d is not existing
                and slugify(d["dashboard"].get("title", "")) == slug
                and d is not existing
            ),
            None,
        )
        if same_name is not None:
            if not overwrite:
                raise ApiError(
                    412,
                    "A dashboard with the same name in the folder already exists",
                    status="name-exists",
                )
            if same_name["provenance"] == "file":
                raise ApiError(400, "Cannot save provisioned dashboard")
            # With overwrite Grafana takes over the other dashboard: its id and uid win, and
            # the dashboard the request addressed (if any) is left as it was.
            existing = same_name
            uid = same_name["dashboard"]["uid"]

        if not uid:
            uid = _new_uid()
        entry = self._store_dashboard(dash, uid, folder_uid, message)
        return _Response(
            200,
            {
                "id": entry["dashboard"]["id"],
                "uid": uid,
                "url": self._dashboard_url(uid, title),
                "status": "success",
                "version": entry["version"],
                "slug": slug,
                "folderUid": folder_uid,
            },
        )

    def _get_dashboard(self, uid: str, **kw: Any) -> _Response:
        entry = self.dashboards.get(uid)
        if entry is None:
            raise ApiError(404, "Dashboard not found", status="not-found")
        folder = self.folders.get(entry["folderUid"]) if entry["folderUid"] else None
        title = entry["dashboard"].get("title", "")
        meta = {
            "type": "db",
            "canSave": kw["role"] == "Admin",
            "canEdit": kw["role"] == "Admin",
            "canAdmin": kw["role"] == "Admin",
            "canStar": True,
            "canDelete": kw["role"] == "Admin",
            "slug": slugify(title),
            "url": self._dashboard_url(uid, title),
            "expires": "0001-01-01T00:00:00Z",
            "created": entry["created"],
            "updated": entry["updated"],
            "updatedBy": "admin",
            "createdBy": "admin",
            "version": entry["version"],
            "hasAcl": False,
            "isFolder": False,
            "folderId": folder["id"] if folder else 0,
            "folderUid": entry["folderUid"],
            "folderTitle": folder["title"] if folder else "General",
            "folderUrl": (
                f"/dashboards/f/{folder['uid']}/{slugify(folder['title'])}" if folder else ""
            ),
            "provisioned": entry["provenance"] == "file",
            "provisionedExternalId": (f"{uid}.json" if entry["provenance"] == "file" else ""),
        }
        return _Response(200, {"dashboard": entry["dashboard"], "meta": meta})

    def _delete_dashboard(self, uid: str, **kw: Any) -> _Response:
        entry = self.dashboards.get(uid)
        if entry is None:
            raise ApiError(404, "Dashboard not found", status="not-found")
        if entry["provenance"] == "file":
            raise ApiError(400, "provisioned dashboard cannot be deleted")
        del self.dashboards[uid]
        title = entry["dashboard"].get("title", "")
        return _Response(
            200,
            {
                "title": title,
                "message": f"Dashboard {title} deleted",
                "id": entry["dashboard"]["id"],
            },
        )

    # ------------------------------------------------------------------ search

    def _search(self, **kw: Any) -> _Response:
        query = kw["query"]
        limit = _int_param(query, "limit", SEARCH_DEFAULT_LIMIT)
        if limit > SEARCH_MAX_LIMIT:
            raise ApiError(422, "Limit is above maximum allowed (5000), use page")
        if limit <= 0:
            limit = SEARCH_DEFAULT_LIMIT
        page = max(_int_param(query, "page", 1), 1)
        kind = query.get("type", [""])[0]
        text = query.get("query", [""])[0].lower()
        tags = query.get("tag", [])
        uids = set(query.get("dashboardUIDs", []))
        folder_uids = set(query.get("folderUIDs", []))
        # Grafana calls the root folder "general" in search filters.
        folder_filter = {"" if f == "general" else f for f in folder_uids}

        hits: list[dict[str, Any]] = []
        if kind in ("", "dash-folder") and not tags:
            for f in self.folders.values():
                if text and text not in f["title"].lower():
                    continue
                if uids and f["uid"] not in uids:
                    continue
                if folder_filter and (f.get("parentUid") or "") not in folder_filter:
                    continue
                hits.append(
                    {
                        "id": f["id"],
                        "uid": f["uid"],
                        "orgId": 1,
                        "title": f["title"],
                        "uri": f"db/{slugify(f['title'])}",
                        "url": f"/dashboards/f/{f['uid']}/{slugify(f['title'])}",
                        "slug": "",
                        "type": "dash-folder",
                        "tags": [],
                        "isStarred": False,
                        "sortMeta": 0,
                    }
                )
        if kind in ("", "dash-db"):
            for uid, entry in self.dashboards.items():
                dash = entry["dashboard"]
                title = dash.get("title", "")
                dash_tags = dash.get("tags") or []
                if text and text not in title.lower():
                    continue
                if any(t not in dash_tags for t in tags):
                    continue
                if uids and uid not in uids:
                    continue
                if folder_filter and entry["folderUid"] not in folder_filter:
                    continue
                hit = {
                    "id": dash["id"],
                    "uid": uid,
                    "orgId": 1,
                    "title": title,
                    "uri": f"db/{slugify(title)}",
                    "url": self._dashboard_url(uid, title),
                    "slug": "",
                    "type": "dash-db",
                    "tags": list(dash_tags),
                    "isStarred": False,
                    "sortMeta": 0,
                }
                folder = self.folders.get(entry["folderUid"])
                if folder is not None:
                    hit["folderId"] = folder["id"]
                    hit["folderUid"] = folder["uid"]
                    hit["folderTitle"] = folder["title"]
                    hit["folderUrl"] = f"/dashboards/f/{folder['uid']}/{slugify(folder['title'])}"
                hits.append(hit)
        hits.sort(key=lambda h: (h["type"] != "dash-folder", h["title"].lower()))
        if self.search_paging == "repeat":
            page = 1
        if self.search_paging == "endless":
            return _Response(200, [_endless_hit(page, i) for i in range(limit)])
        return _Response(200, hits[(page - 1) * limit : page * limit])

    # ------------------------------------------------------------------ alert rules

    def _find_rule(self, uid: str) -> tuple[tuple[str, str], dict[str, Any]] | None:
        for key, group in self.rule_groups.items():
            for rule in group["rules"]:
                if rule["uid"] == uid:
                    return key, rule
        return None

    def _next_rule_pk(self) -> int:
        value = self._next_rule_id
        self._next_rule_id += 1
        return value

    def _validate_rule(self, rule: Any, group_name: str) -> None:
        if not isinstance(rule, dict):
            raise _invalid("rule must be an object")
        uid = rule.get("uid") or ""
        if uid:
            if not isinstance(uid, str) or not RULE_UID_RE.match(uid):
                raise _invalid(
                    f"cannot create rule with UID '{uid}': UID contains invalid characters"
                )
            if len(uid) > MAX_UID_LEN:
                raise _invalid(
                    f"cannot create rule with UID '{uid}': UID is longer than 40 symbols"
                )
        title = rule.get("title")
        if not isinstance(title, str) or not title.strip():
            raise _invalid("title is empty")
        if len(title) > MAX_RULE_TITLE_LEN:
            raise _invalid("title is too long: max 190 characters")
        if not group_name or len(group_name) > MAX_RULE_TITLE_LEN:
            raise _invalid("rule group name must be 1-190 characters")
        data = rule.get("data")
        if not isinstance(data, list) or not data:
            raise _invalid("no queries or expressions are found")
        ref_ids = set()
        for item in data:
            if not isinstance(item, dict):
                raise _invalid("invalid query")
            ref_id = item.get("refId")
            if not ref_id:
                raise _invalid("refID is not specified for data query/expression")
            if ref_id in ref_ids:
                raise _invalid(f"refID '{ref_id}' is already used by query/expression")
            ref_ids.add(ref_id)
            if not item.get("datasourceUid"):
                raise _invalid(f"query '{ref_id}': datasourceUid is not specified")
            if not isinstance(item.get("model"), dict):
                raise _invalid(f"query '{ref_id}': model is not specified")
            rtr = item.get("relativeTimeRange")
            if item["datasourceUid"] != "__expr__":
                if not isinstance(rtr, dict) or not isinstance(rtr.get("from"), (int, float)):
                    raise _invalid(f"query '{ref_id}': relativeTimeRange is not specified")
                if rtr.get("from", 0) < rtr.get("to", 0):
                    raise _invalid(f"query '{ref_id}': invalid relative time range")
        condition = rule.get("condition")
        if not condition:
            raise _invalid("condition is required")
        if condition not in ref_ids:
            raise _invalid(
                f"condition {condition} does not exist, must be one of "
                f"[{', '.join(sorted(ref_ids))}]"
            )
        if rule.get("noDataState") not in NO_DATA_STATES:
            raise _invalid(f"noDataState: unknown value '{rule.get('noDataState')}'")
        if rule.get("execErrState") not in EXEC_ERR_STATES:
            raise _invalid(f"execErrState: unknown value '{rule.get('execErrState')}'")
        for key in ("for", "keep_firing_for"):
            value = rule.get(key)
            if value is None:
                continue
            try:
                parse_duration_ms(value) if isinstance(value, str) else _bad_duration(value)
            except ValueError as exc:
                raise _invalid(f"{key}: {exc}") from exc
        for key in ("labels", "annotations"):
            value = rule.get(key)
            if value is not None and not (
                isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
            ):
                raise _invalid(f"{key} must be a map of strings")
        annotations = rule.get("annotations") or {}
        has_dash = bool(annotations.get("__dashboardUid__"))
        has_panel = bool(annotations.get("__panelId__"))
        if has_dash != has_panel:
            raise _invalid("both annotations __dashboardUid__ and __panelId__ must be specified")
        if has_panel:
            try:
                int(annotations["__panelId__"])
            except ValueError as exc:
                raise _invalid("__panelId__ annotation must be an integer") from exc

    def _normalise_rule(
        self,
        rule: dict[str, Any],
        folder_uid: str,
        group_name: str,
        provenance: str,
        *,
        existing: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Produce the rule as Grafana stores and returns it (provisioning API shape)."""
        out = {
            "id": existing["id"] if existing else self._next_rule_pk(),
            "uid": rule.get("uid") or (existing["uid"] if existing else _new_uid()),
            "orgID": 1,
            "folderUID": folder_uid,
            "ruleGroup": group_name,
            "title": rule["title"],
            "condition": rule["condition"],
            "data": _json_copy(rule["data"]),
            "updated": _now(),
            "noDataState": rule["noDataState"],
            "execErrState": rule["execErrState"],
            "for": format_duration_ms(parse_duration_ms(rule.get("for") or "0")),
            "annotations": dict(rule.get("annotations") or {}),
            "labels": dict(rule.get("labels") or {}),
            "provenance": provenance,
            "isPaused": bool(rule.get("isPaused", False)),
        }
        if rule.get("keep_firing_for"):
            out["keep_firing_for"] = format_duration_ms(parse_duration_ms(rule["keep_firing_for"]))
        if rule.get("notification_settings") is not None:
            out["notification_settings"] = copy.deepcopy(rule["notification_settings"])
        if rule.get("record") is not None:
            out["record"] = copy.deepcopy(rule["record"])
        return out

    def _check_title_unique(
        self, folder_uid: str, titles: dict[str, str], ignore: set[str]
    ) -> None:
        """Titles are unique per folder (title -> uid of the submitted rule)."""
        for group in [g for (f, _), g in self.rule_groups.items() if f == folder_uid]:
            for rule in group["rules"]:
                if rule["uid"] in ignore:
                    continue
                if rule["title"] in titles and titles[rule["title"]] != rule["uid"]:
                    raise ApiError(
                        400,
                        "failed to update rule group: a conflicting alert rule is found: "
                        "rule title under the same organisation and folder should be unique",
                    )

    @staticmethod
    def _provenance_of(headers: dict[str, str]) -> str:
        # Grafana only checks that the header is present, whatever its value.
        return "" if "x-disable-provenance" in headers else "api"

    def _put_group(self, folder_uid: str, group_name: str, **kw: Any) -> _Response:
        body = kw["body"]
        if not isinstance(body, dict):
            raise ApiError(400, "bad request data")
        provenance = self._provenance_of(kw["headers"])
        if folder_uid not in self.folders:
            raise _invalid(f"folder does not exist: {folder_uid}")
        if not group_name or len(group_name) > MAX_RULE_TITLE_LEN:
            raise _invalid("rule group name must be 1-190 characters")
        interval = body.get("interval")
        if (
            not isinstance(interval, int)
            or isinstance(interval, bool)
            or interval <= 0
            or interval % BASE_INTERVAL_SECONDS
        ):
            raise _invalid(
                f"rule evaluation interval ({interval} second) should be positive number "
                f"that is multiple of the base interval of {BASE_INTERVAL_SECONDS} seconds"
            )
        rules = body.get("rules") or []
        if not isinstance(rules, list):
            raise ApiError(400, "bad request data")
        for rule in rules:
            self._validate_rule(rule, group_name)

        key = (folder_uid, group_name)
        current = self.rule_groups.get(key, {"rules": []})
        current_by_uid = {r["uid"]: r for r in current["rules"]}
        submitted_uids = [r.get("uid") for r in rules if r.get("uid")]
        if len(submitted_uids) != len(set(submitted_uids)):
            raise _invalid("rule UIDs must be unique within the group")

        # Rules whose uid lives in another group are moved here, as Grafana does.
        moved: dict[str, tuple[tuple[str, str], dict[str, Any]]] = {}
        foreign = [uid for uid in submitted_uids if uid not in current_by_uid]
        if foreign:
            # One pass over every rule, not one per submitted uid; no map of every rule built.
            wanted = set(foreign)
            for k, g in self.rule_groups.items():
                for r in g["rules"]:
                    if r["uid"] in wanted:
                        moved[r["uid"]] = (k, r)

        def existing_for(rule: dict[str, Any]) -> dict[str, Any] | None:
            uid = rule.get("uid")
            if not uid:
                return None
            if uid in current_by_uid:
                return current_by_uid[uid]
            return moved[uid][1] if uid in moved else None

        # Provenance: updates need the same (or a stored empty) provenance; deletes may also
        # drop "api" back to "".
        for rule in rules:
            stored = existing_for(rule)
            if stored and stored["provenance"] not in ("", provenance):
                raise _provenance_mismatch(provenance, stored["provenance"])
        kept = set(submitted_uids)
        for uid, stored in current_by_uid.items():
            if uid in kept:
                continue
            if not _can_replace_provenance(stored["provenance"], provenance):
                raise _provenance_mismatch(provenance, stored["provenance"])

        normalised = [
            self._normalise_rule(r, folder_uid, group_name, provenance, existing=existing_for(r))
            for r in rules
        ]
        titles = {r["title"]: r["uid"] for r in normalised}
        if len(titles) != len(normalised):
            raise ApiError(
                400,
                "failed to update rule group: a conflicting alert rule is found: "
                "rule title under the same organisation and folder should be unique",
            )
        self._check_title_unique(folder_uid, titles, ignore=set(current_by_uid) | set(moved))

        for uid, (other_key, _) in moved.items():
            group = self.rule_groups[other_key]
            group["rules"] = [r for r in group["rules"] if r["uid"] != uid]
            if not group["rules"]:
                del self.rule_groups[other_key]
        if normalised:
            self.rule_groups[key] = {
                "title": group_name,
                "folderUid": folder_uid,
                "interval": interval,
                "rules": normalised,
            }
        else:
            self.rule_groups.pop(key, None)
        response = _json_copy(body)
        response["title"] = group_name
        response["folderUid"] = folder_uid
        return _Response(200, response)

    def _get_group(self, folder_uid: str, group_name: str, **kw: Any) -> _Response:
        group = self.rule_groups.get((folder_uid, group_name))
        if group is None:
            raise _group_not_found()
        return _Response(200, group)

    def _delete_group(self, folder_uid: str, group_name: str, **kw: Any) -> _Response:
        key = (folder_uid, group_name)
        group = self.rule_groups.get(key)
        if group is None:
            raise _group_not_found()
        provenance = self._provenance_of(kw["headers"])
        for rule in group["rules"]:
            if not _can_replace_provenance(rule["provenance"], provenance):
                raise _provenance_mismatch(provenance, rule["provenance"])
        del self.rule_groups[key]
        return _Response(204)

    def _list_contact_points(self, **kw: Any) -> _Response:
        name = kw["query"].get("name", [None])[0]
        points = [c for c in self.contact_points if name is None or c["name"] == name]
        return _Response(200, copy.deepcopy(points))

    def _post_contact_point(self, **kw: Any) -> _Response:
        body = kw["body"]
        if not isinstance(body, dict) or not body.get("name") or not body.get("type"):
            raise ApiError(400, "contact point needs a name and a type")
        point = {"uid": body.get("uid") or f"cp-{len(self.contact_points)}", **body}
        self.contact_points.append(point)
        return _Response(202, copy.deepcopy(point))

    def _list_rules(self, **kw: Any) -> _Response:
        return _Response(200, self.all_rules())

    def _get_rule(self, uid: str, **kw: Any) -> _Response:
        found = self._find_rule(uid)
        if found is None:
            return _Response(404)
        return _Response(200, found[1])

    def _post_rule(self, **kw: Any) -> _Response:
        rule = kw["body"]
        if not isinstance(rule, dict):
            raise ApiError(400, "bad request data")
        provenance = self._provenance_of(kw["headers"])
        group_name = rule.get("ruleGroup") or ""
        folder_uid = rule.get("folderUID") or ""
        self._validate_rule(rule, group_name)
        if folder_uid not in self.folders:
            raise _invalid(f"folder does not exist: {folder_uid!r}")
        if rule.get("uid") and self._find_rule(rule["uid"]) is not None:
            raise ApiError(
                400,
                "failed to insert alert rules: a conflicting alert rule is found: "
                "rule UID under the same organisation should be unique",
            )
        new = self._normalise_rule(rule, folder_uid, group_name, provenance, existing=None)
        self._check_title_unique(folder_uid, {new["title"]: new["uid"]}, ignore=set())
        key = (folder_uid, group_name)
        group = self.rule_groups.setdefault(
            key,
            {
                "title": group_name,
                "folderUid": folder_uid,
                "interval": DEFAULT_RULE_GROUP_INTERVAL,
                "rules": [],
            },
        )
        group["rules"].append(new)
        return _Response(201, copy.deepcopy(new))

    def _put_rule(self, uid: str, **kw: Any) -> _Response:
        rule = kw["body"]
        if not isinstance(rule, dict):
            raise ApiError(400, "bad request data")
        provenance = self._provenance_of(kw["headers"])
        found = self._find_rule(uid)
        if found is None:
            return _Response(404)
        key, stored = found
        if stored["provenance"] not in ("", provenance):
            raise _provenance_mismatch(provenance, stored["provenance"], change=True)
        group_name = rule.get("ruleGroup") or key[1]
        folder_uid = rule.get("folderUID") or key[0]
        self._validate_rule({**rule, "uid": uid}, group_name)
        if (folder_uid, group_name) != key:
            # The single-rule endpoint cannot move rules between groups.
            raise _invalid("cannot change rule group or folder through this endpoint")
        new = self._normalise_rule(
            {**rule, "uid": uid}, folder_uid, group_name, provenance, existing=stored
        )
        self._check_title_unique(folder_uid, {new["title"]: uid}, ignore={uid})
        group = self.rule_groups[key]
        group["rules"] = [new if r["uid"] == uid else r for r in group["rules"]]
        return _Response(200, copy.deepcopy(new))

    def _delete_rule(self, uid: str, **kw: Any) -> _Response:
        provenance = self._provenance_of(kw["headers"])
        found = self._find_rule(uid)
        # Grafana's delete is idempotent: an unknown uid still answers 204.
        if found is not None:
            key, stored = found
            if stored["provenance"] not in ("", provenance):
                raise _provenance_mismatch(provenance, stored["provenance"])
            group = self.rule_groups[key]
            group["rules"] = [r for r in group["rules"] if r["uid"] != uid]
            if not group["rules"]:
                del self.rule_groups[key]
        return _Response(204)

    def _export_group(self, folder_uid: str, group_name: str, **kw: Any) -> _Response:
        group = self.rule_groups.get((folder_uid, group_name))
        if group is None:
            raise _group_not_found()
        return _Response(200, {"apiVersion": 1, "groups": [self._export_shape(group)]})

    def _export_all(self, **kw: Any) -> _Response:
        if not self.rule_groups:
            return _Response(404)
        groups = [self._export_shape(g) for g in self.rule_groups.values()]
        return _Response(200, {"apiVersion": 1, "groups": groups})

    def _export_shape(self, group: dict[str, Any]) -> dict[str, Any]:
        folder = self.folders.get(group["folderUid"], {})
        rules = []
        for r in group["rules"]:
            item = {
                k: v
                for k, v in r.items()
                if k not in ("id", "orgID", "folderUID", "ruleGroup", "updated", "provenance")
            }
            rules.append(item)
        return {
            "orgId": 1,
            "name": group["title"],
            "folder": folder.get("title", ""),
            "interval": format_duration_ms(group["interval"] * 1000),
            "rules": rules,
        }


def _endless_hit(page: int, i: int) -> dict[str, Any]:
    uid = f"endless-{page}-{i}"
    return {"id": i, "uid": uid, "title": uid, "type": "dash-db", "tags": [], "url": f"/d/{uid}"}


def _int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    try:
        return int(query.get(name, [default])[0])
    except (TypeError, ValueError):
        return default


def _bad_duration(value: Any) -> None:
    raise ValueError(f'not a valid duration string: "{value}"')


def _invalid(message: str) -> ApiError:
    # Grafana wraps rule validation failures as ErrAlertRuleFailedValidation -> 400.
    return ApiError(400, f"invalid alert rule: {message}")


def _group_not_found() -> ApiError:
    return ApiError(
        404, "rule group not found", messageId="alerting.alert-rule.notFound", statusCode=404
    )


def _can_replace_provenance(stored: str, provided: str) -> bool:
    # Grafana's CanUpdateProvenanceInRuleGroup: "api" may be reset to "" but "file" is locked.
    return stored == provided or stored == "" or (stored == "api" and provided == "")


def _provenance_mismatch(provided: str, stored: str, *, change: bool = False) -> ApiError:
    if change:
        message = f"cannot change provenance from '{stored}' to '{provided}'"
    else:
        message = f"cannot update with provided provenance '{provided}', needs '{stored}'"
    return ApiError(409, message, messageId="alerting.provenanceMismatch", statusCode=409)


def _json_copy(data: Any) -> Any:
    """A deep copy of data parsed from JSON (request bodies), several times faster than
    ``copy.deepcopy`` on a dashboard."""
    return orjson.loads(orjson.dumps(data))


class _Handler(BaseHTTPRequestHandler):
    owner: GrafanaDouble
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle + delayed ACK add ~40 ms per
    # request on keep-alive connections.
    disable_nagle_algorithm = True
    server_version = "Grafana"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no per-request lines on stderr."""

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        method = self.command
        try:
            body_repr: Any = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body_repr = raw.decode("utf-8", "replace")
        record = RecordedRequest(method, path, query, 0, body_repr, headers, time.monotonic())
        owner = self.owner
        with owner._lock:
            owner.in_flight += 1
            owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
        try:
            response = owner.handle(method, path, query, headers, raw)
        except _Dropped:
            self.owner._record(record)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except Exception as exc:  # a bug in the double must surface as a 500, not a hang
            response = _Response(500, {"message": f"internal error in double: {exc!r}"})
        finally:
            with owner._lock:
                owner.in_flight -= 1
        record.status = response.status
        self.owner._record(record)
        payload = b""
        if response.raw is not None:
            payload = response.raw
        elif response.status != 204 and response.body is not None:
            payload = json.dumps(response.body).encode()
        try:
            self.send_response(response.status)
            if payload:
                self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if payload:
                self.wfile.write(payload)
        except OSError:
            # The client gave up (timeout); nothing to answer.
            self.close_connection = True

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_PATCH = _serve
    do_DELETE = _serve
