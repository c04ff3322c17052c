"""Redaction of sensitive keys in log events, span attributes and printed configuration.

A key is sensitive when its normalised form (lower case, separators removed) contains one of the
patterns. Decisions are cached per key: keys repeat, so the hot path is one dict lookup per key.

Values are searched at any depth: every :class:`~collections.abc.Mapping` (``OrderedDict``,
``defaultdict``, ``MappingProxyType``, request-header objects), objects with ``keys()`` and
``items()`` (``email.message.Message``, werkzeug ``Headers``), and lists, tuples, sets and frozensets
of them; ``(name, value)`` tuples (WSGI/ASGI raw header lists) count as keys too. Nothing is changed in
place: a value that needs no redaction is returned as is (no copy on the hot path), one that does is
returned as a redacted copy (mappings become ``dict``, sequences ``list``). Depth is bounded and
cycles are cut, so whatever is returned is finite and acyclic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final

REDACTED: Final = "[REDACTED]"

#: Nesting deeper than this is replaced by a placeholder (nothing below it is printed or exported).
#: 20 levels of mappings stay within the 100-message nesting protobuf decoders accept.
MAX_DEPTH: Final = 20

#: Normalised substrings that make a key sensitive. Extend with ``redact_keys`` / PLATFORM_OBS_REDACT_KEYS.
DEFAULT_SENSITIVE_PATTERNS: Final[tuple[str, ...]] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "authorization",
    "auth",
    "cookie",
    "apikey",
    "session",
    "credential",
    "privatekey",
    "jwt",
    "bearer",
    "signature",
)

#: Keys the SDK itself writes that match a pattern but are never secret.
_ALWAYS_PUBLIC: Final = frozenset({"trace_id", "span_id", "event", "logger", "level", "timestamp"})
_SEPARATORS = re.compile(r"[\s_\-.]+")

#: Values that hold nothing to redact: checked by exact type, the cheapest test there is.
SCALARS: Final = frozenset({str, int, float, bool, type(None), bytes})
_SEQUENCES: Final = (list, tuple, set, frozenset)


def _normalise(key: str) -> str:
    return _SEPARATORS.sub("", key.lower())


def type_name(value: Any) -> str:
    """The name of ``value``'s type, for placeholders (a hostile metaclass must not break it)."""
    try:
        return str(type(value).__qualname__)
    except Exception:
        return "object"


def circular(value: Any) -> str:
    return f"<circular reference: {type_name(value)}>"


def too_deep(value: Any) -> str:
    return f"<nested deeper than {MAX_DEPTH}: {type_name(value)}>"


def unrepresentable(value: Any) -> str:
    return f"<unrepresentable {type_name(value)}>"


def _key_text(key: Any) -> str | None:
    """A key as text for the sensitivity test (``bytes`` header names included), or None."""
    if type(key) is str:
        return key
    if isinstance(key, (bytes, bytearray)):
        return bytes(key).decode("latin-1")
    if isinstance(key, str):
        return str.__str__(key)
    return None


def _mapping_items(value: Any) -> Iterable[tuple[Any, Any]] | None:
    """The items of anything that behaves like a mapping, or None for anything else."""
    if isinstance(value, Mapping):
        return value.items()
    if isinstance(value, (str, bytes, bytearray, *_SEQUENCES)):
        return None
    keys, items = getattr(value, "keys", None), getattr(value, "items", None)
    if callable(keys) and callable(items):
        return items()  # type: ignore[no-any-return]
    return None


