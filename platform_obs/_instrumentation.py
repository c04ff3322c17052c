"""Auto-instrumentation of the libraries installed in the service, through the entry points that
``opentelemetry-instrumentation`` packages register (the same ones ``opentelemetry-instrument`` uses).

Cheap by design: deciding what applies reads package metadata only. An instrumentation whose library
is already imported is loaded now; the others wait for their library's first import (a post-import
hook), so a worker script with Django, SQLAlchemy and Celery installed but unused never imports them.

Warnings are only for what a user can act on: a library that is installed at a version its
instrumentation does not support, or an instrumentation that failed. Each is said once per process
tree (pre-fork workers do not repeat what their siblings said).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import Distribution, EntryPoint, PackageNotFoundError, entry_points, version
from typing import Any, NamedTuple

_log = logging.getLogger("platform_obs.instrumentation")

#: Instrumentations platform_obs replaces with its own pipeline (it owns log formatting).
ALWAYS_SKIPPED = frozenset({"logging"})
#: Emits process.cpu.time & co. under the names of our runtime metrics; skipped while those are on.
SYSTEM_METRICS = "system_metrics"
SEMCONV_OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
EXCLUDED_URLS_ENV = "OTEL_PYTHON_EXCLUDED_URLS"
CAPTURE_REQUEST_HEADERS_ENV = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"
CAPTURE_RESPONSE_HEADERS_ENV = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"
#: Warnings already given in this process tree (inherited by every child process).
_WARNED_ENV = "PLATFORM_OBS_WARNED_INSTRUMENTATIONS"

#: Distribution names whose import name differs from the normalised distribution name.
_IMPORT_NAMES = {
    "grpcio": "grpc",
    "pymysql": "pymysql",
    "mysql-connector-python": "mysql",
    "psycopg2-binary": "psycopg2",
    "elasticsearch-dsl": "elasticsearch_dsl",
    "google-cloud-aiplatform": "vertexai",
    "confluent-kafka": "confluent_kafka",
    "kafka-python": "kafka",
    "aio-pika": "aio_pika",
    "scikit-learn": "sklearn",
}

INSTRUMENTED = "instrumented"
PENDING = "waiting for import"
NOT_INSTALLED = "not installed"
UNSUPPORTED = "unsupported version"
FAILED = "failed"
DISABLED = "disabled"
ELSEWHERE = "already instrumented"


class InstrumentationStatus(NamedTuple):
    """What happened to one instrumentation, for ``Telemetry.instrumentation`` and ``doctor``."""

    name: str
    status: str
    #: The library it instruments, its installed version (if any) and the range it supports.
    package: str = ""
    version: str = ""
    supported: str = ""
    reason: str = ""

    def describe(self) -> str:
        what = f"{self.package} {self.version}".strip() or self.name
        return f"{self.name}: {self.status} ({what}{'; ' + self.reason if self.reason else ''})"


def opt_into_stable_http_semconv(environ: Any = os.environ) -> None:
    """Stable HTTP names (``http.server.request.duration`` in seconds) need the opt-in set before any
    instrumentation loads. A user's explicit ``http`` or ``http/dup`` choice is kept."""
    current = [x.strip() for x in environ.get(SEMCONV_OPT_IN_ENV, "").split(",") if x.strip()]
    if not any(x in ("http", "http/dup") for x in current):
        environ[SEMCONV_OPT_IN_ENV] = ",".join([*current, "http"])


def pass_http_options(
    excluded_urls: Iterable[str],
    request_headers: Iterable[str],
    response_headers: Iterable[str],
    environ: Any = os.environ,
) -> None:
    """The HTTP server instrumentations read these standard variables when they load and when they
    instrument; setting them here makes the ``init()`` options reach every framework alike."""
    for name, values in (
        (EXCLUDED_URLS_ENV, excluded_urls),
        (CAPTURE_REQUEST_HEADERS_ENV, request_headers),
        (CAPTURE_RESPONSE_HEADERS_ENV, response_headers),
    ):
        joined = ",".join(values)
        if joined:
            environ[name] = joined
        else:
            environ.pop(name, None)


# --- requirements from package metadata (no imports) ---------------------------------------------


class _Requirement(NamedTuple):
    package: str
    supported: str
    installed: str | None  # installed version, None when absent

    @property
    def satisfied(self) -> bool:
        return self.installed is not None and _contains(self.supported, self.installed)


