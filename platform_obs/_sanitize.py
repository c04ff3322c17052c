"""Turning any Python value into something a log line or an OTLP export can carry, without raising.

The fast paths (the C JSON encoder, the SDK's attribute handling) are tried first by the callers;
these functions are the slow path for the rare value they reject, and they never raise:

* a value whose ``__repr__``/``__str__`` raises becomes ``"<unrepresentable TypeName>"``;
* cycles become ``"<circular reference: TypeName>"``, nesting past ``MAX_DEPTH`` ``"<nested deeper
  than 20: TypeName>"``;
* keys that are not strings become their ``str()``; lone surrogates become U+FFFD;
* JSON: ``NaN``, ``Infinity`` and ``-Infinity`` become those strings (the protobuf JSON mapping's
  spelling: strict JSON has no such numbers);
* OTLP: integers outside the signed 64-bit range become strings (protobuf rejects them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

from platform_obs._redaction import (
    MAX_DEPTH,
    circular,
    mask_url_passwords,
    too_deep,
    type_name,
    unrepresentable,
)

_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_NON_FINITE: Final = {math.inf: "Infinity", -math.inf: "-Infinity"}


def clean_text(text: str) -> str:
    """``text`` with lone surrogates replaced (they cannot be encoded as UTF-8)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


# Characters other tools split lines on (Python's splitlines, JavaScript, some log shippers) that
# the JSON encoder leaves raw inside strings: escaped, so one event stays one line everywhere.
_LINE_BREAKS: Final = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def one_line(line: str) -> str:
    """A rendered JSON line made safe to write: lone surrogates replaced, Unicode line breaks
    escaped. Costs nothing for ASCII lines (the common case)."""
    if line.isascii():
        return line
    return clean_text(line).translate(_LINE_BREAKS)


def safe_str(value: Any) -> str:
    """``str(value)``, or a placeholder naming its type when that raises."""
    try:
        text = value if type(value) is str else str(value)
        if not isinstance(text, str):
            return unrepresentable(value)
        return clean_text(str.__str__(text))
    except Exception:
        return unrepresentable(value)


def safe_repr(value: Any) -> str:
    try:
        text = repr(value)
        if not isinstance(text, str):
            return unrepresentable(value)
        return clean_text(str.__str__(text))
    except Exception:
        return unrepresentable(value)


def _float(value: float, as_text: bool) -> Any:
    if value != value:
        return "NaN"
    if as_text and value in _NON_FINITE:
        return _NON_FINITE[value]
    return value


def _walk(value: Any, depth: int, path: tuple[int, ...], otlp: bool) -> Any:
    kind = type(value)
    if kind is str:
        return clean_text(value)
    if kind is bool or value is None:
        return value
    if kind is int:
        if otlp and not _INT64_MIN <= value <= _INT64_MAX:
            return str(value)
        return value
    if kind is float:
        return value if otlp else _float(value, True)
    if kind is bytes:
        return value if otlp else safe_repr(value)
    try:
        if isinstance(value, (Mapping, list, tuple, set, frozenset)):
            if depth >= MAX_DEPTH:
                return too_deep(value)
            if id(value) in path:
                return circular(value)
            inner = (*path, id(value))
            if isinstance(value, Mapping):
                key = _otlp_key if otlp else safe_str
                return {key(k): _walk(v, depth + 1, inner, otlp) for k, v in list(value.items())}
            items = [_walk(v, depth + 1, inner, otlp) for v in list(value)]
            if isinstance(value, (set, frozenset)):
                # Sets have no order; sort their text for stable lines (as before).
                items.sort(key=safe_str)
            return items
        # Subclasses of the primitive types (enums, numpy scalars...): keep their value.
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return _walk(int(value), depth, path, otlp)
        if isinstance(value, float):
            return _walk(float(value), depth, path, otlp)
        if isinstance(value, str):
            return clean_text(str.__str__(value))
    except Exception:
        return unrepresentable(value)
    return safe_str(value) if otlp else safe_repr(value)


def json_safe(value: Any) -> Any:
    """A copy of ``value`` made of dict/list/str/int/float/bool/None that strict JSON can carry."""
    return _walk(value, 0, (), otlp=False)


def json_safe_fields(event: Mapping[Any, Any]) -> dict[str, Any]:
    """An event's fields made safe one by one (the depth bound counts from each field)."""
    return {safe_str(k): json_safe(v) for k, v in list(event.items())}


def otlp_safe_fields(event: Mapping[Any, Any]) -> dict[str, Any]:
    return {safe_str(k): otlp_safe(v) for k, v in list(event.items())}


def _otlp_key(key: Any) -> str:
    return safe_str(key) or "<empty>"  # the SDK drops empty keys, with a warning line


def otlp_safe(value: Any) -> Any:
    """A copy of ``value`` that OTLP's ``AnyValue`` can carry (mappings with ``str`` keys, lists,
    ``str``/``bytes``/``bool``/int64/``float``/``None``)."""
    return _walk(value, 0, (), otlp=True)


def otlp_encodable(value: Any, depth: int = 0) -> bool:
    """Whether protobuf can encode ``value`` as it is (checked in export threads, not by callers).

    Text with a password in a URL counts as not encodable: the caller masks it first.
    """
    kind = type(value)
    if kind is str:
        return (value.isascii() or clean_text(value) is value) and (
            "@" not in value or mask_url_passwords(value) == value
        )
    if kind is int:
        return _INT64_MIN <= value <= _INT64_MAX
    if kind in (float, bool, bytes) or value is None:
        return True
    if depth >= MAX_DEPTH:
        return False
    if kind is dict:
        return all(
            type(k) is str and otlp_encodable(k) and otlp_encodable(v, depth + 1)
            for k, v in value.items()
        )
    if kind in (list, tuple):
        return all(otlp_encodable(v, depth + 1) for v in value)
    return False


def otlp_clean(value: Any) -> Any:
    """:func:`otlp_safe` with passwords in URLs masked, for values about to be exported."""
    cleaned = otlp_safe(value)
    return _mask_strings(cleaned)


def _mask_strings(value: Any) -> Any:
    if type(value) is str:
        return mask_url_passwords(value)
    if type(value) is dict:
        return {mask_url_passwords(k): _mask_strings(v) for k, v in value.items()}
    if type(value) is list:
        return [_mask_strings(v) for v in value]
    return value


__all__ = [
    "clean_text",
    "json_safe",
    "otlp_clean",
    "otlp_encodable",
    "otlp_safe",
    "safe_repr",
    "safe_str",
    "type_name",
]
