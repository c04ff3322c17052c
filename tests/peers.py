"""Real peers built from their upstream Go modules: the OpenTelemetry Collector, Prometheus 3, Sloth.

Each peer has a folder under ``tests/peers/`` with a ``go.mod`` / ``go.sum`` pinning one upstream
release (and, for the Collector, a ``main.go`` naming its components). :func:`peer_binary` builds
it on first use and caches the binary in ``~/.cache/platform-obs-peers`` (``PLATFORM_OBS_PEERS_CACHE``
overrides), keyed by a hash of the build files, the Go version and the build tags: a later run, or
another checkout of the same pins, reuses it. Go's own module and build caches stay at their
defaults, so a rebuild after a pin change is incremental.

Without Go the tests that need a peer are skipped with a message saying how to get them; under
``CI`` they fail instead (a skipped pipeline test there would hide a broken set-up).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent / "peers"


@dataclass(frozen=True)
class Peer:
    name: str
    #: What ``go build`` builds inside the peer's module: its own main package or an upstream one.
    package: str
    binary: str
    tags: tuple[str, ...] = ()

    @property
    def dir(self) -> Path:
        return PEERS_DIR / self.name


PEERS = {
    p.name: p
    for p in (
        # Exactly the components of examples/collector/otel-collector.yaml (see main.go).
        Peer("collector", ".", "otelcol-platform-obs"),
        # The upstream server; `remove_all_sd` leaves out the service-discovery plugins (cloud
        # SDKs) that static test targets do not need - the same code as the release otherwise.
        Peer(
            "prometheus3",
            "github.com/prometheus/prometheus/cmd/prometheus",
            "prometheus",
            ("remove_all_sd",),
        ),
        Peer("sloth", "github.com/slok/sloth/cmd/sloth", "sloth"),
    )
}

HOW_TO_GET = (
    "install Go 1.26 or newer (the `go` command on PATH); the first test run then builds the "
    "pinned upstream releases from tests/peers/ (a few minutes) and caches them in "
    "~/.cache/platform-obs-peers"
)


class PeerBuildError(RuntimeError):
    """``go build`` failed: a pin or the toolchain is broken (never a reason to skip)."""


def cache_root() -> Path:
    configured = os.environ.get("PLATFORM_OBS_PEERS_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "platform-obs-peers"


def _go() -> str | None:
    return shutil.which("go")


def _go_version(go: str) -> str:
    return subprocess.run(
        [go, "version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def build_key(peer: Peer, go_version: str) -> str:
    """Hash of everything that decides the binary: build files, Go version, package and tags."""
    digest = hashlib.sha256()
    for path in sorted(peer.dir.iterdir()):
        if path.suffix in (".go", ".mod", ".sum"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"{go_version}\0{peer.package}\0{','.join(peer.tags)}".encode())
    return digest.hexdigest()[:16]


def build(peer: Peer, go: str) -> Path:
    """The cached binary of ``peer``, built first when missing (one build at a time per key)."""
    target_dir = cache_root() / f"{peer.name}-{build_key(peer, _go_version(go))}"
    binary = target_dir / peer.binary
    if binary.exists():
        return binary
    target_dir.mkdir(parents=True, exist_ok=True)
    with (target_dir / ".lock").open("w") as lock:
        fcntl.flock(
            lock, fcntl.LOCK_EX
        )  # a parallel run waits for this build instead of redoing it
        if binary.exists():
            return binary
        partial = target_dir / f".{peer.binary}.partial"
        # Lowest CPU priority: a build started in the background while the suite runs must not
        # slow the tests that measure the service's own latency.
        nice = ["nice", "-n", "19"] if shutil.which("nice") else []
        command = [*nice, go, "build", "-trimpath", "-o", str(partial)]
        if peer.tags:
            command.append(f"-tags={','.join(peer.tags)}")
        command.append(peer.package)
        started = time.monotonic()
        # -mod=readonly: go.sum is the pin; a build never rewrites the checked-in files.
        env = {**os.environ, "GOFLAGS": (os.environ.get("GOFLAGS", "") + " -mod=readonly").strip()}
        result = subprocess.run(
            command, cwd=peer.dir, env=env, capture_output=True, text=True, timeout=3600
        )
        if result.returncode != 0:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            raise PeerBuildError(
                f"building {peer.name} ({' '.join(command)} in {peer.dir}) failed:\n"
                f"{result.stderr[-4000:]}"
            )
        partial.rename(binary)
        (target_dir / "build-seconds").write_text(f"{time.monotonic() - started:.1f}\n")
    return binary


def peer_binary(name: str) -> Path:
    """The built peer for a test; skips without Go (fails under ``CI``)."""
    import pytest  # only the test-facing helper needs pytest

    go = _go()
    if go is None:
        message = f"{name} is built from source with Go, which is not installed: {HOW_TO_GET}"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must not skip the pipeline tests")
        pytest.skip(message)
    try:
        return build(PEERS[name], go)
    except PeerBuildError as exc:
        pytest.fail(str(exc))


def prebuild(names: list[str]) -> None:
    """Build these peers one after the other (a background start; errors surface in the tests)."""
    go = _go()
    if go is None:
        return
    for name in names:
        with contextlib.suppress(PeerBuildError, OSError, subprocess.SubprocessError):
            build(PEERS[name], go)
