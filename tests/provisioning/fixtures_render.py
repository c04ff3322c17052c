"""Shared helpers for the render/spec/validate/promtool tests (imported, not a conftest)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from platform_obs.provisioning.templates import Templates, load_templates

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "service-config" / "platform-obs.yaml"


@cache
def templates() -> Templates:
    return load_templates()


def config(**overrides: Any) -> dict[str, Any]:
    """A minimal valid service config as data; ``None`` values remove a key."""
    data: dict[str, Any] = {
        "apiVersion": "platform-obs/v1",
        "kind": "Service",
        "service": "checkout",
        "team": "payments",
        "receiver": "payments-oncall",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def write(tmp_path: Path, data: dict[str, Any] | str, name: str = "platform-obs.yaml") -> Path:
    path = tmp_path / name
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


SLOS = {
    "window": "30d",
    "availability": {"objective": 99.9},
    "latency": {"threshold": "250ms", "objective": 99},
}
