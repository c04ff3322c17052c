"""What the provisioner produces: plain, Grafana-shaped objects, independent of any backend.

The pipeline is spec -> render -> plan -> apply. Everything up to ``plan`` is pure; Grafana is
touched only by ``apply`` (and read by ``plan``). The objects below are the contract between the
stages: ``render`` builds them, output adapters (files, Prometheus rules, Grafana API) consume them.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar, overload

T = TypeVar("T")

#: Marks everything this tool writes. Dashboards carry it as a tag, alert rules as a label
#: (``managed_by``), folders as a uid prefix. Not proof of ownership on its own: see ``ownership``.
MANAGER: Final = "platform-obs"
MANAGED_BY_LABEL: Final = "managed_by"
SERVICE_TAG_PREFIX: Final = "service:"
FOLDER_UID_PREFIX: Final = "po-"

_UID_SAFE = re.compile(r"[^a-zA-Z0-9_-]+")
UID_MAX_LEN: Final = 40


@functools.lru_cache(maxsize=1 << 16)  # the same uids are derived by render, checks and outputs
def stable_uid(*parts: str) -> str:
    """A deterministic Grafana uid (``^[a-zA-Z0-9_-]+$``, at most 40 chars) from readable parts.

    Readable when it fits; otherwise a readable prefix plus a short hash of the full key, so two
    long names never collide.
    """
    readable = "-".join(_UID_SAFE.sub("-", p).strip("-").lower() for p in parts if p)
    if len(readable) <= UID_MAX_LEN:
        return readable
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:10]
    return f"{readable[: UID_MAX_LEN - 11].rstrip('-')}-{digest}"


class Deferred(Generic[T]):
    """A value made when first asked for, then kept: most of a fleet's rendered data is read only
    by some commands (``render`` writes rule files from their text and never reads the rules)."""

    __slots__ = ("_make", "_value")

    def __init__(self, make: Callable[[], T]) -> None:
        self._make: Callable[[], T] | None = make
        self._value: T | None = None

    def get(self) -> T:
        if self._make is not None:
            self._value, self._make = self._make(), None
        return self._value  # type: ignore[return-value]  # made above


def made(value: T | Deferred[T]) -> T:
    """The value itself, made first if it was deferred."""
    return value.get() if isinstance(value, Deferred) else value


def as_given(obj: object, name: str) -> Any:
    """A :class:`Deferrable` field's value as given, :class:`Deferred` and not made if so (for
    a value made from it, deferred in turn)."""
    return obj.__dict__[f"_{name}"]


class Deferrable(Generic[T]):
    """A dataclass field that may be given as a :class:`Deferred`: it is made on first read.

    Readers see a plain value; equality and ``repr`` read it too. No default value.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._key = f"_{name}"

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Deferrable[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> T | Deferrable[T]:
        if obj is None:
            raise AttributeError(self._key[1:])  # tells dataclasses the field has no default
        value = obj.__dict__[self._key]
        if isinstance(value, Deferred):
            value = obj.__dict__[self._key] = value.get()
        return value  # type: ignore[no-any-return]

    def __set__(self, obj: object, value: T | Deferred[T]) -> None:
        obj.__dict__[self._key] = value


@dataclass(frozen=True)
class Problem:
    """One validation failure, precise enough to fix without reading code."""

    file: str
    #: Key path in the file, e.g. ``alerts[2].threshold``; empty for file-level problems.
    path: str
    message: str
    value: Any = None
    expected: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        where += f": {self.path}" if self.path else ""
        text = f"{where}: {self.message}"
        if self.value is not None:
            text += f" (got {self.value!r}"
            text += f", expected {self.expected})" if self.expected else ")"
        elif self.expected:
            text += f" (expected {self.expected})"
        return text


class ValidationFailed(Exception):
    """Raised with every problem found, so users fix them all in one round."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Folder:
    uid: str
    title: str
    parent_uid: str | None = None


class Dashboard:
    """A dashboard as Grafana stores it (``model`` is the dashboard JSON, uid and title included).

    ``model`` may be given as ``source``, a function that builds it on first use, with its
    ``uid`` and ``title`` known before: checking a fleet's dashboards needs little more than
    those, and building a hundred megabytes of JSON data that no one reads is most of the time
    of ``validate``.
    """

    __slots__ = (
        "_model",
        "_source",
        "_title",
        "_uid",
        "file_text",
        "folder_uid",
        "service",
        "shape",
    )

    def __init__(
        self,
        service: str,
        folder_uid: str,
        model: dict[str, Any] | None = None,
        *,
        shape: str | None = None,
        source: Callable[[], dict[str, Any]] | None = None,
        uid: str = "",
        title: str = "",
        file_text: Callable[[], str] | None = None,
    ) -> None:
        if (model is None) == (source is None):
            raise TypeError("a Dashboard needs its model or a source of it, not both")
        self.service = service
        self.folder_uid = folder_uid
        #: Dashboards of one shape are the same text but for the service's name, team and
        #: file (see ``render.service``): checks that the names cannot change run once per shape.
        self.shape = shape
        self._model, self._source, self._uid, self._title = model, source, uid, title
        #: The model as a file (sorted keys, two-space indent), made without building it.
        self.file_text = file_text

    @property
    def model(self) -> dict[str, Any]:
        if self._model is None:
            assert self._source is not None
            self._model, self._source = self._source(), None
        return self._model

    @property
    def built(self) -> bool:
        """Whether ``model`` was built (and so may have been changed since)."""
        return self._model is not None

    @property
    def uid(self) -> str:
        return self._uid if self._model is None else str(self._model["uid"])

    @property
    def title(self) -> str:
        return self._title if self._model is None else str(self._model["title"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dashboard):
            return NotImplemented
        return (self.service, self.folder_uid, self.model) == (
            other.service,
            other.folder_uid,
            other.model,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dict it holds

    def __repr__(self) -> str:
        return (
            f"Dashboard(service={self.service!r}, folder_uid={self.folder_uid!r}, uid={self.uid!r})"
        )


@dataclass(frozen=True)
class RuleGroup:
    """A Grafana-managed alert rule group in the provisioning-API shape.

    ``rules`` are provisioning-API rule objects (``uid``, ``title``, ``condition``, ``data``, ``for``,
    ``labels``, ``annotations``, ``noDataState``, ``execErrState``, ``notification_settings`` ...),
    each with ``folderUID`` and ``ruleGroup`` set to this group's.
    """

    service: str
    folder_uid: str
    title: str
    interval_seconds: int
    rules: Deferrable[tuple[dict[str, Any], ...]] = Deferrable()
    #: Groups of one shape are the same file but for the service's values (``render.service``):
    #: its file text, made without serialising, and the shape it comes from.
    file_text: Callable[[], str | None] | None = field(default=None, compare=False, repr=False)
    shape: str | None = field(default=None, compare=False, repr=False)

    def api_body(self) -> dict[str, Any]:
        """Body of ``PUT /api/v1/provisioning/folder/{folderUid}/rule-groups/{group}``."""
        return {
            "title": self.title,
            "folderUid": self.folder_uid,
            "interval": self.interval_seconds,
            "rules": list(self.rules),
        }


@dataclass(frozen=True)
class PrometheusRuleFile:
    """A Prometheus rule file (``groups:`` document) for one service, for a Prometheus/Mimir ruler.

    ``kind`` is ``alerts`` (the alerting rules) or ``slo`` (the SLO recording rules, which the
    Grafana-managed burn-rate rules read too, so they are a file of their own).
    """

    service: str
    document: Deferrable[dict[str, Any]] = Deferrable()
    kind: str = "alerts"
    #: As :attr:`RuleGroup.file_text` and :attr:`RuleGroup.shape`.
    file_text: Callable[[], str | None] | None = field(default=None, compare=False, repr=False)
    shape: str | None = field(default=None, compare=False, repr=False)

    @property
    def file_name(self) -> str:
        return (
            f"{self.service}.rules.yaml"
            if self.kind == "alerts"
            else f"{self.service}.{self.kind}.rules.yaml"
        )


@dataclass
class Rendered:
    """Everything rendered for a set of services, in apply order."""

    #: Names of the services in scope (prune only ever looks at these).
    services: list[str] = field(default_factory=list)
    #: Service -> owning team: with the service, the owner named in ownership markers.
    teams: dict[str, str] = field(default_factory=dict)
    folders: list[Folder] = field(default_factory=list)
    dashboards: list[Dashboard] = field(default_factory=list)
    rule_groups: list[RuleGroup] = field(default_factory=list)
    prometheus_rules: list[PrometheusRuleFile] = field(default_factory=list)
    #: Extra files for other consumers (e.g. Backstage annotations), relative path -> content.
    extra_files: dict[str, str] = field(default_factory=dict)
