"""Prometheus-style durations (``90s``, ``5m``, ``1h30m``, ``3d``)."""

from __future__ import annotations

import re
from typing import Any

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
PATTERN = DURATION.pattern


def seconds(text: str) -> float | None:
    """Seconds in ``text``, or ``None`` when it is not a duration."""
    if not isinstance(text, str) or not DURATION.match(text):
        return None
    return float(sum(int(n) * _UNITS[u] for n, u in _PART.findall(text)))


# What Grafana sends back is looser than what configs may say: "5m0s", "1.5h", or a bare number.
_SERVER_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)")


def duration_seconds(value: Any) -> float | None:
    """``"5m"``, ``"1h30m"``, ``"5m0s"`` or a number of seconds -> seconds (None if unparsable)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return 0.0
    pos, total = 0, 0.0
    for m in _SERVER_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(text) else None


def format_seconds(total: float) -> str:
    """The shortest duration string for a whole number of seconds (``3600`` -> ``1h``)."""
    total_int = int(total)
    if total_int == 0:
        return "0s"
    out = []
    for unit in ("d", "h", "m", "s"):
        size = int(_UNITS[unit])
        if total_int >= size:
            out.append(f"{total_int // size}{unit}")
            total_int %= size
    return "".join(out)
