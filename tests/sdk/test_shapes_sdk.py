"""The SDK side of the service shapes: discovery, options, missing extras, the environment warning,
log records only for a configured exporter. Each runs ``init()`` in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from service_process import REPO, run_service

NO_EXPORT = {
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    "PLATFORM_OBS_ENVIRONMENT": "test",
}


def _fake_instrumentation(root: Path, library_version: str, supported: str) -> Path:
    """An installed library ``fakelib`` and an instrumentation for it, as package metadata."""
    site = root / "site"
    (site / f"fakelib-{library_version}.dist-info").mkdir(parents=True)
    (site / f"fakelib-{library_version}.dist-info" / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: fakelib\nVersion: {library_version}\n"
    )
    (site / "fakelib").mkdir()
    (site / "fakelib" / "__init__.py").write_text("")
    info = site / "opentelemetry_instrumentation_fakelib-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: opentelemetry-instrumentation-fakelib\nVersion: 0.1\n"
        f'Requires-Dist: fakelib {supported} ; extra == "instruments"\n'
    )
    (info / "entry_points.txt").write_text(
        "[opentelemetry_instrumentor]\nfakelib = fake_instrumentor:FakeInstrumentor\n"
    )
    (site / "fake_instrumentor.py").write_text(
        textwrap.dedent(
            f"""
            from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
            class FakeInstrumentor(BaseInstrumentor):
                def instrumentation_dependencies(self):
                    return ["fakelib {supported}"]
                def _instrument(self, **kwargs):
                    print("fakelib-instrumented", flush=True)
                def _uninstrument(self, **kwargs):
                    pass
            """
        )
    )
    return site


def test_unsupported_library_version_warns_once_per_process_tree(tmp_path: Path) -> None:
    site = _fake_instrumentation(tmp_path, "2.0", ">=1.0,<2.0")
    # A pre-fork master that does not run init(); its two workers each do.
    done = run_service(
        """
        import os, sys
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                import platform_obs
                handle = platform_obs.init(service_name="s")
                status = handle.instrumentations["fakelib"]
                print(f"status={status.status}|{status.package}|{status.version}|{status.supported}")
                print(f"httpx2={handle.instrumentations.get('httpx2', ('', 'absent'))[1]}")
                sys.stdout.flush()
                os._exit(0)
            os.waitpid(pid, 0)
        """,
        {**NO_EXPORT, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])},
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.json_lines if line["level"] == "warning"]
    # Named: the package, its version and the range the instrumentation supports; said once.
    assert [w["event"] for w in warnings] == [
        "fakelib 2.0 is installed but not instrumented: the installed "
        "opentelemetry-instrumentation supports fakelib>=1.0,<2.0"
    ]
    statuses = [line for line in done.stdout.splitlines() if line.startswith("status=")]
    assert statuses == ["status=unsupported version|fakelib|2.0|>=1.0,<2.0"] * 2
    # httpx's second instrumentor (for the httpx2 package, not installed) is no news.
    assert not any("httpx2" in w["event"] for w in warnings)


def test_supported_library_is_instrumented_on_its_first_import_and_init_imports_nothing(
    tmp_path: Path,
) -> None:
    site = _fake_instrumentation(tmp_path, "1.5", ">=1.0,<2.0")
    done = run_service(
        """
        import sys
        import platform_obs
        handle = platform_obs.init(service_name="s")
        heavy = [m for m in ("django", "celery", "sqlalchemy", "fastapi", "flask", "fakelib") if m in sys.modules]
        print("imported=" + ",".join(heavy))
        print("before=" + handle.instrumentations["fakelib"].status)
        import fakelib
        print("after=" + handle.instrumentations["fakelib"].status)
        print("instrumented=" + ",".join(handle.instrumented))
        """,
        {**NO_EXPORT, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])},
    )
    assert done.returncode == 0, done.stderr
    assert done.marker("imported") == ""  # discovery reads metadata; no library is imported
    assert done.marker("before") == "waiting for import"
    assert "fakelib-instrumented" in done.stdout
    assert done.marker("after") == "instrumented"
    assert "fakelib" in done.marker("instrumented").split(",")


def test_django_is_instrumented_at_setup_not_before_its_settings_exist() -> None:
    done = run_service(
        """
        import os, sys
        import platform_obs
        platform_obs.init(service_name="inventory")
        import django                     # settings not chosen yet: instrumenting now would
        from django.conf import settings  # configure empty ones behind the user's back
        print(f"configured_early={settings.configured}")
        os.environ["DJANGO_SETTINGS_MODULE"] = "inventory.settings"
        django.setup()
        print(f"middleware={settings.MIDDLEWARE[0]}")
        """,
        {**NO_EXPORT, "PYTHONPATH": str(REPO / "examples" / "django_service")},
    )
    assert done.returncode == 0, done.stderr
    assert done.marker("configured_early") == "False"
    assert "opentelemetry" in done.marker("middleware")


def test_missing_prometheus_extra_is_a_config_error_naming_it() -> None:
    done = run_service(
        """
        import sys
        sys.modules["opentelemetry.exporter.prometheus"] = None  # the extra is not installed
        import platform_obs
        try:
            platform_obs.init(service_name="s", metrics_exporter="prometheus")
        except platform_obs.ConfigError as exc:
            print(f"error={exc}")
        """,
        NO_EXPORT,
    )
    assert done.returncode == 0, done.stderr
    error = done.marker("error")
    assert "pip install 'platform-obs[prometheus]'" in error
    assert "metrics_exporter" in error


def test_missing_cli_extra_is_one_line_naming_it() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['click'] = None\n"
            "from platform_obs._cli_entry import main; main()",
            "validate",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "pip install 'platform-obs[cli]'" in proc.stderr
    assert "click is not installed" in proc.stderr


def test_no_environment_warns_once() -> None:
    code = """
        import warnings
        warnings.simplefilter("always")
        import platform_obs
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            platform_obs.init(service_name="s", traces_exporter="none", metrics_exporter="none",
                              logs_exporter="none")
            platform_obs.init(service_name="s", traces_exporter="none", metrics_exporter="none",
                              logs_exporter="none")
        print("warnings=" + json.dumps([str(w.message) for w in seen
                                        if w.category is platform_obs.MissingEnvironmentWarning]))
        """
    without = run_service("import json\n" + textwrap.dedent(code))
    assert without.returncode == 0, without.stderr
    (message,) = json.loads(without.marker("warnings"))
    assert "PLATFORM_OBS_ENVIRONMENT" in message and "environment=" in message
    with_env = run_service(
        "import json\n" + textwrap.dedent(code), {"PLATFORM_OBS_ENVIRONMENT": "production"}
    )
    assert json.loads(with_env.marker("warnings")) == []


def test_scaffold_init_line_shows_how_the_environment_reaches_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from platform_obs import cli as cli_module

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "checkout"\nversion = "1"\n')
    monkeypatch.chdir(tmp_path)
    flags = ["scaffold", "--team", "t", "--tier", "2", "--receiver", "t-oncall"]
    result = CliRunner().invoke(cli_module.cli, [*flags, "--env", "production", "--env", "staging"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "platform_obs.init(" in x)
    assert "PLATFORM_OBS_ENVIRONMENT=production or staging" in line


_FLASK_APP = """
    import json
    from flask import Flask
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry import trace
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    app = Flask("t")
    app.add_url_rule("/healthz", "h", lambda: "ok")
    app.add_url_rule("/metrics", "m", lambda: "ok")
    app.add_url_rule("/orders/<int:i>", "o", lambda i: "ok")
    client = app.test_client()
    client.get("/healthz"); client.get("/metrics"); client.get("/orders/1", headers={"X-Request-Id": "r-1"})
    print("spans=" + json.dumps([[s.name, {k: list(v) if isinstance(v, tuple) else v for k, v in s.attributes.items()}] for s in exporter.get_finished_spans()]))
