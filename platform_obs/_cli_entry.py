"""The ``platform-obs`` console script: a clear one-line error when the ``[cli]`` extra is missing.

The provisioner's libraries (click, PyYAML, grafana-client, ...) are an extra, not dependencies of
the SDK a service installs; without them the command says what to install instead of a traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn

#: Top-level modules the ``[cli]`` extra installs.
CLI_MODULES = frozenset(
    {"click", "yaml", "grafana_client", "grafana_foundation_sdk", "promql_parser", "jsonschema"}
)


def _missing_extra(exc: ImportError) -> NoReturn:
    sys.stderr.write(
        f"platform-obs: the provisioner CLI needs the [cli] extra ({exc.name} is not installed): "
        "pip install 'platform-obs[cli]'\n"
    )
    raise SystemExit(1)


def main() -> NoReturn:
    try:
        from platform_obs.cli import main as run
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in CLI_MODULES:
            _missing_extra(exc)
        raise
    try:
        run()
    except ImportError as exc:  # a command's lazy import
        if (exc.name or "").split(".")[0] in CLI_MODULES:
            _missing_extra(exc)
        raise
