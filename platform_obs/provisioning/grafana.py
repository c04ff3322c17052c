"""Transport to Grafana: ``grafana-client`` plus what it lacks (retries, typed errors, secrecy).

URL and token come only from the environment (``GRAFANA_URL``, ``GRAFANA_TOKEN``). The token is
never printed: not in ``repr``, not in an error message (exception text is scrubbed of it), and
passwords in URLs are masked wherever a URL is shown.

grafana-client has no retries; we add bounded retries with exponential backoff and full jitter for
connection errors, timeouts, 429 (honouring ``Retry-After``) and 502/503/504. Each retry is
announced through ``on_retry`` (one line). Anything else is mapped to a typed error whose text is
one line: what was tried, what came back, and what to do about it.

Safe to share between threads: each thread gets its own grafana-client session (niquests
sessions, like requests', are not documented as thread-safe), and one :class:`Throttle` is shared
by all of them, so a 429 slows the whole run down instead of one request.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import niquests
from grafana_client import GrafanaApi, TokenAuth
from grafana_client.client import GrafanaException, GrafanaTimeoutError

from platform_obs._redaction import mask_url_passwords as mask_url
from platform_obs.provisioning import urls
from platform_obs.provisioning.durations import duration_seconds
from platform_obs.provisioning.model import MANAGER

T = TypeVar("T")

#: Grafana caps ``limit`` for search at 5000.
SEARCH_PAGE_SIZE = 5000
#: A search longer than this many pages (a million objects) is a server that never stops paging.
MAX_SEARCH_PAGES = 200
DEFAULT_TIMEOUT = 10.0
DEFAULT_PARALLELISM = 8
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
#: How much of an answer's text an error message shows (a proxy may send megabytes).
MAX_DETAIL = 200
NOT_GRAFANA_HINT = "is GRAFANA_URL pointing at Grafana (including any sub-path it is served from)?"


# --- errors -------------------------------------------------------------------------------------


class GrafanaError(Exception):
    """Base of every error talking to Grafana; ``str()`` is one line, safe to print."""

    status: int | None = None

    def __init__(self, message: str, *, status: int | None = None, path: str = "") -> None:
        self.status = status if status is not None else type(self).status
        self.path = path
        super().__init__(message)


class ConfigurationError(GrafanaError):
    """``GRAFANA_URL`` / ``GRAFANA_TOKEN`` / ``GRAFANA_TIMEOUT`` missing or malformed."""


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


class UnexpectedResponse(GrafanaError):
    """The URL answered, but not like Grafana's API: an HTML page, JSON of another shape,
    paging that never ends. Usually GRAFANA_URL points at a proxy, a login page or another app."""


#: Errors after which continuing with other objects is pointless (every request would fail the
#: same way): bad or under-privileged token, Grafana unreachable, not Grafana at all.
FATAL_ERRORS: tuple[type[GrafanaError], ...] = (
    Unauthorized,
    Forbidden,
    ConfigurationError,
    GrafanaUnavailable,
    UnexpectedResponse,
)


# --- secrets in text ------------------------------------------------------------------------------

_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>:?\s*")


def one_line(text: str, limit: int = MAX_DETAIL) -> str:
    """Whitespace collapsed, object reprs removed, cut to ``limit`` characters."""
    text = " ".join(_OBJECT_REPR.sub("", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- configuration ------------------------------------------------------------------------------


def parse_url(raw: str) -> tuple[str, str]:
    """``GRAFANA_URL`` -> (base URL requests are made against, URL safe to show).

    A sub-path is kept (``https://host/grafana`` -> ``https://host/grafana/api/...``); user and
    password in the URL are dropped from requests (the token authenticates) and masked when shown.
    """
    shown = mask_url(raw)
    if not raw:
        raise ConfigurationError(
            "GRAFANA_URL is not set (expected e.g. https://grafana.example.com)"
        )
    if any(ch.isspace() or ord(ch) < 32 for ch in raw):
        raise ConfigurationError(
            f"GRAFANA_URL {shown!r} contains whitespace or a control character "
            "(expected e.g. https://grafana.example.com)"
        )
    if "://" not in raw:
        raise ConfigurationError(
            f"GRAFANA_URL must start with http:// or https:// (got {shown!r}; expected e.g. "
            "https://grafana.example.com)"
        )
    try:
        parts = urlsplit(raw)
        host = parts.hostname or ""
        port = parts.port
    except ValueError as exc:
        reason = str(exc)
        if "IPv6" in reason:
            reason = "the host has an unbalanced '[' (IPv6 addresses are written [::1])"
        elif "Port" in reason or "port" in reason:
            reason = "the port must be a number from 1 to 65535"
        raise ConfigurationError(
            f"GRAFANA_URL {shown!r} is not a valid URL: {reason} "
            "(expected e.g. https://grafana.example.com:3000)"
        ) from None
    if parts.scheme not in ("http", "https"):
        raise ConfigurationError(f"GRAFANA_URL must start with http:// or https:// (got {shown!r})")
    if not host:
        raise ConfigurationError(
            f"GRAFANA_URL {shown!r} has no host (expected e.g. https://grafana.example.com)"
        )
    if port == 0:
        raise ConfigurationError(
            f"GRAFANA_URL {shown!r} is not a valid URL: the port must be a number from 1 to 65535"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"GRAFANA_URL {shown!r} has a query or fragment; expected only scheme, host, "
            "optional port and optional sub-path (e.g. https://example.com/grafana)"
        )
    if parts.path.rstrip("/").endswith("/api"):
        raise ConfigurationError(
            f"GRAFANA_URL {shown!r} ends in /api; expected Grafana's base URL, the one its web "
            "UI is served from (e.g. https://grafana.example.com or https://example.com/grafana)"
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    base = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
    return base, base


def check_token(token: str) -> None:
    """A token is printable ASCII without spaces; say where it is not, never what it is."""
    if not token:
        raise ConfigurationError(
            "GRAFANA_TOKEN is not set (expected a Grafana service account token with the "
            "Editor role, or Admin to create folders)"
        )
    for i, ch in enumerate(token):
        if 0x21 <= ord(ch) <= 0x7E:
            continue
        if ch in "\r\n":
            what = "a line break"
        elif ch == " ":
            what = "a space"
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            what = f"a control character (U+{ord(ch):04X})"
        else:
            what = f"a non-ASCII character (U+{ord(ch):04X})"
        raise ConfigurationError(
            f"GRAFANA_TOKEN contains {what} at position {i + 1} of {len(token)}; a Grafana "
            "token is printable ASCII without spaces (was it pasted with a line break or from "
            "a formatted document?). The token is not shown"
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


class Throttle:
    """One back-off for every thread of a run: polite to a Grafana that says it is overloaded.

    * A 429 (or a 503 with ``Retry-After``) pauses *all* requests until the time asked for,
      not just the one that got it.
    * The number of requests in flight adapts (additive increase, multiplicative decrease, as TCP
      does): each throttling answer halves it, each ``limit`` successes in a row add one back,
      up to the configured parallelism.
    """

    def __init__(self, limit: int, sleep: Callable[[float], None] = time.sleep) -> None:
        self.max_limit = max(1, limit)
        self.limit = self.max_limit
        self._sleep = sleep
        self._cond = threading.Condition()
        self._in_flight = 0
        self._resume_at = 0.0
        self._successes = 0

    def acquire(self) -> None:
        """Wait for the end of any pause and for a free slot, then take the slot."""
        slept_until = 0.0
        while True:
            with self._cond:
                target = self._resume_at
                if target <= slept_until or target <= time.monotonic():
                    while self._in_flight >= self.limit:
                        self._cond.wait()
                    # A pause that began while this thread waited for a slot counts too.
                    if self._resume_at == target or self._resume_at <= time.monotonic():
                        self._in_flight += 1
                        return
                    continue
            self._sleep(max(0.0, target - time.monotonic()))
            slept_until = target

    def release(self, *, throttled: bool = False) -> None:
        with self._cond:
            self._in_flight -= 1
            if throttled:
                self.limit = max(1, self.limit // 2)
                self._successes = 0
            else:
                self._successes += 1
                if self._successes >= self.limit and self.limit < self.max_limit:
                    self.limit += 1
                    self._successes = 0
            self._cond.notify_all()

    def pause(self, seconds: float) -> None:
        with self._cond:
            self._resume_at = max(self._resume_at, time.monotonic() + seconds)


class _Retryable(Exception):
    def __init__(
        self,
        reason: str,
        retry_after: float | None = None,
        *,
        throttled: bool = False,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.throttled = throttled
        #: The request may have reached Grafana (the answer was lost): a write may have landed.
        self.maybe_sent = maybe_sent


class _Permanent(Exception):
    """A transport failure that retrying cannot fix (TLS, unknown host)."""


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        todo += [e for e in (cur.__cause__, cur.__context__) if e is not None]
        todo += [a for a in getattr(cur, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(cur, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)


def _transport_failure(exc: BaseException, timeout: float) -> Exception:
    """A niquests/urllib3 exception -> a one-line reason, retryable or not."""
    text = " ".join(str(e) for e in _chain(exc))
    kinds = {type(e).__name__ for e in _chain(exc)}
    if isinstance(exc, niquests.exceptions.SSLError) or "SSLError" in kinds:
        detail = re.search(r"\[SSL: ([A-Z_]+)\][^')\"]*", text)
        why = detail.group(0) if detail else "handshake failed"
        return _Permanent(
            f"TLS failed ({one_line(why, 120)}); check http:// vs https:// in GRAFANA_URL and "
            "that the certificate is trusted (REQUESTS_CA_BUNDLE / SSL_CERT_FILE)"
        )
    if "NameResolutionError" in kinds or "resolve" in text.lower() or "gaierror" in kinds:
        if "Temporary failure" in text or "try again" in text.lower():
            return _Retryable("temporary DNS failure")
        host = re.search(r"Failed to resolve '([^']+)'", text)
        name = f" {host.group(1)!r}" if host else ""
        return _Permanent(f"cannot resolve host name{name}; check the host in GRAFANA_URL")
    if isinstance(exc, niquests.exceptions.ConnectTimeout) or "ConnectTimeout" in kinds:
        return _Retryable(f"could not connect within {timeout:g} s")
    if isinstance(exc, niquests.exceptions.Timeout) or "ReadTimeout" in kinds:
        return _Retryable(f"no answer within {timeout:g} s", maybe_sent=True)
    if "refused" in text.lower():
        return _Retryable("connection refused")
    if "unreachable" in text.lower():
        return _Retryable("network unreachable")
    return _Retryable("connection closed before an answer came", maybe_sent=True)


def _describe_body(response: Any) -> str:
    """What an answer held, in a few words (never a whole page)."""
    if response is None:
        return "no body"
    ctype = (response.headers.get("Content-Type") or "").split(";")[0].strip() or "no type"
    try:
        text = response.text or ""
    except Exception:  # undecodable bytes
        text = ""
    if "html" in ctype or text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
        title = re.search(r"<title[^>]*>(.*?)</title>", text[:20000], re.I | re.S)
        named = f" titled {one_line(title.group(1), 80)!r}" if title else ""
        return f"an HTML page{named} ({ctype})"
    if not text:
        return f"an empty body ({ctype})"
    return f"{one_line(text, 80)!r} ({ctype})"


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(sorted(str(k) for k in value)[:5])
        return f"an object with keys {keys}" if keys else "an empty object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


# --- the client ---------------------------------------------------------------------------------


class Grafana:
    """The few Grafana operations the provisioner needs, with retries and typed errors."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        parallelism: int = DEFAULT_PARALLELISM,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self._secrets = tuple(s for s in {token, urls.credential(url) or ""} if s)
        self._base, self.url = parse_url(url)
        check_token(token)
        self._token = token
        self._timeout = timeout
        self._retry = retry or DEFAULT_RETRY
        self._on_retry = on_retry
        self.throttle = Throttle(parallelism, sleep=self._retry.sleep)
        self.max_search_pages = MAX_SEARCH_PAGES
        self._local = threading.local()
        self._apis: list[GrafanaApi] = []
        self._apis_lock = threading.Lock()

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        parallelism: int = DEFAULT_PARALLELISM,
        on_retry: Callable[[str], None] | None = None,
    ) -> Grafana:
        env = os.environ if env is None else env
        if timeout is None:
            raw = env.get("GRAFANA_TIMEOUT", "").strip()
            try:
                timeout = float(raw) if raw else DEFAULT_TIMEOUT
            except ValueError:
                timeout = float("nan")
            if not 0 < timeout <= 3600:
                raise ConfigurationError(
                    f"GRAFANA_TIMEOUT must be a number of seconds between 0 and 3600 (got {raw!r})"
                )
        return cls(
            env.get("GRAFANA_URL", "").strip(),
            env.get("GRAFANA_TOKEN", "").strip(),
            timeout=timeout,
            retry=retry,
            parallelism=parallelism,
            on_retry=on_retry,
        )

    def __repr__(self) -> str:
        return f"Grafana(url={self.url!r})"

    def close(self) -> None:
        with self._apis_lock:
            apis, self._apis = self._apis, []
        for api in apis:
            api.client.s.close()

    def __enter__(self) -> Grafana:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------------

    @property
    def _api(self) -> GrafanaApi:
        """This thread's grafana-client (one session, one keep-alive connection per thread)."""
        api: GrafanaApi | None = getattr(self._local, "api", None)
        if api is None:
            api = GrafanaApi(
                auth=TokenAuth(self._token), timeout=self._timeout, session_pool_size=2
            )
            # grafana-client builds "<host>/<prefix>api" (no slash: sub-paths break) and drops
            # the brackets of IPv6 hosts; the base URL is already right, so set it directly.
            api.client.url = f"{self._base}/api"
            api.client.s.hooks["response"].append(self._remember)
            self._local.api = api
            with self._apis_lock:
                self._apis.append(api)
        return api

    def _remember(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        # grafana-client errors carry the parsed body only; keep headers and type of the reply.
        self._local.response = response
        return response

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return mask_url(text)

    def _where(self, method: str, path: str) -> str:
        return f"{method} {self.url}{path}"

    def _notice(self, text: str) -> None:
        if self._on_retry is not None:
            self._on_retry(self._scrub(one_line(text, 300)))

    def _call(
        self,
        what: str,
        method: str,
        path: str,
        fn: Callable[[], T],
        *,
        landed: Callable[[GrafanaError], bool] | None = None,
    ) -> T:
        """Run one request with retries; translate failures into :class:`GrafanaError`.

        ``landed`` (writes only) decides, after an attempt whose answer was lost, whether the
        error a retry got (404 on delete, 412 on save) just means the lost attempt already did
        the job; then the call counts as done and returns None.
        """
        policy = self._retry
        maybe_sent = False
        attempt = 0
        while True:
            attempt += 1
            self.throttle.acquire()
            throttled = False
            error: GrafanaError | None = None
            try:
                return self._once(what, method, path, fn)
            except _Retryable as exc:
                throttled = exc.throttled
                maybe_sent |= exc.maybe_sent
                failure = exc
            except GrafanaError as exc:
                error = exc
            finally:
                self.throttle.release(throttled=throttled)
            if error is not None:
                # Checked after release: the check makes requests of its own.
                if maybe_sent and landed is not None and landed(error):
                    return None  # type: ignore[return-value]
                raise error
            where = self._where(method, path)
            if failure.retry_after is not None and failure.retry_after > policy.max_retry_after:
                raise GrafanaUnavailable(
                    f"{what}: {where} answered {failure.reason} and asked to retry after "
                    f"{failure.retry_after:.0f} s, longer than the "
                    f"{policy.max_retry_after:.0f} s this tool waits (gave up after {attempt} "
                    f"attempt{'s' if attempt != 1 else ''}); Grafana is overloaded or "
                    "rate-limiting this token, try again later",
                    path=path,
                )
            if attempt >= policy.attempts:
                raise GrafanaUnavailable(
                    f"{what}: {where}: {failure.reason} (after {attempt} attempt"
                    f"{'s' if attempt != 1 else ''}). Grafana at {self.url} is unreachable or "
                    "overloaded; check GRAFANA_URL, or retry later",
                    path=path,
                )
            delay = policy.backoff(attempt - 1)
            if failure.retry_after is not None:
                delay = max(delay, failure.retry_after)
            self._notice(
                f"retrying {what}: {where} {failure.reason}; attempt {attempt + 1} of "
                f"{policy.attempts} in {delay:.1f} s"
            )
            if failure.retry_after is not None:
                self.throttle.pause(delay)  # everyone waits; acquire() sleeps it off
            else:
                policy.sleep(delay)

    def _once(self, what: str, method: str, path: str, fn: Callable[[], T]) -> T:
        self._local.response = None
        try:
            return fn()
        except GrafanaTimeoutError as exc:
            failure = _transport_failure(exc.__cause__ or exc, self._timeout)
        except niquests.exceptions.JSONDecodeError:
            raise self._unexpected(what, method, path, "a body that is not valid JSON") from None
        except (
            niquests.exceptions.ConnectionError,
            niquests.exceptions.ChunkedEncodingError,
        ) as exc:
            failure = _transport_failure(exc, self._timeout)
        except GrafanaException as exc:
            status = int(exc.status_code or 0)
            if status == 0:  # a transport error grafana-client wrapped
                failure = _transport_failure(exc.__cause__ or exc, self._timeout)
            else:
                response = getattr(self._local, "response", None)
                if status in RETRYABLE_STATUS:
                    header = response.headers.get("Retry-After") if response is not None else None
                    retry_after = _parse_retry_after(header)
                    throttled = status in (429, 503)
                    label = "429 Too Many Requests" if status == 429 else f"HTTP {status}"
                    raise _Retryable(label, retry_after, throttled=throttled) from None
                raise self._typed(what, method, path, status, exc.response, response) from None
        if isinstance(failure, _Permanent):
            raise GrafanaUnavailable(
                f"{what}: {self._where(method, path)}: {failure}", path=path
            ) from None
        raise failure from None

    def _unexpected(self, what: str, method: str, path: str, got: str = "") -> UnexpectedResponse:
        response = getattr(self._local, "response", None)
        status = getattr(response, "status_code", None)
        body = got or _describe_body(response)
        return UnexpectedResponse(
            self._scrub(
                f"{what}: {self._where(method, path)} answered {status or ''} with {body}, "
                f"not Grafana's API; {NOT_GRAFANA_HINT}"
            ).replace("answered  with", "answered with"),
            status=status,
            path=path,
        )

    def _not_an_api(self, exc: NotFound) -> UnexpectedResponse:
        """A 404 from an endpoint every Grafana has: the URL is not Grafana's (or too old)."""
        return UnexpectedResponse(
            f"{exc} from GET {self.url}{exc.path}, an endpoint every Grafana 9+ has; "
            f"{NOT_GRAFANA_HINT}",
            status=404,
            path=exc.path,
        )

    def _expect(self, value: Any, kind: type, what: str, method: str, path: str) -> Any:
        """The parsed answer, if it has the shape Grafana's API gives; else a clean error."""
        if isinstance(value, kind):
            return value
        response = getattr(self._local, "response", None)
        ctype = response.headers.get("Content-Type") or "" if response is not None else ""
        if isinstance(value, str) and "json" not in ctype:
            raise self._unexpected(what, method, path)
        expected = "an object" if kind is dict else "a list"
        raise self._unexpected(
            what, method, path, f"JSON of another shape (expected {expected}, got {_shape(value)})"
        )

    def _typed(
        self, what: str, method: str, path: str, status: int, body: Any, response: Any
    ) -> GrafanaError:
        detail = ""
        is_json = isinstance(body, (dict, list))
        if isinstance(body, dict):
            detail = str(body.get("message") or body.get("status") or "")
        elif body and response is not None:
            detail = _describe_body(response)
        detail = self._scrub(one_line(detail))
        said = f": {detail}" if detail else ""
        where = self._where(method, path)
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
            if body and not is_json:
                # Grafana's own 404s are JSON; an HTML/text 404 comes from something else.
                return UnexpectedResponse(
                    f"{what}: {where} answered 404{said}; {NOT_GRAFANA_HINT}",
                    status=404,
                    path=path,
                )
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
        hint = "" if is_json else f"; {NOT_GRAFANA_HINT}"
        return GrafanaError(
            f"{what}: {where} answered HTTP {status}{said}{hint}", status=status, path=path
        )

    # -- reads -----------------------------------------------------------------------------------

    def _search(self, **params: Any) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        for page in range(1, self.max_search_pages + 1):

            def fetch(p: int = page) -> list[dict[str, Any]]:
                return self._api.search.search_dashboards(limit=SEARCH_PAGE_SIZE, page=p, **params)

            try:
                answer = self._call("search", "GET", "/api/search", fetch)
            except NotFound as exc:
                raise self._not_an_api(exc) from None
            batch = self._expect(
                answer,
                list,
                "search",
                "GET",
                "/api/search",
            )
            fresh = 0
            for hit in batch:
                if not isinstance(hit, dict) or "uid" not in hit:
                    raise self._unexpected(
                        "search",
                        "GET",
                        "/api/search",
                        f"JSON of another shape (expected search hits with a uid, got "
                        f"{_shape(hit)} in the list)",
                    )
                uid = str(hit["uid"])
                if uid not in seen:
                    seen.add(uid)
                    fresh += 1
                    yield hit
            if len(batch) < SEARCH_PAGE_SIZE:
                return
            if not fresh:
                raise UnexpectedResponse(
                    f"search: GET {self.url}/api/search answered page {page} with the same "
                    f"{len(batch)} results as before: the server ignores paging; "
                    f"{NOT_GRAFANA_HINT}",
                    path="/api/search",
                )
        raise UnexpectedResponse(
            f"search: GET {self.url}/api/search kept returning full pages "
            f"({self.max_search_pages} pages of {SEARCH_PAGE_SIZE}); stopped. {NOT_GRAFANA_HINT}",
            path="/api/search",
        )

    def list_managed_dashboards(self) -> list[dict[str, Any]]:
        """Search hits (uid, title, tags, folderUid; no JSON) for every dashboard tagged MANAGER."""
        return list(self._search(tag=MANAGER, type_="dash-db"))

    def list_folders(self) -> list[dict[str, Any]]:
        """Every folder, nested ones included (search hits: uid, title, folderUid = parent)."""
        return list(self._search(type_="dash-folder"))

    def get_dashboard(self, uid: str) -> dict[str, Any] | None:
        """``{"dashboard": ..., "meta": ...}``, or None when it does not exist."""
        path = f"/api/dashboards/uid/{quote(uid, safe='')}"
        what = f"get dashboard {uid}"
        try:
            live = self._call(what, "GET", path, lambda: self._api.dashboard.get_dashboard(uid))
        except NotFound:
            return None
        live = self._expect(live, dict, what, "GET", path)
        if not isinstance(live.get("dashboard"), dict):
            raise self._unexpected(
                what, "GET", path, f"JSON of another shape ({_shape(live)}, no dashboard object)"
            )
        return live

    def get_many(self, fetch: Callable[..., T], keys: Iterable[Any]) -> dict[Any, T]:
        """``fetch(*key)`` for every key, up to ``parallelism`` at a time: key -> answer.

        For reads that have no bulk endpoint (a dashboard's JSON, a rule group where Grafana has
        no export): N round trips cost N / parallelism of the time.
        """
        todo = list(dict.fromkeys(keys))
        if len(todo) <= 1:
            return {k: fetch(*_args(k)) for k in todo}
        with ThreadPoolExecutor(self.throttle.max_limit, thread_name_prefix="read") as pool:
            answers = pool.map(lambda k: fetch(*_args(k)), todo)
            return dict(zip(todo, answers, strict=True))

    def get_folder(self, uid: str) -> dict[str, Any] | None:
        path = f"/api/folders/{quote(uid, safe='')}"
        what = f"get folder {uid}"
        try:
            live = self._call(what, "GET", path, lambda: self._api.folder.get_folder(uid))
        except NotFound:
            return None
        return self._expect(live, dict, what, "GET", path)

    def list_alert_rules(self) -> list[dict[str, Any]]:
        """Every Grafana-managed alert rule, one request (provisioning API shape)."""
        path = "/api/v1/provisioning/alert-rules"
        what = "list alert rules"
        try:
            rules = self._call(what, "GET", path, self._api.alertingprovisioning.get_alertrules_all)
        except NotFound as exc:
            raise self._not_an_api(exc) from None
        if rules is None:
            return []
        rules = self._expect(rules, list, what, "GET", path)
        if not all(isinstance(r, dict) for r in rules):
            raise self._unexpected(
                what, "GET", path, "JSON of another shape (expected a list of rule objects)"
            )
        return rules

    def rule_intervals(self) -> dict[str, float] | None:
        """Rule uid -> its group's interval in seconds, from one export call.

        The rule list has no group interval; the export (file-provisioning JSON) has it for every
        group at once. None when the server has no export endpoint (caller falls back per group).
        """
        path = "/api/v1/provisioning/alert-rules/export"
        what = "export alert rules"
        try:
            doc = self._call(
                what,
                "GET",
                path,
                lambda: self._api.client.GET(path.removeprefix("/api"), params={"format": "json"}),
            )
        except (NotFound, BadRequest):
            return None
        doc = self._expect(doc, dict, what, "GET", path)
        out: dict[str, float] = {}
        for group in doc.get("groups") or []:
            if not isinstance(group, dict):
                continue
            seconds = duration_seconds(group.get("interval"))
            if seconds is None:
                continue
            for rule in group.get("rules") or []:
                if isinstance(rule, dict) and rule.get("uid"):
                    out[str(rule["uid"])] = seconds
        return out

    def list_contact_points(self) -> list[str]:
        """Names of the contact points alert rules may route to (one request)."""
        path = "/api/v1/provisioning/contact-points"
        what = "list contact points"
        points = self._call(what, "GET", path, self._api.alertingprovisioning.get_contactpoints)
        points = self._expect(points or [], list, what, "GET", path)
        return sorted({str(p.get("name")) for p in points if isinstance(p, dict)})

    def search_folder_contents(self, folder_uid: str) -> list[dict[str, Any]]:
        """Every dashboard and folder directly in a folder (managed or not), for safe folder
        deletion: Grafana deletes a folder's subfolders with it."""
        return list(self._search(folder_uids=[folder_uid]))

    def get_rule_group(self, folder_uid: str, group: str) -> dict[str, Any] | None:
        path = _rule_group_path(folder_uid, group)
        api_path = path.removeprefix("/api")  # grafana-client prefixes /api itself
        what = f"get rule group {folder_uid}/{group}"
        try:
            body = self._call(what, "GET", path, lambda: self._api.client.GET(api_path))
        except NotFound:
            return None
        return self._expect(body, dict, what, "GET", path)

    # -- writes ----------------------------------------------------------------------------------
    # A write whose answer was lost (timeout, dropped connection) may have landed; its retry then
    # meets the result of that first attempt (404 on delete, 409 on create, 412 on save). The
    # ``landed`` checks recognise our own earlier write instead of reporting a conflict.

    def _written(self, value: Any, what: str, method: str, path: str) -> Any:
        """A write's answer: JSON or nothing; an HTML page means it never reached Grafana."""
        if value is None or value == "" or isinstance(value, (dict, list)):
            return value
        raise self._unexpected(what, method, path)

    def create_folder(self, uid: str, title: str, parent_uid: str | None = None) -> bool:
        """Create a folder; False when it already exists (409), which is fine for apply."""
        what = f"create folder {uid}"
        try:
            created = self._call(
                what,
                "POST",
                "/api/folders",
                lambda: self._api.folder.create_folder(title, uid=uid, parent_uid=parent_uid),
            )
        except Conflict:
            return False
        self._written(created, what, "POST", "/api/folders")
        return True

    def update_folder(self, uid: str, title: str) -> None:
        path = f"/api/folders/{quote(uid, safe='')}"
        what = f"update folder {uid}"
        done = self._call(
            what,
            "PUT",
            path,
            lambda: self._api.folder.update_folder(uid, title=title, overwrite=True),
        )
        self._written(done, what, "PUT", path)

    def move_folder(self, uid: str, parent_uid: str | None) -> None:
        path = f"/api/folders/{quote(uid, safe='')}/move"
        what = f"move folder {uid}"
        done = self._call(what, "POST", path, lambda: self._api.folder.move_folder(uid, parent_uid))
        self._written(done, what, "POST", path)

    def delete_folder(self, uid: str) -> None:
        path = f"/api/folders/{quote(uid, safe='')}"
        what = f"delete folder {uid}"
        done = self._call(
            what,
            "DELETE",
            path,
            lambda: self._api.folder.delete_folder(uid),
            landed=lambda err: isinstance(err, NotFound),
        )
        self._written(done, what, "DELETE", path)

    def save_dashboard(
        self, model: dict[str, Any], folder_uid: str, message: str, *, overwrite: bool = True
    ) -> dict[str, Any] | None:
        """Save; None when a lost answer's retry found our own save already stored."""
        body = {
            "dashboard": model,
            "folderUid": folder_uid,
            "overwrite": overwrite,
            "message": message,
        }
        uid = str(model.get("uid") or "")
        what = f"save dashboard {uid}"

        def landed(err: GrafanaError) -> bool:
            if not uid or not isinstance(err, (VersionMismatch, Conflict)):
                return False
            live = self.get_dashboard(uid)
            if live is None:
                return False
            stored = (live.get("meta") or {}).get("folderUid") or ""
            return stored == folder_uid and _same_dashboard(live["dashboard"], model)

        saved = self._call(
            what,
            "POST",
            "/api/dashboards/db",
            lambda: self._api.dashboard.update_dashboard(body),
            landed=landed,
        )
        return self._written(saved, what, "POST", "/api/dashboards/db")

    def delete_dashboard(self, uid: str) -> None:
        path = f"/api/dashboards/uid/{quote(uid, safe='')}"
        what = f"delete dashboard {uid}"
        done = self._call(
            what,
            "DELETE",
            path,
            lambda: self._api.dashboard.delete_dashboard(uid),
            landed=lambda err: isinstance(err, NotFound),
        )
        self._written(done, what, "DELETE", path)

    def put_rule_group(
        self, folder_uid: str, group: str, body: dict[str, Any], *, disable_provenance: bool = False
    ) -> dict[str, Any]:
        # Quote the group name ourselves: grafana-client interpolates it into the path verbatim.
        # A PUT replaces the whole group, so repeating it after a lost answer is harmless.
        path = _rule_group_path(folder_uid, group)
        what = f"save rule group {folder_uid}/{group}"
        saved = self._call(
            what,
            "PUT",
            path,
            lambda: self._api.alertingprovisioning.update_rule_group(
                quote(folder_uid, safe=""),
                quote(group, safe=""),
                body,
                disable_provenance=disable_provenance,
            ),
        )
        return self._written(saved, what, "PUT", path)

    def delete_rule_group(self, folder_uid: str, group: str) -> None:
        path = _rule_group_path(folder_uid, group)
        api_path = path.removeprefix("/api")  # grafana-client prefixes /api itself
        what = f"delete rule group {folder_uid}/{group}"
        done = self._call(
            what,
            "DELETE",
            path,
            lambda: self._api.client.DELETE(api_path, accept_empty_json=True),
            landed=lambda err: isinstance(err, NotFound),
        )
        self._written(done, what, "DELETE", path)


def _args(key: Any) -> tuple[Any, ...]:
    return key if isinstance(key, tuple) else (key,)


def _same_dashboard(live: dict[str, Any], sent: dict[str, Any]) -> bool:
    """Grafana stores dashboards as sent, plus its own id and version."""

    def strip(d: dict[str, Any]) -> str:
        return json.dumps(
            {k: v for k, v in d.items() if k not in ("id", "version")}, sort_keys=True
        )

    return strip(live) == strip(sent)


def _rule_group_path(folder_uid: str, group: str) -> str:
    return (
        f"/api/v1/provisioning/folder/{quote(folder_uid, safe='')}"
        f"/rule-groups/{quote(group, safe='')}"
    )
