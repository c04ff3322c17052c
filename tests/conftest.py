"""Shared test set-up: the test doubles in this folder (OTLP receiver, Grafana double) are importable
from every test module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

pytest_plugins = ["pytester"]


# --- peers built with Go (tests/peers.py) ---------------------------------------------------------
# Tests that need a peer run last, and the peers they need are built on a background thread from
# the start of the run, so a cold build (minutes) overlaps the rest of the suite instead of adding
# to it. The fixtures wait for that build through the same per-peer lock.

#: golden-path metric path -> peers it needs (tests/e2e/golden_run.py)
_GOLDEN_PEERS = {
    "collector": ("collector",),
    "prometheus3": ("prometheus3",),
    "prometheus3-target-info": ("prometheus3",),
}
_prebuild: list[object] = []


def _peers_of(item: object) -> tuple[str, ...]:
    names = getattr(item, "fixturenames", ())
    if "sloth" in names:
        return ("sloth",)
    if "golden" in names:
        callspec = getattr(item, "callspec", None)
        return _GOLDEN_PEERS.get(str(callspec.params.get("golden")) if callspec else "", ())
    return ()


@pytest.hookimpl(trylast=True)  # after pytest groups the items by fixture parameter
def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:  # type: ignore[type-arg]
    needed = {id(item): _peers_of(item) for item in items}
    # Stable: peer-free tests first (their order kept), then the rest in their order.
    items.sort(key=lambda item: bool(needed[id(item)]))
    names = sorted({n for peers in needed.values() for n in peers})
    if names and not config.option.collectonly:
        import threading

        import peers

        thread = threading.Thread(target=peers.prebuild, args=(names,), name="peers", daemon=True)
        thread.start()
        _prebuild.append(thread)


def pytest_sessionfinish(exitstatus: int) -> None:
    if exitstatus != pytest.ExitCode.INTERRUPTED:
        for thread in _prebuild:
            thread.join()  # type: ignore[attr-defined]
