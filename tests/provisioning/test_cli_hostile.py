"""The CLI with careless or hostile arguments and environments: one-line errors, never a traceback,
and no secret from any input in any output, written file or traceback."""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fixtures_render import EXAMPLE, config, write
from grafana_double import GrafanaDouble
from otlp_receiver import OtlpReceiver
from prometheus_servers import free_port

from platform_obs import cli as cli_module
from platform_obs.provisioning import urls

MARKER = "s3cr3t-MARKER-7f3a9"


@pytest.fixture(autouse=True)
def _clean_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no pyproject.toml of the repository in the settings


def run(*args: str, **env: str) -> Result:
    base = {k: "" for k in os.environ if k.startswith(("OTEL_", "PLATFORM_OBS_", "GRAFANA_"))}
    # Nothing listens on a fresh port: OTLP checks fail fast unless a test points them elsewhere.
    base["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    return CliRunner().invoke(cli_module.cli, list(args), env=base | env)


def assert_one_line_error(result: Result, *words: str) -> None:
    """Exit 1 through the CLI's own error path: no exception escaped, no traceback printed."""
    assert result.exception is None or isinstance(result.exception, SystemExit), "".join(
        traceback.format_exception(*result.exc_info)  # type: ignore[misc]
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output


# --- finding 14: tracebacks for user mistakes (CLI and doctor parts) ------------------------------


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return write(tmp_path, config(runbook_base_url="https://runbooks.acme.test/payments"))


DOCTOR_ENVIRONMENTS = {
    # id: (environment, words of the failed check)
    "per-signal-headers-without-equals": (
        {"OTEL_EXPORTER_OTLP_METRICS_HEADERS": "justakey"},
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    ),
    "per-signal-headers-item-without-value": (
        {"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "a=b,c"},
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ),
    "port-not-a-number": (
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:notaport"},
        "'http://localhost:notaport'",
    ),
    "port-out-of-range": (
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:99999"},
        "'http://localhost:99999'",
    ),
    "per-signal-endpoint-bad-port": (
        {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://localhost:70000/v1/logs"},
        "'http://localhost:70000/v1/logs'",
    ),
    "unclosed-ipv6-endpoint": (
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1"},
        "'http://[::1'",
    ),
}


@pytest.mark.parametrize("case", sorted(DOCTOR_ENVIRONMENTS))
def test_doctor_reports_bad_otlp_variables_as_failed_checks(cfg: Path, case: str) -> None:
    environment, words = DOCTOR_ENVIRONMENTS[case]
    result = run("doctor", str(cfg), "--timeout", "1", **environment)
    # Named in the failed check (by doctor, or by the SDK's settings, which check it first).
    assert_one_line_error(result, words)
    assert "check(s) failed" in result.output  # the whole checklist ran


@pytest.mark.parametrize("url", ["http://[::1", "http://localhost:notaport", "ftp://x", "http://"])
def test_doctor_bad_prometheus_url(cfg: Path, url: str) -> None:
    result = run("doctor", str(cfg), "--timeout", "1", "--prometheus-url", url)
    assert_one_line_error(result, "--prometheus-url", "e.g. http://localhost:9090")


def test_render_out_below_a_file(cfg: Path, tmp_path: Path) -> None:
    result = run("render", str(cfg), "--no-promtool", "--out", str(cfg / "sub"))
    assert_one_line_error(result, "cannot write the output under --out", str(cfg))
    assert cfg.read_text().startswith("apiVersion")  # the file in the way is untouched


SCAFFOLD = ["scaffold", "-y", "--service", "cart", "--team", "shop", "--tier", "2"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_scaffold_to_a_full_disk() -> None:
    result = run(*SCAFFOLD, "--receiver", "shop-oncall", "-o", "/dev/full", "--force")
    assert_one_line_error(result, "cannot write /dev/full", "No space left on device")


def test_scaffold_below_a_file(cfg: Path) -> None:
    result = run(*SCAFFOLD, "--receiver", "shop-oncall", "-o", str(cfg / "x.yaml"))
    assert_one_line_error(result, f"cannot write {cfg / 'x.yaml'}", "a file is in the way")


@pytest.mark.parametrize(
    "url",
    ["https://[::1", "https://grafana.example.com:notaport", "grafana.example.com", "https://"],
)
def test_render_bad_grafana_url(cfg: Path, tmp_path: Path, url: str) -> None:
    out = tmp_path / "out"
    result = run("render", str(cfg), "--no-promtool", "--out", str(out), "--grafana-url", url)
    assert_one_line_error(result, "--grafana-url")
    assert not out.exists()


# --- finding 6 (CLI part): URL passwords --------------------------------------------------------


def test_render_refuses_credentials_for_the_backstage_files(cfg: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    url = f"https://admin:{MARKER}@grafana.example.com"
    result = run("render", str(cfg), "--no-promtool", "--out", str(out), "--grafana-url", url)
    assert_one_line_error(result, "carries credentials", "https://admin:***@grafana.example.com")
    assert MARKER not in result.output and not out.exists()


def test_doctor_masks_url_passwords(cfg: Path) -> None:
    port = free_port()
    result = run(
        "doctor",
        str(cfg),
        "--timeout",
        "1",
        "--prometheus-url",
        f"http://prom:{MARKER}@127.0.0.1:{free_port()}",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://otel:{MARKER}@127.0.0.1:{port}",
    )
    assert result.exit_code == 1
    assert f"http://otel:***@127.0.0.1:{port}" in result.output
    assert MARKER not in result.output


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:pw@h.example.com/x", "https://u:***@h.example.com/x"),
        ("u:pw@h:4317", "u:***@h:4317"),
        ("https://token@h.example.com", "https://***@h.example.com"),
        ("https://u:p@ss@h.example.com", "https://u:***@h.example.com"),
        ("https://h.example.com/a@b", "https://h.example.com/a@b"),
        ("http://[::1", "http://[::1"),
    ],
)
def test_url_masking(url: str, shown: str) -> None:
    assert urls.mask(url) == shown


# --- every CLI input carries a secret; no output, file or traceback shows it ----------------------


@pytest.fixture
def rejecting_receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        receiver.set_status(503)  # exporters log their failures: the text doctor passes on
        yield receiver


def _secret_environment(grafana: GrafanaDouble, receiver: OtlpReceiver, protocol: str) -> dict:
    endpoint = receiver.env(protocol)["OTEL_EXPORTER_OTLP_ENDPOINT"]
    scheme, _, rest = endpoint.partition("://")
    return {
        **receiver.env(protocol),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"{scheme}://collector:{MARKER}@{rest}",
        "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {MARKER}",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"x-api-key={MARKER}",
        "GRAFANA_URL": grafana.url,
        "GRAFANA_TOKEN": f"glsa_{MARKER}",
        "PLATFORM_OBS_ENVIRONMENT": "production",
    }


def _leaks(result: Result, *directories: Path) -> list[str]:
    found = []
    if MARKER in result.output:
        found.append(f"output: {result.output}")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        text = "".join(traceback.format_exception(*result.exc_info))
        found.append(f"exception: {text}" if MARKER in text else f"unexpected exception: {text}")
    for directory in directories:
        for path in directory.rglob("*"):
            if path.is_file() and MARKER in path.read_text(errors="replace"):
                found.append(f"file {path}")
    return found


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_no_secret_reaches_any_output_or_file(
    tmp_path: Path, grafana: GrafanaDouble, rejecting_receiver: OtlpReceiver, protocol: str
) -> None:
    cfg = tmp_path / "platform-obs.yaml"
    cfg.write_text(EXAMPLE.read_text())
    env = _secret_environment(grafana, rejecting_receiver, protocol)
    out = tmp_path / "out"
    prom = f"http://prom:{MARKER}@127.0.0.1:{free_port()}"
    bad_urls = [f"http://u:{MARKER}@[::1", f"http://u:{MARKER}@localhost:notaport"]
    runs = {
        "validate": run("validate", str(cfg), **env),
        "render": run("render", str(cfg), "--out", str(out), **env),
        "render --grafana-url with password": run(
            "render", str(cfg), "--out", str(tmp_path / "o2"), "--grafana-url",
            f"https://admin:{MARKER}@grafana.example.com", **env,
        ),
        "plan (wrong token)": run("plan", str(cfg), **env),
        "apply (wrong token)": run("apply", str(cfg), "--no-promtool", **env),
        "doctor": run("doctor", str(cfg), "--timeout", "1", "--prometheus-url", prom, **env),
        "doctor, env var as --prometheus-url": run(
            "doctor", str(cfg), "--timeout", "1", **env, PLATFORM_OBS_PROMETHEUS_URL=prom
        ),
        **{
            f"doctor with endpoint {bad}": run(
                "doctor", str(cfg), "--timeout", "1", **{**env, "OTEL_EXPORTER_OTLP_ENDPOINT": bad}
            )
            for bad in bad_urls
        },
        **{
            f"doctor with --prometheus-url {bad}": run(
                "doctor", str(cfg), "--timeout", "1", "--prometheus-url", bad, **env
            )
            for bad in bad_urls
        },
        **{
            f"render --grafana-url {bad}": run(
                "render", str(cfg), "--out", str(tmp_path / "o3"), "--grafana-url", bad, **env
            )
            for bad in bad_urls
        },
        "doctor with a malformed headers variable": run(
            "doctor", str(cfg), "--timeout", "1",
            **{**env, "OTEL_EXPORTER_OTLP_METRICS_HEADERS": MARKER},
        ),
    }  # fmt: skip
    leaks = {name: found for name, result in runs.items() if (found := _leaks(result, tmp_path))}
    assert leaks == {}
    assert runs["render"].exit_code == 0 and any(out.rglob("*.catalog-info.yaml"))
    assert runs["plan (wrong token)"].exit_code == 3
    if protocol == "grpc":
        # gRPC cannot resolve user:password@host; its own error quotes the endpoint, masked here.
        assert "Failed to export traces to collector:***@" in runs["doctor"].output
    else:
        assert rejecting_receiver.requests["traces"] >= 1  # the probes really went out
