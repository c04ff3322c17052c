"""Service-shape costs, each against its baseline measured in the same run, printed as ratios.

    python benchmarks/bench_shapes.py            # all cases
    python benchmarks/bench_shapes.py --quick    # fewer iterations and requests

* ``init()`` with no instrumentation installed and with every one this environment has (ten
  libraries and more: Flask, FastAPI, Django, Celery, requests, httpx, SQLAlchemy, psycopg, redis,
  gRPC) against ``instrument=False``; the old eager discovery (load every instrumentor at init())
  is shown for comparison. Peak RSS after ``init()`` too.
* a log line, three ways, against structlog's own default JSON pipeline: ``OTEL_LOGS_EXPORTER=none``
  (no LogRecord may be built), the OTLP bridge switched off, and stdout + OTLP to a live receiver.
* process exit: a short script with ``init()`` against the same script with a hand-written setup
  (both export to a live receiver).
* per-request cost of the FastAPI example on uvicorn with ``init()``, against the same routes with
  no telemetry and with a hand-written OTel setup, under a bounded loopback load generator.

Each case runs in fresh processes; the best of several processes is kept, ours and the baseline
interleaved so a noisy neighbour slows both.
"""

from __future__ import annotations

import compileall
import http.client
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

QUICK = "--quick" in sys.argv
ITER = 5_000 if QUICK else 20_000
REPEATS = 3 if QUICK else 5
REQUESTS = 1_000 if QUICK else 3_000
CONCURRENCY = 8
NO_EXPORT = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none"}


def _time_loop(fn: Any, iterations: int = ITER) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for _ in range(iterations):
            fn()
        best = min(best, (time.perf_counter() - t0) / iterations * 1e6)
    return best


def _devnull_stdout() -> Any:
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives for the process
    sys.stdout = sink
    return sink


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- init ------------------------------------------------------------------------------------------


def _init(nothing_installed: bool = False, **arguments: Any) -> float:
    t0 = time.perf_counter()
    import platform_obs

    if nothing_installed:  # what an environment without instrumentation packages sees
        import platform_obs._instrumentation as discovery

        discovery.entry_points = lambda group: []  # type: ignore[assignment]
    platform_obs.init(service_name="bench", environment="bench", **NO_EXPORT, **arguments)
    return (time.perf_counter() - t0) * 1e3


def case_init_no_instrument() -> float:
    return _init(instrument=False)


def case_init_none_installed() -> float:
    return _init(nothing_installed=True)


def case_init_all_installed() -> float:
    return _init()


def case_init_eager_all_installed() -> float:
    """The previous design: load and apply every installed instrumentor inside init()."""
    value = _init(instrument=False)
    t0 = time.perf_counter()
    from importlib.metadata import entry_points

    for ep in entry_points(group="opentelemetry_instrumentor"):
        if ep.name in ("logging", "system_metrics"):
            continue
        try:
            instrumentor = ep.load()()
            instrumentor.instrument(skip_dep_check=False)
        except Exception:
            pass
    return value + (time.perf_counter() - t0) * 1e3


def case_rss_no_instrument() -> float:
    _init(instrument=False)
    return _peak_rss_mib()


def case_rss_all_installed() -> float:
    _init()
    return _peak_rss_mib()


def case_count_installed() -> float:
    from importlib.metadata import entry_points

    return float(len({ep.dist.name for ep in entry_points(group="opentelemetry_instrumentor")}))


# --- log lines -------------------------------------------------------------------------------------


def _log_case(**arguments: Any) -> float:
    from opentelemetry import trace

    import platform_obs

    base = {**NO_EXPORT, **arguments}
    platform_obs.init(service_name="bench", environment="bench", log_format="json", **base)
    _devnull_stdout()
    log = platform_obs.get_logger("bench")
    with trace.get_tracer("b").start_as_current_span("req"):
        return _time_loop(lambda: log.info("order_placed", order_id=17, amount=9.5))


