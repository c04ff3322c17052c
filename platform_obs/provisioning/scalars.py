"""Scalar values a service config may hold: finite numbers, clean strings, bounded durations.

The JSON Schema cannot say these, and each slips through it into dead output: ``.nan`` passes
``exclusiveMinimum`` (every comparison with NaN is false) and renders ``> nan``; ``.inf`` or a
400-digit number breaks float conversion half-way through ``apply``; Python's ``$`` matches before
a trailing newline, so ``"checkout\\n"`` passes every name pattern and renders
``service_name="checkout\\n"``, which no series carries. All are refused here, at validate time,
with the key and line.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterator
from typing import Any

from platform_obs.provisioning import durations
from platform_obs.provisioning.model import Problem
from platform_obs.provisioning.yamlsrc import Located, join

#: Keys whose values are prose (or PromQL), where line breaks and tabs are normal.
FREE_TEXT_KEYS = frozenset({"summary", "description", "expr"})
#: Keys whose values are durations, wherever they appear.
DURATION_KEYS = frozenset({"for", "window", "evaluation_interval"})
#: Largest number accepted: every integer up to it is exact as a float (what Prometheus and
#: Grafana compute with).
MAX_NUMBER = 2**53
#: Longest duration accepted. Grafana and Prometheus hold durations as 64-bit nanoseconds (at most
#: 292 years); no alert waits, or SLO spans, a year.
MAX_DURATION_SECONDS = 365 * 86400
_TEXT_CONTROLS = frozenset("\t\n\r")
_NAMES = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL byte"}


def problems(doc: Located) -> list[Problem]:
    """Every bad scalar in a parsed service config, with its key path and line."""
    return [
        doc.problem(path, message, shown, expected)
        for path, message, shown, expected in _walk(doc.data, "", "")
    ]


def _walk(value: Any, path: str, key: str) -> Iterator[tuple[str, str, Any, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            child = join(path, str(k))
            if isinstance(k, str):
                why = _string_problem(k, free_text=False)
                if why:
                    yield child, f"key has {why}", _shorten(k), "a plain key"
            yield from _walk(v, child, str(k))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, join(path, i), key)
    elif isinstance(value, bool):
        return
    elif isinstance(value, float) and not math.isfinite(value):
        yield path, "not a finite number", str(value), "a finite number"
    elif isinstance(value, (int, float)) and abs(value) > MAX_NUMBER:
        yield path, "number is too large", _shorten(str(value)), f"at most 2**53 = {MAX_NUMBER}"
    elif isinstance(value, str):
        why = _string_problem(value, free_text=key in FREE_TEXT_KEYS)
        if why:
            yield path, f"value has {why}", _shorten(value), "the value without it"
        elif _is_duration_key(path, key):
            try:
                seconds = durations.seconds(value)
            except ValueError:  # more digits than Python converts
                seconds = math.inf
            if seconds is not None and seconds > MAX_DURATION_SECONDS:
                yield path, "duration is too long", _shorten(value), "at most 1y (365d)"


def _is_duration_key(path: str, key: str) -> bool:
    # Template parameters (alerts.<template>.<name>) are durations when they look like one.
    return key in DURATION_KEYS or (path.startswith("alerts.") and path.count(".") == 2)


def _string_problem(text: str, *, free_text: bool) -> str | None:
    if text.isascii() and text.isprintable():  # no control, format or surrogate character
        return None if free_text or text == text.strip() else "leading or trailing whitespace"
    for char in text:
        category = unicodedata.category(char)
        if category == "Cs":
            return f"an unpaired surrogate U+{ord(char):04X} (not valid Unicode text)"
        if category == "Cc" and not (free_text and char in _TEXT_CONTROLS):
            return f"{_NAMES.get(char, 'a control character')} (U+{ord(char):04X})"
        if category == "Cf" and not free_text:
            return f"an invisible formatting character (U+{ord(char):04X})"
    if not free_text and text != text.strip():
        return "leading or trailing whitespace"
    return None


def _shorten(text: str, keep: int = 60) -> str:
    return text if len(text) <= keep else f"{text[:keep]}... ({len(text)} characters)"
