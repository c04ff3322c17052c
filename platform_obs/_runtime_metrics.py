"""Process runtime metrics (CPU, memory, threads, GC) as observable instruments.

Standard library only (no psutil): the names are the conventions' and the runtime dashboard reads
exactly these. Callbacks run on the metric reader's thread at collection time, never in the service.
"""

from __future__ import annotations

import gc
import os
import resource
import threading
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from platform_obs import conventions as c

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _cpu_time(_options: CallbackOptions) -> Iterable[Observation]:
    times = os.times()
    yield Observation(times.user, {c.CPU_MODE: "user"})
    yield Observation(times.system, {c.CPU_MODE: "system"})


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        # Peak rather than current RSS, but better than nothing off Linux (KiB on Linux, bytes on macOS).
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss if os.uname().sysname == "Darwin" else rss * 1024


def _memory(_options: CallbackOptions) -> Iterable[Observation]:
    yield Observation(_resident_bytes())


def _threads(_options: CallbackOptions) -> Iterable[Observation]:
    yield Observation(threading.active_count())


def _gc_collections(_options: CallbackOptions) -> Iterable[Observation]:
    for generation, stats in enumerate(gc.get_stats()):
        yield Observation(stats.get("collections", 0), {c.GC_GENERATION: generation})


def register(meter: Meter) -> None:
    m = c.PROCESS_CPU_TIME
    meter.create_observable_counter(m.name, [_cpu_time], unit=m.unit, description=m.description)
    m = c.PROCESS_MEMORY_USAGE
    meter.create_observable_up_down_counter(
        m.name, [_memory], unit=m.unit, description=m.description
    )
    m = c.PROCESS_THREAD_COUNT
    meter.create_observable_up_down_counter(
        m.name, [_threads], unit=m.unit, description=m.description
    )
    m = c.CPYTHON_GC_COLLECTIONS
    meter.create_observable_counter(
        m.name, [_gc_collections], unit=m.unit, description=m.description
    )