def case_log_exporter_none() -> float:
    return _log_case(instrument=False)  # OTEL_LOGS_EXPORTER=none, bridge left on


def case_log_bridge_off() -> float:
    return _log_case(instrument=False, log_to_otlp=False)


def case_log_otlp_live() -> float:
    return _log_case(
        instrument=False,
        logs_exporter="otlp",
        otlp_endpoint=os.environ["BENCH_OTLP_ENDPOINT"],
    )


def case_log_structlog_default() -> float:
    import structlog

    sink = _devnull_stdout()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=sink),
        wrapper_class=structlog.make_filtering_bound_logger(20),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger("bench")
    return _time_loop(lambda: log.info("order_placed", order_id=17, amount=9.5))


# --- process exit ----------------------------------------------------------------------------------

_EXIT_OURS = """
import time, platform_obs
platform_obs.init(service_name="bench", environment="bench")
from opentelemetry import trace
with trace.get_tracer("b").start_as_current_span("work"):
    platform_obs.get_logger("b").info("done")
print(time.time(), flush=True)
"""

_EXIT_HANDWRITTEN = """
import time, logging
import structlog
from opentelemetry import _logs, metrics, trace
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
resource = Resource({"service.name": "bench"})
tp = TracerProvider(resource=resource); tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(insecure=True)))
trace.set_tracer_provider(tp)
metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter(insecure=True))]))
lp = LoggerProvider(resource=resource); lp.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(insecure=True)))
_logs.set_logger_provider(lp)
logging.getLogger().addHandler(LoggingHandler(logger_provider=lp)); logging.getLogger().setLevel(logging.INFO)
structlog.configure(processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()])
with trace.get_tracer("b").start_as_current_span("work"):
    structlog.get_logger("b").info("done")
print(time.time(), flush=True)
"""


