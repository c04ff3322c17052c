"""Transport to Grafana: ``grafana-client`` plus what it lacks (retries, typed errors, secrecy).

URL and token come only from the environment (``GRAFANA_URL``, ``GRAFANA_TOKEN``). The token is
never printed: not in ``repr``, not in an error message (exception text is scrubbed of it).

grafana-client has no retries; we add bounded retries with exponential backoff and full jitter for
connection errors, timeouts, 429 (honouring ``Retry-After``) and 502/503/504. Anything else is
mapped to a typed error that says what to do about it.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import niquests
from grafana_client import GrafanaApi, TokenAuth
from grafana_client.client import GrafanaException, GrafanaTimeoutError

from platform_obs.provisioning.durations import duration_seconds
from platform_obs.provisioning.model import MANAGER

T = TypeVar("T")

#: Grafana caps ``limit`` for search at 5000.
SEARCH_PAGE_SIZE = 5000
DEFAULT_TIMEOUT = 10.0
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
#: Not wrapped by grafana-client (it wraps only Timeout and HTTPError).
_TRANSPORT_ERRORS = (niquests.exceptions.ConnectionError, niquests.exceptions.ChunkedEncodingError)


# --- errors -------------------------------------------------------------------------------------


class GrafanaError(Exception):
    """Base of every error talking to Grafana; ``str()`` is safe to print (no secrets)."""

    status: int | None = None

    def __init__(self, message: str, *, status: int | None = None, path: str = "") -> None:
        self.status = status if status is not None else type(self).status
        self.path = path
        super().__init__(message)


class ConfigurationError(GrafanaError):
    """``GRAFANA_URL`` / ``GRAFANA_TOKEN`` missing or malformed."""


class Unauthorized(GrafanaError):
    status = 401


class Forbidden(GrafanaError):
    status = 403


class NotFound(GrafanaError):
    status = 404


class FolderNotFound(GrafanaError):
    status = 400


class BadRequest(GrafanaError):
    status = 400


class Conflict(GrafanaError):
    status = 409


class VersionMismatch(GrafanaError):
    status = 412


class GrafanaUnavailable(GrafanaError):
    """Network failure, timeout or 5xx that outlasted the retries."""


#: Errors after which continuing with other objects is pointless (every request would fail the
#: same way): bad or under-privileged token, Grafana unreachable.
FATAL_ERRORS: tuple[type[GrafanaError], ...] = (
    Unauthorized,
    Forbidden,
    ConfigurationError,
    GrafanaUnavailable,
)


# --- retries ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: exponential backoff with full jitter (delay ~ U(0, min(cap, base*2^n)))."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    #: A server asking for longer than this is treated as unavailable rather than waited on.
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)

    def backoff(self, retry: int) -> float:
        return self.random() * min(self.max_delay, self.base_delay * (2**retry))


DEFAULT_RETRY = RetryPolicy()


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --- the client ---------------------------------------------------------------------------------


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class Grafana:
    """The few Grafana operations the provisioner needs, with retries and typed errors."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not url:
            raise ConfigurationError(
                "GRAFANA_URL is not set (expected e.g. https://grafana.example.com)"
            )
        if not token:
            raise ConfigurationError(
                "GRAFANA_TOKEN is not set (expected a Grafana service account token with the "
                "Editor role, or Admin to create folders)"
            )
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise ConfigurationError(
                f"GRAFANA_URL must start with http:// or https:// (got {_redact_url(url)!r})"
            )
        self.url = _redact_url(url)
        self._secrets = tuple(s for s in {token, urlsplit(url).password or ""} if s)
        self._retry = retry or DEFAULT_RETRY
        self._api = GrafanaApi.from_url(
            url.rstrip("/"), credential=TokenAuth(token), timeout=timeout
        )
        self._last_retry_after: str | None = None
        # grafana-client errors carry the body only; keep the Retry-After header of the last reply.
        self._api.client.s.hooks["response"].append(self._remember_headers)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Grafana:
        env = os.environ if env is None else env
        if timeout is None:
            raw = env.get("GRAFANA_TIMEOUT", "")
            try:
                timeout = float(raw) if raw else DEFAULT_TIMEOUT
            except ValueError:
                raise ConfigurationError(
                    f"GRAFANA_TIMEOUT must be a number of seconds (got {raw!r})"
                ) from None
        return cls(
            env.get("GRAFANA_URL", "").strip(),
            env.get("GRAFANA_TOKEN", "").strip(),
            timeout=timeout,
            retry=retry,
        )

    def __repr__(self) -> str:
        return f"Grafana(url={self.url!r})"

    def close(self) -> None:
        self._api.client.s.close()

    def __enter__(self) -> Grafana:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------------

    def _remember_headers(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        self._last_retry_after = response.headers.get("Retry-After")
        return response

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _call(self, what: str, path: str, fn: Callable[[], T]) -> T:
        """Run one request with retries; translate failures into :class:`GrafanaError`."""
        policy = self._retry
        last = ""
        for attempt in range(policy.attempts):
            try:
                return self._once(what, path, fn)
            except _Retryable as exc:
                last = exc.reason
                if attempt + 1 >= policy.attempts:
                    break
                delay = policy.backoff(attempt)
                if exc.retry_after is not None:
                    if exc.retry_after > policy.max_retry_after:
                        break
                    delay = max(delay, exc.retry_after)
                policy.sleep(delay)
        raise GrafanaUnavailable(
            f"{what} failed after {policy.attempts} attempts: {last}. Grafana at {self.url} is "
            "unreachable or overloaded; check GRAFANA_URL and retry later",
            path=path,
        )

    def _once(self, what: str, path: str, fn: Callable[[], T]) -> T:
        self._last_retry_after = None
        try:
            return fn()
        except GrafanaTimeoutError as exc:
            raise _Retryable(f"timed out ({self._scrub(str(exc))})") from None
        except (
            niquests.exceptions.ConnectionError,
            niquests.exceptions.ChunkedEncodingError,
        ) as exc:
            raise _Retryable(f"connection error ({self._scrub(str(exc))})") from None
        except GrafanaException as exc:
            status = int(exc.status_code or 0)
            if status == 0:  # a transport error grafana-client wrapped
                raise _Retryable(f"connection error ({self._scrub(str(exc))})") from None
            if status in RETRYABLE_STATUS:
                retry_after = _parse_retry_after(self._last_retry_after) if status == 429 else None
                raise _Retryable(f"HTTP {status}", retry_after) from None
            raise self._typed(what, path, status, exc.response) from None

    def _typed(self, what: str, path: str, status: int, body: Any) -> GrafanaError:
        detail = ""
        if isinstance(body, dict):
            detail = str(body.get("message") or body.get("status") or "")
        elif body:
            detail = str(body)[:300]
        detail = self._scrub(detail)
        said = f": {detail}" if detail else ""
        if status == 401:
            return Unauthorized(
                f"{what}: Grafana rejected the credentials (401){said}. Check GRAFANA_TOKEN: it "
                "must be a valid, unexpired service account token for this Grafana instance",
                path=path,
            )
        if status == 403:
            return Forbidden(
                f"{what}: permission denied (403){said}. The service account behind GRAFANA_TOKEN "
                "needs the Editor or Admin role, or edit permission on the target folder",
                path=path,
            )
        if status == 400 and "folder not found" in detail.lower():
            return FolderNotFound(
                f"{what}: the target folder does not exist (400){said}. Run apply so folders are "
                "created first, or check the folder uid",
                path=path,
            )
        if status == 404:
            return NotFound(f"{what}: not found (404){said}", path=path)
        if status == 409:
            return Conflict(
                f"{what}: conflict (409){said}. An object with this uid or name already exists "
                "and is not owned by this tool",
                path=path,
            )
        if status == 412:
            return VersionMismatch(
                f"{what}: version mismatch (412){said}. Someone changed it in Grafana since the "
                "plan was made (e.g. edited it in the UI); run plan again and review the diff",
                path=path,
            )
        if status == 400:
            return BadRequest(f"{what}: Grafana rejected the request (400){said}", path=path)
        return GrafanaError(f"{what}: HTTP {status}{said}", status=status, path=path)

    # -- reads -----------------------------------------------------------------------------------

    def _search(self, **params: Any) -> Iterator[dict[str, Any]]:
        page = 1
        while True:

            def fetch(p: int = page) -> list[dict[str, Any]]:
                return self._api.search.search_dashboards(limit=SEARCH_PAGE_SIZE, page=p, **params)

            batch = self._call("search", "/api/search", fetch)
            yield from batch
            if len(batch) < SEARCH_PAGE_SIZE:
                return
            page += 1

    def list_managed_dashboards(self) -> list[dict[str, Any]]:
        """Search hits (uid, title, tags, folderUid; no JSON) for every dashboard tagged MANAGER."""
        return list(self._search(tag=MANAGER, type_="dash-db"))

    def list_folders(self) -> list[dict[str, Any]]:
        """Every folder, nested ones included (search hits: uid, title, folderUid = parent)."""
        return list(self._search(type_="dash-folder"))

    def get_dashboard(self, uid: str) -> dict[str, Any] | None:
        """``{"dashboard": ..., "meta": ...}``, or None when it does not exist."""
        path = f"/api/dashboards/uid/{uid}"
        try:
            return self._call(
                f"get dashboard {uid}", path, lambda: self._api.dashboard.get_dashboard(uid)
            )
        except NotFound:
            return None

    def get_folder(self, uid: str) -> dict[str, Any] | None:
        path = f"/api/folders/{uid}"
        try:
            return self._call(f"get folder {uid}", path, lambda: self._api.folder.get_folder(uid))
        except NotFound:
            return None

    def list_alert_rules(self) -> list[dict[str, Any]]:
        """Every Grafana-managed alert rule, one request (provisioning API shape)."""
        path = "/api/v1/provisioning/alert-rules"
        rules = self._call(
            "list alert rules", path, self._api.alertingprovisioning.get_alertrules_all
        )
        return list(rules or [])

    def rule_intervals(self) -> dict[str, float] | None:
        """Rule uid -> its group's interval in seconds, from one export call.

        The rule list has no group interval; the export (file-provisioning JSON) has it for every
        group at once. None when the server has no export endpoint (caller falls back per group).
        """
        path = "/api/v1/provisioning/alert-rules/export"
        try:
            doc = self._call(
                "export alert rules",
                path,
                lambda: self._api.client.GET(path.removeprefix("/api"), params={"format": "json"}),
            )
        except (NotFound, BadRequest):
            return None
        if not isinstance(doc, dict):
            return None
        out: dict[str, float] = {}
        for group in doc.get("groups") or []:
            seconds = duration_seconds(group.get("interval"))
            if seconds is None:
                continue
            for rule in group.get("rules") or []:
                if rule.get("uid"):
                    out[str(rule["uid"])] = seconds
        return out

    def list_contact_points(self) -> list[str]:
        """Names of the contact points alert rules may route to (one request)."""
        path = "/api/v1/provisioning/contact-points"
        points = self._call(
            "list contact points", path, self._api.alertingprovisioning.get_contactpoints
        )
        return sorted({str(p.get("name")) for p in points or [] if isinstance(p, dict)})

    def search_folder_contents(self, folder_uid: str) -> list[dict[str, Any]]:
        """Every dashboard directly in a folder (managed or not), for safe folder deletion."""
        return list(self._search(folder_uids=[folder_uid], type_="dash-db"))

    def get_rule_group(self, folder_uid: str, group: str) -> dict[str, Any] | None:
        path = _rule_group_path(folder_uid, group)
        api_path = path.removeprefix("/api")  # grafana-client prefixes /api itself
        try:
            return self._call(
                f"get rule group {folder_uid}/{group}", path, lambda: self._api.client.GET(api_path)
            )
        except NotFound:
            return None

    # -- writes ----------------------------------------------------------------------------------

    def create_folder(self, uid: str, title: str, parent_uid: str | None = None) -> bool:
        """Create a folder; False when it already exists (409), which is fine for apply."""
        try:
            self._call(
                f"create folder {uid}",
                "/api/folders",
                lambda: self._api.folder.create_folder(title, uid=uid, parent_uid=parent_uid),
            )
        except Conflict:
            return False
        return True

    def update_folder(self, uid: str, title: str) -> None:
        self._call(
            f"update folder {uid}",
            f"/api/folders/{uid}",
            lambda: self._api.folder.update_folder(uid, title=title, overwrite=True),
        )

    def move_folder(self, uid: str, parent_uid: str | None) -> None:
        self._call(
            f"move folder {uid}",
            f"/api/folders/{uid}/move",
            lambda: self._api.folder.move_folder(uid, parent_uid),
        )

    def delete_folder(self, uid: str) -> None:
        self._call(
            f"delete folder {uid}",
            f"/api/folders/{uid}",
            lambda: self._api.folder.delete_folder(uid),
        )

    def save_dashboard(
        self, model: dict[str, Any], folder_uid: str, message: str, *, overwrite: bool = True
    ) -> dict[str, Any]:
        body = {
            "dashboard": model,
            "folderUid": folder_uid,
            "overwrite": overwrite,
            "message": message,
        }
        return self._call(
            f"save dashboard {model.get('uid')}",
            "/api/dashboards/db",
            lambda: self._api.dashboard.update_dashboard(body),
        )

    def delete_dashboard(self, uid: str) -> None:
        self._call(
            f"delete dashboard {uid}",
            f"/api/dashboards/uid/{uid}",
            lambda: self._api.dashboard.delete_dashboard(uid),
        )

    def put_rule_group(
        self, folder_uid: str, group: str, body: dict[str, Any], *, disable_provenance: bool = False
    ) -> dict[str, Any]:
        # Quote the group name ourselves: grafana-client interpolates it into the path verbatim.
        return self._call(
            f"save rule group {folder_uid}/{group}",
            _rule_group_path(folder_uid, group),
            lambda: self._api.alertingprovisioning.update_rule_group(
                quote(folder_uid, safe=""),
                quote(group, safe=""),
                body,
                disable_provenance=disable_provenance,
            ),
        )

    def delete_rule_group(self, folder_uid: str, group: str) -> None:
        path = _rule_group_path(folder_uid, group)
        api_path = path.removeprefix("/api")  # grafana-client prefixes /api itself
        self._call(
            f"delete rule group {folder_uid}/{group}",
            path,
            lambda: self._api.client.DELETE(api_path, accept_empty_json=True),
        )


def _rule_group_path(folder_uid: str, group: str) -> str:
    return (
        f"/api/v1/provisioning/folder/{quote(folder_uid, safe='')}"
        f"/rule-groups/{quote(group, safe='')}"
    )