"""


def _spans(init_args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> list:
    done = run_service(
        f'import platform_obs\nplatform_obs.init(service_name="s"{init_args})\n'
        + textwrap.dedent(_FLASK_APP),
        {**NO_EXPORT, **(env or {})},
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.marker("spans"))


def test_health_and_metrics_paths_are_excluded_by_default_and_headers_not_captured() -> None:
    spans = _spans("")
    assert [name for name, _ in spans] == ["GET /orders/<int:i>"]
    assert not [k for k in spans[0][1] if k.startswith("http.request.header.")]


def test_excluded_urls_and_captured_headers_by_argument_env_and_pyproject(tmp_path: Path) -> None:
    by_argument = _spans(", excluded_urls=['/orders/'], capture_request_headers=['x-request-id']")
    assert sorted(name for name, _ in by_argument) == ["GET /healthz", "GET /metrics"]
    by_env = _spans(
        "",
        {
            "PLATFORM_OBS_EXCLUDED_URLS": "/healthz",
            "PLATFORM_OBS_CAPTURE_REQUEST_HEADERS": "X-Request-Id",
        },
    )
    assert sorted(name for name, _ in by_env) == ["GET /metrics", "GET /orders/<int:i>"]
    orders = next(attrs for name, attrs in by_env if name.startswith("GET /orders"))
    assert orders["http.request.header.x_request_id"] == ["r-1"]
    # pyproject is below the environment: the env value wins over the file.
    (tmp_path / "pyproject.toml").write_text(
        '[tool.platform_obs]\nexcluded_urls = ["/metrics"]\n', encoding="utf-8"
    )
    from_file = _spans("", cwd=tmp_path)
    assert sorted(name for name, _ in from_file) == ["GET /healthz", "GET /orders/<int:i>"]
    both = _spans("", {"PLATFORM_OBS_EXCLUDED_URLS": "/healthz"}, cwd=tmp_path)
    assert sorted(name for name, _ in both) == ["GET /metrics", "GET /orders/<int:i>"]


def test_no_log_record_is_built_without_a_log_exporter() -> None:
    done = run_service(
        """
        from opentelemetry.sdk._logs import _internal as logs_internal
        import platform_obs
        built = []
        original = logs_internal.Logger.emit
        logs_internal.Logger.emit = lambda self, *a, **k: (built.append(1), original(self, *a, **k))[1]
        platform_obs.init(service_name="s", traces_exporter="none", metrics_exporter="none",
                          logs_exporter="none", environment="test")
        platform_obs.get_logger("t").info("hello")
        import logging; logging.getLogger("lib").warning("from stdlib")
        print(f"built={len(built)}")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.marker("built") == "0"
    assert [line["event"] for line in done.json_lines] == ["hello", "from stdlib"]


def test_doctor_lists_what_is_and_is_not_instrumented_and_why(tmp_path: Path) -> None:
    site = _fake_instrumentation(tmp_path, "2.0", ">=1.0,<2.0")
    done = run_service(
        """
        from platform_obs.provisioning.doctor import check_instrumentations
        result = check_instrumentations({})
        print(f"status={result.status}")
        print(f"detail={result.detail}")
        """,
        {"PYTHONPATH": os.pathsep.join([str(site), str(REPO)])},
    )
    assert done.returncode == 0, done.stderr
    assert done.marker("status") == "fail"
    detail = done.marker("detail")
    assert "instrumented: " in detail and "flask" in detail.split(";")[0]
    assert "fakelib: unsupported version (fakelib 2.0; the instrumentation supports" in detail
    assert "httpx2" not in detail
