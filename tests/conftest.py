"""Shared test set-up: the test doubles in this folder (OTLP receiver, Grafana double) are importable
from every test module."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

pytest_plugins = ["pytester"]
