"""Auto-instrumentation of the libraries installed in the service, through the entry points that
``opentelemetry-instrumentation`` packages register (the same ones ``opentelemetry-instrument`` uses).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from importlib.metadata import entry_points

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

_log = logging.getLogger("platform_obs.instrumentation")

#: Instrumentations platform_obs replaces with its own pipeline (it owns log formatting).
ALWAYS_SKIPPED = frozenset({"logging"})
#: Emits process.cpu.time & co. under the names of our runtime metrics; skipped while those are on.
SYSTEM_METRICS = "system_metrics"
SEMCONV_OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"


def opt_into_stable_http_semconv(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """Stable HTTP names (``http.server.request.duration`` in seconds) need the opt-in set before any
    instrumentation loads. A user's explicit ``http`` or ``http/dup`` choice is kept."""
    current = [x.strip() for x in environ.get(SEMCONV_OPT_IN_ENV, "").split(",") if x.strip()]
    if not any(x in ("http", "http/dup") for x in current):
        environ[SEMCONV_OPT_IN_ENV] = ",".join([*current, "http"])


def instrument_installed(
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
    disabled: Iterable[str],
) -> list[str]:
    """Instrument every installed, enabled library once; returns the names instrumented now.

    An instrumentor already active (a previous ``init()`` or ``opentelemetry-instrument``) is left
    alone; a broken one is logged and skipped, never raised into the service.
    """
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    skip = set(disabled) | ALWAYS_SKIPPED
    if "*" in skip:
        return []
    done: list[str] = []
    for ep in entry_points(group="opentelemetry_instrumentor"):
        if ep.name in skip:
            continue
        try:
            if ep.dist is not None and get_dist_dependency_conflicts(ep.dist) is not None:
                continue  # the instrumented library is not installed (or a version it doesn't support)
            instrumentor = ep.load()()
            if instrumentor.is_instrumented_by_opentelemetry:
                continue
            instrumentor.instrument(
                tracer_provider=tracer_provider, meter_provider=meter_provider, skip_dep_check=True
            )
            done.append(ep.name)
        except Exception as exc:  # one bad instrumentation must not stop the service or the others
            _log.warning("instrumentation %s failed and was skipped: %s", ep.name, exc)
    return done