_CLAUSE = re.compile(r"(~=|===?|!=|<=|>=|<|>)\s*(\d+(?:\.\d+)*)")
_RELEASE = re.compile(r"\d+(?:\.\d+)*")
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)")


def _contains(specifier: str, installed: str) -> bool:
    """Version ranges as instrumentations write them (``>= 1.0, < 2.1``), without importing
    ``packaging`` (its import alone was half of init()); anything fancier goes to ``packaging``."""
    clauses = [c.strip() for c in specifier.split(",") if c.strip()]
    parsed = [_CLAUSE.fullmatch(c) for c in clauses]
    if not _RELEASE.fullmatch(installed) or not all(parsed):
        from packaging.specifiers import SpecifierSet

        return SpecifierSet(specifier).contains(installed, prereleases=True)
    have = tuple(int(x) for x in installed.split("."))
    for match in parsed:
        assert match is not None
        op, text = match.groups()
        want = tuple(int(x) for x in text.split("."))
        width = max(len(have), len(want))
        a, b = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
        if op == "~=":
            prefix = want[:-1] if len(want) > 1 else want
            ok = a >= b and have[: len(prefix)] == prefix
        else:
            ok = {
                "==": a == b,
                "===": a == b,
                "!=": a != b,
                "<=": a <= b,
                ">=": a >= b,
                "<": a < b,
                ">": a > b,
            }[op]
        if not ok:
            return False
    return True


_versions: dict[str, str | None] = {}


def _installed_version(package: str) -> str | None:
    if package not in _versions:
        try:
            _versions[package] = version(package)
        except PackageNotFoundError:
            _versions[package] = None
    return _versions[package]


def _requirements(dependencies: Iterable[str]) -> list[_Requirement]:
    out = []
    for text in dependencies:
        match = _NAME.fullmatch(text.partition(";")[0])
        if match is None:
            raise ValueError(f"cannot read the requirement {text!r}")
        name, specifier = match.groups()
        specifier = specifier.strip().strip("()").replace(" ", "")
        out.append(_Requirement(name, specifier, _installed_version(name)))
    return out


def _dist_requirements(dist: Distribution | None) -> tuple[list[str], list[str]]:
    """The ``instruments`` (all needed) and ``instruments-any`` (one needed) extras of a dist."""
    every: list[str] = []
    any_of: list[str] = []
    for dep in (dist.requires or []) if dist is not None else []:
        text, _, marker = dep.partition(";")
        if "extra" not in marker:
            continue
        if "instruments-any" in marker:
            any_of.append(text.strip())
        elif "instruments" in marker:
            every.append(text.strip())
    return every, any_of


def _import_name(package: str) -> str:
    key = package.lower().replace("_", "-")
    return _IMPORT_NAMES.get(key, key.replace("-", "_"))


class _Candidate(NamedTuple):
    entry_point: EntryPoint
    #: Requirements found (all of ``instruments``, and whichever of ``instruments-any`` are present).
    requirements: list[_Requirement]


def _classify(ep: EntryPoint) -> tuple[_Candidate | None, InstrumentationStatus | None]:
    """Decide from metadata alone: not installed (silent), unsupported (warn) or a candidate."""
    every_text, any_text = _dist_requirements(ep.dist)
    every, any_of = _requirements(every_text), _requirements(any_text)
    for req in every:
        if req.installed is None:
            return None, InstrumentationStatus(ep.name, NOT_INSTALLED, req.package)
    for req in every:
        if not req.satisfied:
            return None, _unsupported(ep.name, req)
    present = [r for r in any_of if r.installed is not None]
    if any_of and not present:
        return None, InstrumentationStatus(
            ep.name, NOT_INSTALLED, ", ".join(r.package for r in any_of)
        )
    if any_of and not any(r.satisfied for r in present):
        return None, _unsupported(ep.name, present[0])
    return _Candidate(ep, every + [r for r in present if r.satisfied]), None


def _unsupported(name: str, req: _Requirement) -> InstrumentationStatus:
    return InstrumentationStatus(
        name,
        UNSUPPORTED,
        req.package,
        req.installed or "",
        req.supported,
        f"the instrumentation supports {req.package}{req.supported}",
    )


# --- warnings once per process tree ---------------------------------------------------------------


def _parent_is_python() -> bool:
    """A worker of a pre-fork server or a multiprocessing pool has a Python parent; a script run from
    a shell does not (and must warn every time it runs)."""
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as fh:
            argv0 = fh.read().split(b"\0", 1)[0]
    except OSError:
        return False
    return b"python" in os.path.basename(argv0) or b"python" in argv0


