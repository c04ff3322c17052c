"""Prometheus-style durations (``90s``, ``5m``, ``1h30m``, ``3d``)."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
PATTERN = DURATION.pattern


def seconds(text: str) -> float | None:
    """Seconds in ``text``, or ``None`` when it is not a duration."""
    if not isinstance(text, str) or not DURATION.match(text):
        return None
    return float(sum(int(n) * _UNITS[u] for n, u in _PART.findall(text)))


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