class Redactor:
    """Decides which keys are sensitive and replaces their values."""

    __slots__ = ("_patterns", "decisions")

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        self._patterns = tuple(
            dict.fromkeys((*DEFAULT_SENSITIVE_PATTERNS, *(_normalise(k) for k in extra_keys)))
        )
        #: key -> sensitive? Read directly on hot paths (a dict lookup is cheaper than a call).
        self.decisions: dict[str, bool] = {}

    def is_sensitive(self, key: str) -> bool:
        cached = self.decisions.get(key)
        if cached is None:
            norm = _normalise(key)
            cached = key not in _ALWAYS_PUBLIC and any(p in norm for p in self._patterns)
            if len(self.decisions) < 10_000:  # keys are usually a small set; stay bounded if not
                self.decisions[key] = cached
        return cached

    def _key_sensitive(self, key: Any) -> bool:
        text = _key_text(key)
        return text is not None and self.is_sensitive(text)

    def redact_value(self, value: Any, _depth: int = 0, _path: tuple[int, ...] = ()) -> Any:
        """``value`` with every sensitive key's value hidden, at any depth (see the module doc).

        Returns ``value`` itself when nothing had to change. Never raises: a container that cannot
        be walked becomes a placeholder naming its type.
        """
        if type(value) in SCALARS:
            return value
        try:
            items = _mapping_items(value)
            if items is None and not isinstance(value, _SEQUENCES):
                return value  # an opaque object: rendered by repr()/str() later
            if _depth >= MAX_DEPTH:
                return too_deep(value)
            if id(value) in _path:
                return circular(value)
            path = (*_path, id(value))
            if items is not None:
                return self._redact_mapping(value, items, _depth + 1, path)
            return self._redact_sequence(value, _depth + 1, path)
        except Exception:
            return unrepresentable(value)

    def _redact_mapping(
        self, value: Any, items: Iterable[tuple[Any, Any]], depth: int, path: tuple[int, ...]
    ) -> Any:
        out: dict[Any, Any] = {}
        changed = type(value) is not dict  # other mappings are copied into plain dicts
        for key, item in items:
            if self._key_sensitive(key):
                new: Any = REDACTED
            else:
                new = self.redact_value(item, depth, path)
            changed = changed or new is not item
            out[key] = new
        return out if changed else value

    def _redact_sequence(self, value: Any, depth: int, path: tuple[int, ...]) -> Any:
        if (
            type(value) is tuple  # a list of two strings is more often data than a pair
            and len(value) == 2
            and _key_text(value[0]) is not None
            and self._key_sensitive(value[0])
        ):
            return [value[0], REDACTED]  # a (name, value) pair, e.g. one raw header
        out = []
        changed = False
        for item in value:
            new = self.redact_value(item, depth, path)
            changed = changed or new is not item
            out.append(new)
        return out if changed else value

    def redact_in_place(self, data: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """Redact the top-level keys of ``data`` in place (nested values are replaced by redacted
        copies, never modified: they may belong to the caller); returns ``data``."""
        for key, value in data.items():
            if self._key_sensitive(key):
                data[key] = REDACTED
            elif type(value) not in SCALARS:
                new = self.redact_value(value)
                if new is not value:
                    data[key] = new
        return data

    def redact_attributes(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """``data`` itself (whatever mapping type it is) when nothing in it is sensitive, else a
        redacted ``dict`` copy. For attribute mappings (spans, events) checked in export threads."""
        out: dict[str, Any] | None = None
        for key, value in data.items():
            if self._key_sensitive(key):
                new: Any = REDACTED
            elif type(value) in SCALARS:
                new = value
            else:
                new = self.redact_value(value)
            if new is not value and out is None:
                out = dict(data)
            if out is not None:
                out[key] = new
        return data if out is None else out

    def needs_redaction(self, data: Mapping[str, Any]) -> bool:
        return self.redact_attributes(data) is not data

    def redacted_copy(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.redact_attributes(data))


def redact_mapping(
    data: dict[str, Any], extra_keys: Iterable[str] = (), all_values: bool = False
) -> dict[str, Any]:
    """A printable copy of ``data``: sensitive keys (or, with ``all_values``, every value) hidden."""
    if all_values:
        return {k: REDACTED for k in data}
    return dict(Redactor(extra_keys).redact_in_place(dict(data)))


# --- passwords inside URLs -----------------------------------------------------------------------

#: ``scheme://user:password@`` and a bare ``user:password@host`` (what gRPC calls the endpoint); the
#: password runs to the last ``@`` of the authority (an unencoded ``@`` in it is common).
_URL_PASSWORD = re.compile(
    r"(?P<user>(?:[A-Za-z][A-Za-z0-9+.\-]*://)?[^\s/:@'\"\\<>]*):(?P<password>[^\s/'\"\\<>]+)@(?=[^\s@'\"\\<>])"
)
#: ``scheme://TOKEN@host``: a lone user part in a URL is usually a token.
_URL_TOKEN = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/:@'\"\\<>]+@")
MASK: Final = "***"


def mask_url_passwords(text: str) -> str:
    """``text`` with the password of every URL (``https://user:***@host``) and a lone user part
    (``https://***@host``) masked, as Terraform and git print them (the CLI shows URLs the same
    way). Cheap when there is nothing to mask (no ``@``)."""
    if "@" not in text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['user']}:{MASK}@", text)
    return _URL_TOKEN.sub(lambda m: f"{m['scheme']}{MASK}@", text)