def _first_in_tree(key: str) -> bool:
    """True once per process tree for ``key``: children inherit the variable; siblings forked
    before it was set share a marker file named after their parent."""
    said = set(os.environ.get(_WARNED_ENV, "").split(","))
    if key in said:
        return False
    os.environ[_WARNED_ENV] = ",".join(sorted((said - {""}) | {key}))
    if not _parent_is_python():
        return True
    try:
        with open(f"/proc/{os.getppid()}/stat", "rb") as fh:
            started = fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        started = "0"
    import tempfile

    folder = os.path.join(tempfile.gettempdir(), f"platform-obs-{os.getuid()}")
    safe = "".join(ch if ch.isalnum() else "_" for ch in key)
    marker = os.path.join(folder, f"{os.getppid()}-{started}-{safe}")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    except OSError:
        return True
    return True


def _warn_unsupported(status: InstrumentationStatus) -> None:
    _warn_once(
        status,
        "%s %s is installed but not instrumented: the installed "
        "opentelemetry-instrumentation supports %s%s",
        status.package,
        status.version,
        status.package,
        status.supported,
    )


def _warn_once(status: InstrumentationStatus, message: str, *args: Any) -> None:
    if _first_in_tree(f"{status.name}:{status.status}"):
        _log.warning(message, *args)


# --- post-import hooks ----------------------------------------------------------------------------


class _HookedLoader(importlib.abc.Loader):
    """Runs the hooks right after the module's code ran, before the importer gets it."""

    def __init__(self, loader: Any, finder: _PostImportFinder) -> None:
        self._loader = loader
        self._finder = finder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        # Put the real loader back: importlib.resources and friends look at it.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._finder.fire(module.__name__)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.hooks: dict[str, list[Callable[[], None]]] = {}
        self._searching = threading.local()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.hooks or getattr(self._searching, "name", None) == fullname:
            return None
        self._searching.name = fullname
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._searching.name = None
        if spec is None or spec.loader is None:
            return None
        spec.loader = _HookedLoader(spec.loader, self)
        return spec

    def fire(self, name: str) -> None:
        for hook in self.hooks.pop(name, []):
            try:
                hook()
            except Exception as exc:  # never break the user's import
                _log.warning("instrumenting %s on import failed: %s", name, exc)
        if not self.hooks and self in sys.meta_path:
            sys.meta_path.remove(self)


_finder = _PostImportFinder()
_hook_lock = threading.RLock()


def when_imported(module: str, hook: Callable[[], None]) -> None:
    """Run ``hook`` now if ``module`` is imported, else right after its first import."""
    with _hook_lock:
        if module in sys.modules:
            hook()
            return
        _finder.hooks.setdefault(module, []).append(hook)
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


# --- instrumenting ------------------------------------------------------------------------------