def _exit_ms(code: str) -> float:
    """Milliseconds from the end of the script's work to the process being gone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PLATFORM_OBS_"))}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = os.environ["BENCH_OTLP_ENDPOINT"]
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    done = time.time()
    finished = float(proc.stdout.strip().splitlines()[-1])
    return (done - finished) * 1e3


def case_exit_platform() -> float:
    return _exit_ms(_EXIT_OURS)


def case_exit_handwritten() -> float:
    return _exit_ms(_EXIT_HANDWRITTEN)


# --- the FastAPI example under load ----------------------------------------------------------------


def _load(port: int, requests: int, concurrency: int) -> float:
    """Seconds to send ``requests`` GETs over ``concurrency`` keep-alive connections (loopback)."""
    per_worker = requests // concurrency
    errors: list[str] = []

    def worker(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(per_worker):
            conn.request("GET", f"/orders/{offset * per_worker + i}")
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                errors.append(str(answer.status))
        conn.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests: {errors[:3]}")
    return elapsed


def _serve_and_load(mode: str) -> float:
    """Microseconds per request for one uvicorn worker serving the app in ``mode``."""
    from shape_servers import free_port, get

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PLATFORM_OBS_"))}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "PLATFORM_OBS_ENVIRONMENT": "bench",
            "PLATFORM_OBS_LOG_FORMAT": "json",
            "OTEL_EXPORTER_OTLP_ENDPOINT": os.environ["BENCH_OTLP_ENDPOINT"],
            "BENCH_MODE": mode,
        }
    )
    if mode == "platform":
        target = ["--app-dir", str(ROOT / "examples" / "fastapi_service"), "app:app"]
    else:
        target = ["--app-dir", str(ROOT / "benchmarks"), "fastapi_baselines:app"]
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", *target, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(f"http://127.0.0.1:{port}/healthz") == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn ({mode}) did not start")
            time.sleep(0.2)
        _load(port, REQUESTS // 5, CONCURRENCY)  # warm-up
        best = min(_load(port, REQUESTS, CONCURRENCY) for _ in range(2))
        return best / REQUESTS * 1e6
    finally:
        server.terminate()
        server.wait(30)


def case_request_platform() -> float:
    return _serve_and_load("platform")


def case_request_bare() -> float:
    return _serve_and_load("bare")


def case_request_handwritten() -> float:
    return _serve_and_load("handwritten")


CASES = {name[len("case_") :]: fn for name, fn in globals().items() if name.startswith("case_")}


def _run(case: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PLATFORM_OBS_"))}
    out = subprocess.run(
        [sys.executable, __file__, "--case", case, *(["--quick"] if QUICK else [])],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=str(ROOT),
    )
    return float(json.loads(out.stderr.strip().splitlines()[-1])["value"])


def _best(cases: list[str], runs: int) -> list[float]:
    best = [float("inf")] * len(cases)
    for _ in range(runs):
        for i, case in enumerate(cases):
            best[i] = min(best[i], _run(case))
    return best


def main() -> None:
    if "--case" in sys.argv:
        value = CASES[sys.argv[sys.argv.index("--case") + 1]]()
        print(json.dumps({"value": value}), file=sys.__stderr__, flush=True)
        os._exit(0)

    from otlp_receiver import OtlpReceiver

    compileall.compile_dir(str(ROOT / "platform_obs"), quiet=1)
    runs = 2 if QUICK else 3
    with OtlpReceiver() as rx:
        os.environ["BENCH_OTLP_ENDPOINT"] = rx.grpc_endpoint
        installed = int(_run("count_installed"))
        print(f"{'case':58} {'value':>9} {'baseline':>9} {'ratio':>7}")

        def row(label: str, value: float, baseline: float) -> None:
            print(f"{label:58} {value:9.2f} {baseline:9.2f} {value / baseline:6.2f}x")

        none, every, eager, off = _best(
            ["init_none_installed", "init_all_installed", "init_eager_all_installed",
             "init_no_instrument"],
            3 if QUICK else 5,
        )  # fmt: skip
        row("init() ms, no instrumentation installed vs instrument=False", none, off)
        row(f"init() ms, {installed} instrumentations installed vs instrument=False", every, off)
        row("  (eager: every instrumentor loaded at init() vs instrument=False)", eager, off)
        rss_all, rss_off = _best(["rss_all_installed", "rss_no_instrument"], runs)
        row("peak RSS MiB after init(), all installed vs instrument=False", rss_all, rss_off)

        exporter_none, bridge_off, live, bare = _best(
            ["log_exporter_none", "log_bridge_off", "log_otlp_live", "log_structlog_default"],
            runs,
        )
        row("log line us, OTEL_LOGS_EXPORTER=none vs bare structlog", exporter_none, bare)
        row("log line us, OTLP bridge off vs bare structlog", bridge_off, bare)
        row("log line us, stdout + OTLP (live receiver) vs bare structlog", live, bare)

        exit_ours, exit_hand = _best(["exit_platform", "exit_handwritten"], runs)
        row("process exit ms (flush + shutdown) vs hand-written setup", exit_ours, exit_hand)

        ours, bare_req, hand = _best(
            ["request_platform", "request_bare", "request_handwritten"], 2 if QUICK else 3
        )
        row("FastAPI example us/request vs no telemetry", ours, bare_req)
        row("FastAPI example us/request vs hand-written OTel setup", ours, hand)
        print(
            f"  per-request overhead: {ours - bare_req:.1f} us over no telemetry, "
            f"{ours - hand:+.1f} us against the hand-written setup "
            f"({REQUESTS} requests, {CONCURRENCY} keep-alive connections, one uvicorn worker)"
        )
    print(
        f"(best of {REPEATS} x {ITER} iterations per log case and of several processes per case, "
        "cases interleaved; the minimum is the least noisy estimator on a shared machine)"
    )


if __name__ == "__main__":
    main()
