"""Locks of the metrics SDK across ``fork()``: a forked worker must not inherit one held.

The metric reader's thread collects under several locks (the measurement consumer's, each
storage's, each aggregation's). A fork in the middle of a collection (a ``--preload`` master or a
gunicorn master with ``init()`` in its config fork workers at any time) leaves those locks held
forever in the child: its first measurement, or its exporter's, waits for ever. So the parent
holds the consumer lock across the fork (no collection can be in progress), and the child replaces
every SDK metrics lock by a fresh one (only the forking thread exists in the child). Exports are
held off the same way: an export thread caught mid-request would leave the child a connection, or
an HTTP library's lazily built state, in pieces.
"""

from __future__ import annotations

import threading
from typing import Any

_LOCK = type(threading.Lock())
_RLOCK = type(threading.RLock())
_PREFIX = "opentelemetry.sdk.metrics"


#: Longest a fork waits for an export or a collection in progress (a hung collector must not
#: hold up a server's workers for long; past this the fork goes ahead as it would without us).
_WAIT = 2.0


def _quiesce_locks(providers: Any) -> list[Any]:
    """The locks held while a collection or an export runs: the measurement consumer's, and each
    batch processor's and metric reader's export lock."""
    owners: list[Any] = [getattr(providers.meter, "_measurement_consumer", None)]
    span_processors = getattr(providers.tracer, "_active_span_processor", None)
    for processor in getattr(span_processors, "_span_processors", ()):
        owners.append(getattr(processor, "_batch_processor", None))
    log_processors = getattr(providers.logger, "_multi_log_record_processor", None)
    for processor in getattr(log_processors, "_log_record_processors", ()):
        owners.append(getattr(processor, "_batch_processor", None))
    owners.extend(getattr(providers.meter, "_metric_readers", ()))
    locks = []
    for owner in owners:
        for name in ("_lock", "_export_lock"):
            lock = getattr(owner, name, None)
            if isinstance(lock, _LOCK) and (name == "_export_lock" or owner is owners[0]):
                locks.append(lock)
    return locks


def before_fork(providers: Any) -> list[Any]:
    """Let a collection or export in progress finish and hold off new ones until the fork is done:
    a child must not inherit half-made state (a lock held, a connection mid-request, a library
    half-initialised by an export thread). Returns the locks held."""
    held = []
    for lock in _quiesce_locks(providers):
        if lock.acquire(timeout=_WAIT):
            held.append(lock)
    return held


def after_fork_in_parent(held: list[Any]) -> None:
    for lock in reversed(held):
        lock.release()


def renew_locks(meter_provider: Any) -> None:
    """Replace every lock reachable from the meter provider inside the metrics SDK."""
    seen: set[int] = set()
    stack: list[Any] = [meter_provider]
    classes: set[type] = set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            stack.extend(obj.values())
            stack.extend(k for k in obj if not isinstance(k, (str, int, float, frozenset, tuple)))
            continue
        if isinstance(obj, (list, tuple, set)):
            stack.extend(obj)
            continue
        kind = type(obj)
        if not kind.__module__.startswith(_PREFIX):
            continue
        classes.add(kind)
        attributes = getattr(obj, "__dict__", None)
        if attributes is None:
            continue
        for name, value in list(attributes.items()):
            if isinstance(value, _RLOCK):
                attributes[name] = threading.RLock()
            elif isinstance(value, _LOCK):
                attributes[name] = threading.Lock()
            else:
                stack.append(value)
    for kind in classes:  # class-level locks (e.g. the registry of all metric readers)
        for klass in kind.__mro__:
            for name, value in list(vars(klass).items()):
                if isinstance(value, _LOCK) and klass.__module__.startswith(_PREFIX):
                    setattr(klass, name, threading.Lock())
