"""The reference Collector config (examples/collector/otel-collector.yaml) run by a real Collector.

The config file is used unchanged; a second ``--config`` overlay only binds the OTLP receiver to
free ports of 127.0.0.1 (the reference listens on 0.0.0.0) and turns off the Collector's own
metrics endpoint (a fixed port). The exporters' endpoints come from the environment variables the
reference config reads::

    with CollectorServer(binary, remote_write_url=..., tempo_endpoint=..., loki_endpoint=...) as c:
        service_env = c.otlp_env()
"""

from __future__ import annotations

import socket
from pathlib import Path

import yaml
from prometheus_servers import ServerError, _Server, free_port

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_CONFIG = ROOT / "examples" / "collector" / "otel-collector.yaml"


class CollectorServer(_Server):
    name = "otelcol"

    def __init__(
        self,
        binary: str | Path,
        *,
        remote_write_url: str,
        tempo_endpoint: str,
        loki_endpoint: str,
        config: Path = REFERENCE_CONFIG,
        start: bool = True,
    ) -> None:
        super().__init__(str(binary))
        self.config = config
        self.http_port = 0
        self.env = {
            "PATH": "/usr/bin:/bin",
            "PROMETHEUS_REMOTE_WRITE_URL": remote_write_url,
            "TEMPO_OTLP_ENDPOINT": tempo_endpoint,
            "LOKI_OTLP_ENDPOINT": loki_endpoint,
        }
        if start:
            try:
                self.start()
            except BaseException:
                self.stop()
                raise

    def command(self) -> list[str]:
        self.http_port = free_port()
        overlay = {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": self.address},
                        "http": {"endpoint": f"127.0.0.1:{self.http_port}"},
                    }
                }
            },
            "service": {"telemetry": {"metrics": {"level": "none"}}},
        }
        overlay_path = self.dir / "test-overlay.yaml"
        overlay_path.write_text(yaml.safe_dump(overlay), encoding="utf-8")
        return [self.binary, f"--config={self.config}", f"--config={overlay_path}"]

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise ServerError(f"{self.name} exited with {self.process.returncode}")
        for port in (self.port, self.http_port):
            with socket.socket() as sock:
                sock.settimeout(1)
                if sock.connect_ex(("127.0.0.1", port)) != 0:
                    return False
        return True

    def otlp_env(self) -> dict[str, str]:
        """What a service exports with to reach this Collector (OTLP/gRPC, the SDK's default)."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{self.address}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
        }