class Instrumentation:
    """The instrumentations of one ``init()``: statuses, updated as deferred ones load."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._lock = threading.Lock()
        self.statuses: dict[str, InstrumentationStatus] = {}

    @property
    def instrumented(self) -> list[str]:
        return [s.name for s in self.statuses.values() if s.status == INSTRUMENTED]

    def _set(self, status: InstrumentationStatus) -> None:
        with self._lock:
            self.statuses[status.name] = status

    def discover(self, disabled: Iterable[str]) -> None:
        skip = set(disabled) | ALWAYS_SKIPPED
        if "*" in skip:
            return
        for ep in entry_points(group="opentelemetry_instrumentor"):
            if ep.name in skip:
                if ep.name not in ALWAYS_SKIPPED:
                    self._set(
                        InstrumentationStatus(ep.name, DISABLED, reason="disabled by setting")
                    )
                continue
            try:
                candidate, status = _classify(ep)
            except Exception as exc:  # unreadable metadata: say so, go on
                candidate, status = None, InstrumentationStatus(ep.name, FAILED, reason=str(exc))
            if status is not None:
                self._set(status)
                if status.status == UNSUPPORTED:
                    _warn_unsupported(status)
                continue
            assert candidate is not None
            self._defer(candidate)

    def _defer(self, candidate: _Candidate) -> None:
        ep = candidate.entry_point
        reqs = candidate.requirements
        first = reqs[0] if reqs else None
        self._set(
            InstrumentationStatus(
                ep.name,
                PENDING,
                first.package if first else "",
                (first.installed or "") if first else "",
                first.supported if first else "",
            )
        )
        if not reqs:  # nothing to wait for (e.g. system metrics)
            self._load(candidate)
            return
        fired = threading.Event()

        def hook() -> None:
            if not fired.is_set():
                fired.set()
                self._load(candidate)

        for req in reqs:
            module = _import_name(req.package)
            if module == "django":
                # Django's instrumentation reads settings (and configures empty ones if they are not
                # there yet): it has to wait for django.setup(), when settings are known.
                when_imported(module, lambda: _before_django_setup(hook))
            else:
                when_imported(module, hook)

    def _load(self, candidate: _Candidate) -> None:
        ep = candidate.entry_point
        base = self.statuses.get(ep.name) or InstrumentationStatus(ep.name, PENDING)
        try:
            instrumentor = ep.load()()
            # One distribution may register several instrumentors (httpx and httpx2): each names
            # the library it needs; one that is simply absent is no news.
            needs = _requirements(instrumentor.instrumentation_dependencies())
            missing = [r for r in needs if r.installed is None]
            if missing:
                self._set(base._replace(status=NOT_INSTALLED, package=missing[0].package))
                return
            wrong = [r for r in needs if not r.satisfied]
            if wrong:
                status = _unsupported(ep.name, wrong[0])
                self._set(status)
                _warn_unsupported(status)
                return
            if instrumentor.is_instrumented_by_opentelemetry:
                self._set(base._replace(status=ELSEWHERE, reason="instrumented before init()"))
                return
            instrumentor.instrument(
                tracer_provider=self._tracer_provider,
                meter_provider=self._meter_provider,
                skip_dep_check=True,
            )
            self._set(base._replace(status=INSTRUMENTED))
        except Exception as exc:  # one bad instrumentation must not stop the service or the others
            status = base._replace(status=FAILED, reason=f"{type(exc).__name__}: {exc}")
            self._set(status)
            _warn_once(status, "instrumentation %s failed and was skipped: %s", ep.name, exc)


def _before_django_setup(hook: Callable[[], None]) -> None:
    import django

    from platform_obs import _servers

    apps = sys.modules.get("django.apps")
    if apps is not None and getattr(apps.apps, "ready", False):
        hook()  # init() after django.setup(): instrument now (middleware may already be built)
        _servers.adopt_server_loggers()
        return
    original = django.setup
    if getattr(original, "_platform_obs", False):
        return

    def setup(*args: Any, **kwargs: Any) -> Any:
        hook()
        try:
            return original(*args, **kwargs)
        finally:
            # Django's dictConfig has just added its console handlers: its lines come to us instead.
            _servers.adopt_server_loggers()

    setup._platform_obs = True  # type: ignore[attr-defined]
    django.setup = setup


def instrument_installed(
    tracer_provider: Any, meter_provider: Any, disabled: Iterable[str]
) -> Instrumentation:
    """Instrument every installed, enabled library (now or on its first import)."""
    found = Instrumentation(tracer_provider, meter_provider)
    found.discover(disabled)
    return found


def survey(disabled: Iterable[str] = ()) -> list[InstrumentationStatus]:
    """What ``init()`` would do with the installed instrumentations, without instrumenting (for
    ``doctor``). Loads each applicable instrumentor to read its own requirements."""
    skip = set(disabled) | ALWAYS_SKIPPED
    out: list[InstrumentationStatus] = []
    for ep in entry_points(group="opentelemetry_instrumentor"):
        if ep.name in ALWAYS_SKIPPED:
            continue
        if ep.name in skip or "*" in skip:
            out.append(InstrumentationStatus(ep.name, DISABLED, reason="disabled by setting"))
            continue
        try:
            candidate, status = _classify(ep)
            if status is None:
                assert candidate is not None
                needs = _requirements(ep.load()().instrumentation_dependencies())
                missing = [r for r in needs if r.installed is None]
                wrong = [r for r in needs if r.installed is not None and not r.satisfied]
                if missing:
                    status = InstrumentationStatus(ep.name, NOT_INSTALLED, missing[0].package)
                elif wrong:
                    status = _unsupported(ep.name, wrong[0])
                else:
                    first = candidate.requirements[0] if candidate.requirements else None
                    status = InstrumentationStatus(
                        ep.name,
                        "instrumented when imported",
                        first.package if first else "",
                        (first.installed or "") if first else "",
                        first.supported if first else "",
                    )
        except Exception as exc:
            status = InstrumentationStatus(ep.name, FAILED, reason=f"{type(exc).__name__}: {exc}")
        out.append(status)
    return out
