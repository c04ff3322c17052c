"""Redaction of sensitive keys in log events, span attributes and printed configuration.

A key is sensitive when its normalised form (lower case, separators removed) contains one of the
patterns. Decisions are cached per key: keys repeat, so the hot path is one dict lookup per key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final

REDACTED: Final = "[REDACTED]"

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


def _normalise(key: str) -> str:
    return _SEPARATORS.sub("", key.lower())


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

    def redact_in_place(self, data: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """Redact sensitive keys of ``data`` (and of nested mappings) in place; returns ``data``."""
        for key, value in data.items():
            if self.is_sensitive(key):
                data[key] = REDACTED
            elif isinstance(value, dict):
                self.redact_in_place(value)
        return data

    def needs_redaction(self, data: Mapping[str, Any]) -> bool:
        return any(self.is_sensitive(k) for k in data)

    def redacted_copy(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return {k: (REDACTED if self.is_sensitive(k) else v) for k, v in data.items()}


def redact_mapping(
    data: dict[str, Any], extra_keys: Iterable[str] = (), all_values: bool = False
) -> dict[str, Any]:
    """A printable copy of ``data``: sensitive keys (or, with ``all_values``, every value) hidden."""
    if all_values:
        return {k: REDACTED for k in data}
    return Redactor(extra_keys).redact_in_place(dict(data))  # type: ignore[return-value]
