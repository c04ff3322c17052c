"""platform-obs: one call sets up OpenTelemetry traces, metrics and structured logs the platform's way.

    import platform_obs
    platform_obs.init(service_name="checkout")
    log = platform_obs.get_logger(__name__)
    log.info("order_placed", order_id=17)

This module stays light: the OpenTelemetry SDK and structlog are imported on first use (the
provisioner CLI, which shares ``platform_obs.conventions``, never pays for them), and never the
provisioner's Grafana, YAML or CLI libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from platform_obs._config import ConfigError, Settings, check_import_time_env

check_import_time_env()  # before the SDK's trace module reads that variable on import

if TYPE_CHECKING:
    from platform_obs._lifecycle import AlreadyInitialized, Telemetry, shutdown
    from platform_obs._logs import get_logger
    from platform_obs._resource import MissingEnvironmentWarning, MissingServiceNameWarning

#: Public names and the private module that defines each, imported when first used.
_LAZY = {
    "AlreadyInitialized": "_lifecycle",
    "Telemetry": "_lifecycle",
    "shutdown": "_lifecycle",
    "get_logger": "_logs",
    "MissingEnvironmentWarning": "_resource",
    "MissingServiceNameWarning": "_resource",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'platform_obs' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"platform_obs.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AlreadyInitialized",
    "ConfigError",
    "MissingEnvironmentWarning",
    "MissingServiceNameWarning",
    "Settings",
    "Telemetry",
    "get_logger",
    "init",
    "shutdown",
]
__version__ = "0.1.0"


def init(
    service_name: str | None = None,
    *,
    service_version: str | None = None,
    service_namespace: str | None = None,
    environment: str | None = None,
    team: str | None = None,
    **settings: Any,
) -> Telemetry:
    """Set up traces, metrics and logs for this service, once, at start-up.

    Every argument is optional; anything not given comes from ``PLATFORM_OBS_*`` variables, then the
    standard ``OTEL_*`` variables, then ``[tool.platform_obs]`` in ``pyproject.toml``, then defaults
    (see the README's configuration table for every setting). Invalid values raise
    :class:`ConfigError` naming the variable or argument.

    Calling it again with the same settings returns the same :class:`Telemetry` handle; with
    different settings it raises :class:`AlreadyInitialized`.
    """
    from platform_obs._lifecycle import init as _init

    return _init(
        service_name=service_name,
        service_version=service_version,
        service_namespace=service_namespace,
        environment=environment,
        team=team,
        **settings,
    )
