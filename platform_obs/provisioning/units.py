"""The service config's one unit convention for thresholds.

* latencies carry their unit: ``250ms``, ``0.8s``, ``1s`` (a bare ``250`` is refused: seconds or
  milliseconds is exactly the mistake that renders ``> 250`` seconds);
* ratios are a fraction or a percentage: ``0.02`` or ``2%``;
* sizes are bytes or carry an IEC/SI unit: ``536870912``, ``512MiB``, ``2GiB``, ``1GB``.

Durations of windows and ``for`` (``5m``, ``1h``) are Prometheus durations (:mod:`durations`).
Each parser returns the value in base units (seconds, fraction, bytes), or ``None`` when the
value does not follow the convention.
"""

from __future__ import annotations

import math
import re
from typing import Any

_LATENCY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s)$")
_PERCENT = re.compile(r"^([0-9]+(?:\.[0-9]+)?)%$")
_BYTES = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(B|KiB|MiB|GiB|TiB|kB|KB|MB|GB|TB)$")
_BYTE_UNITS = {
    "B": 1,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
    "kB": 10**3,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
}
LATENCY_EXAMPLE = "a latency with its unit, e.g. 250ms or 0.8s"
RATIO_EXAMPLE = "a ratio like 0.02 or a percentage like 2%"
BYTES_EXAMPLE = "bytes, or a size with its unit like 512MiB or 2GiB"


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def latency_seconds(value: Any) -> float | None:
    """``"250ms"`` -> 0.25, ``"0.8s"`` -> 0.8; anything else (a bare number too) -> None."""
    if not isinstance(value, str):
        return None
    match = _LATENCY.match(value)
    if match is None:
        return None
    number = float(match[1])
    return round(number / 1000 if match[2] == "ms" else number, 12)


def ratio(value: Any) -> float | None:
    """``0.02`` or ``"2%"`` -> 0.02; None otherwise."""
    if _finite_number(value):
        return float(value)
    if isinstance(value, str) and (match := _PERCENT.match(value)):
        return round(float(match[1]) / 100, 12)
    return None


def byte_count(value: Any) -> float | None:
    """``536870912`` or ``"512MiB"`` -> 536870912; None otherwise."""
    if _finite_number(value):
        return float(value)
    if isinstance(value, str) and (match := _BYTES.match(value)):
        return float(match[1]) * _BYTE_UNITS[match[2]]
    return None


def format_latency(seconds: float) -> str:
    """0.25 -> ``250ms``, 1.0 -> ``1s`` (for messages and titles)."""
    if seconds < 1:
        return f"{format(round(seconds * 1000, 9), 'g')}ms"
    return f"{format(seconds, 'g')}s"
