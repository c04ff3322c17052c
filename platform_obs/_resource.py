"""The platform's resource: who is emitting. Built from settings and environment, no network calls."""

from __future__ import annotations

import os
import socket
import sys
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.version import __version__ as otel_sdk_version

from platform_obs import conventions as c
from platform_obs._config import Settings
from platform_obs._redaction import redact_mapping

#: Kubernetes downward-API variables -> resource attributes. Both the OTel-operator style names
#: and the common short names are accepted; the first present wins.
K8S_ENV: Mapping[str, tuple[str, ...]] = {
    "k8s.namespace.name": ("K8S_NAMESPACE_NAME", "K8S_POD_NAMESPACE", "POD_NAMESPACE"),
    "k8s.pod.name": ("K8S_POD_NAME", "POD_NAME"),
    "k8s.pod.uid": ("K8S_POD_UID", "POD_UID"),
    "k8s.node.name": ("K8S_NODE_NAME", "NODE_NAME"),
    "k8s.container.name": ("K8S_CONTAINER_NAME",),
    "k8s.deployment.name": ("K8S_DEPLOYMENT_NAME",),
}
#: Variables CI systems and build tools set with the commit being run.
VCS_REVISION_ENV: tuple[str, ...] = (
    "PLATFORM_OBS_VCS_REVISION",
    "GIT_COMMIT",
    "SOURCE_COMMIT",
    "VCS_REF",
    "GITHUB_SHA",
)

UNKNOWN_SERVICE_PREFIX = "unknown_service"


class MissingServiceNameWarning(UserWarning):
    """init() ran without a service name; telemetry is labelled with a fallback."""


class MissingEnvironmentWarning(UserWarning):
    """init() ran without a deployment environment; dashboards and alerts filter on it."""


def _first_env(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def fallback_service_name() -> str:
    """The spec's recognisable fallback: ``unknown_service:<process.executable.name>``."""
    return f"{UNKNOWN_SERVICE_PREFIX}:{Path(sys.executable).name or 'python'}"


def new_instance_id() -> str:
    return str(uuid.uuid4())


def base_attributes(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> dict[str, str | int]:
    """All resource attributes except ``service.instance.id`` (which is per process)."""
    environ = os.environ if environ is None else environ
    attrs: dict[str, str | int] = {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": otel_sdk_version,
        "telemetry.distro.name": "platform-obs",
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": ".".join(map(str, sys.version_info[:3])),
        "host.name": socket.gethostname(),
    }
    for key, names in K8S_ENV.items():
        if value := _first_env(environ, names):
            attrs[key] = value
    if revision := _first_env(environ, VCS_REVISION_ENV):
        attrs[c.VCS_REVISION] = revision
    # OTEL_RESOURCE_ATTRIBUTES (or the argument) overrides detected values; explicit settings override both.
    # Sensitive keys are redacted here as in logs and spans: a resource goes out with every batch.
    attrs.update(redact_mapping(dict(settings.resource_attributes), settings.redact_keys))
    explicit = {
        c.SERVICE_NAME: settings.service_name,
        c.SERVICE_VERSION: settings.service_version,
        c.SERVICE_NAMESPACE: settings.service_namespace,
        c.DEPLOYMENT_ENVIRONMENT: settings.environment,
        c.TEAM: settings.team,
    }
    attrs.update({k: v for k, v in explicit.items() if v})
    if not attrs.get(c.SERVICE_NAME):
        attrs[c.SERVICE_NAME] = fallback_service_name()
        warnings.warn(
            "platform_obs.init() has no service name: set init(service_name=...), "
            f"PLATFORM_OBS_SERVICE_NAME or OTEL_SERVICE_NAME. Using {attrs[c.SERVICE_NAME]!r}.",
            MissingServiceNameWarning,
            stacklevel=4,
        )
    if not attrs.get(c.DEPLOYMENT_ENVIRONMENT):
        warnings.warn(
            "platform_obs.init() has no environment: set init(environment=...), "
            "PLATFORM_OBS_ENVIRONMENT or OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=...; "
            "the service's dashboards and alerts select on it, so they show nothing for this process.",
            MissingEnvironmentWarning,
            stacklevel=4,
        )
    return attrs


def build_resource(attributes: Mapping[str, str | int], instance_id: str) -> Resource:
    return Resource({**attributes, c.SERVICE_INSTANCE_ID: instance_id})
