"""``platform-obs``: validate, render, plan and apply service observability configs.

Thin on purpose: parses arguments, calls ``platform_obs.provisioning``, prints. Heavy imports
(Grafana client, YAML, rendering) happen inside the commands that need them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from platform_obs.provisioning.apply import ApplyResult
    from platform_obs.provisioning.grafana import Grafana
    from platform_obs.provisioning.model import Rendered
    from platform_obs.provisioning.plan import Plan

# Exit codes (also in docs/cli.md).
EXIT_OK = 0
EXIT_INVALID = 1  # invalid config, bad usage, missing GRAFANA_URL/GRAFANA_TOKEN, refused prune
EXIT_CHANGES = 2  # plan --detailed-exitcode: changes present
EXIT_GRAFANA = 3  # Grafana error: auth, permission, network, conflict; nothing or little written
EXIT_PARTIAL = 4  # apply wrote some objects but others failed

EXIT_CODES_HELP = """
\b
Exit codes:
  0  success; for plan: no changes (or changes without --detailed-exitcode)
  1  invalid configuration or usage (nothing was written)
  2  plan --detailed-exitcode only: changes are present
  3  Grafana error: authentication, permission, network, conflict
  4  apply partly failed: some objects were written, others failed
"""


class _Cli(click.Group):
    """Maps click's usage errors to exit 1, so 2 keeps meaning "changes present"."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(EXIT_INVALID)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(EXIT_INVALID)
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("platform-obs")
    except PackageNotFoundError:  # running from a source checkout
        return "0+unknown"


@click.group(cls=_Cli, epilog=EXIT_CODES_HELP)
@click.version_option(version=_version(), prog_name="platform-obs")
def cli() -> None:
    """Provision standard Grafana dashboards and alert rules from service config files.

    Typical CI use: `validate` and `plan` on pull requests, `apply` on the main branch.
    GRAFANA_URL and GRAFANA_TOKEN are read from the environment only.
    """


_paths = click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)
_templates = click.option(
    "--templates",
    "templates_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory of dashboard/alert templates (default: the templates shipped in the package).",
)
_policy = click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Platform policy file (default: policies/platform.yaml of --templates, else the "
    "packaged one).",
)
_promtool = click.option(
    "--promtool/--no-promtool",
    default=True,
    show_default=True,
    help="Check generated Prometheus rules with promtool when it is installed.",
)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _build(
    paths: Sequence[Path], templates_dir: Path | None, promtool: bool, **options: Any
) -> Rendered:
    """Validate and render; ``options`` go to ``pipeline.build`` (policy_file, grafana_url ...)."""
    from platform_obs.provisioning.model import Problem, ValidationFailed
    from platform_obs.provisioning.pipeline import build

    warnings: list[Problem] = []
    try:
        rendered = build(
            list(paths), templates_dir, run_promtool=promtool, warnings=warnings, **options
        )
    except ValidationFailed as exc:
        _warn(warnings)
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        n = len(exc.problems)
        _fail(f"{n} problem{'s' if n != 1 else ''} found; nothing was written", EXIT_INVALID)
    _warn(warnings)
    return rendered


def _os_reason(exc: OSError) -> str:
    """``[Errno 20] Not a directory: 'x'`` as one plain clause: what failed, and on which path."""
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, (FileExistsError, NotADirectoryError)):  # mkdir through a file
        reason = "a file is in the way where a directory is needed"
    return f"{reason} ({exc.filename})" if exc.filename else reason


def _warn(warnings: Sequence[Any]) -> None:
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


def _options(**values: Any) -> dict[str, Any]:
    """Only the options the user set, so ``_build`` keeps its three-argument form otherwise."""
    return {k: v for k, v in values.items() if v not in (None, False)}


def _retry_notice(text: str) -> None:
    click.echo(f"warning: {text}", err=True)


def _connect(parallelism: int | None = None) -> Grafana:
    """A Grafana client from GRAFANA_URL/GRAFANA_TOKEN; each retry is announced on stderr."""
    from platform_obs.provisioning.grafana import ConfigurationError, Grafana

    options: dict[str, Any] = {"on_retry": _retry_notice}
    if parallelism is not None:
        options["parallelism"] = parallelism
    try:
        return Grafana.from_env(**options)
    except ConfigurationError as exc:
        _fail(str(exc), EXIT_INVALID)


def _grafana_errors(fn: Callable[[], Any]) -> Any:
    from platform_obs.provisioning.grafana import ConfigurationError, GrafanaError

    try:
        return fn()
    except ConfigurationError as exc:
        _fail(str(exc), EXIT_INVALID)
    except GrafanaError as exc:
        _fail(str(exc), EXIT_GRAFANA)


def _check_receivers(rendered: Rendered, grafana: Grafana) -> None:
    """Refuse rules routed to contact points Grafana does not have (before any write)."""
    from platform_obs.provisioning import receivers

    problems = _grafana_errors(lambda: receivers.check(rendered, grafana))
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        n = len(problems)
        _fail(f"{n} problem{'s' if n != 1 else ''} found; nothing was written", EXIT_INVALID)


# --- validate / render --------------------------------------------------------------------------


@cli.command(epilog=EXIT_CODES_HELP)
@_paths
@_templates
@_policy
@_promtool
def validate(
    paths: tuple[Path, ...], templates_dir: Path | None, policy_file: Path | None, promtool: bool
) -> int:
    """Check service config files offline (no Grafana needed), platform policy included.

    Prints every problem with file, line and key; exits 1 if there is any. Policy warnings are
    printed and do not fail.
    """
    rendered = _build(paths, templates_dir, promtool, **_options(policy_file=policy_file))
    click.echo(
        f"OK: {len(rendered.services)} service(s), {len(rendered.dashboards)} dashboard(s), "
        f"{len(rendered.rule_groups)} alert rule group(s)"
    )
    return EXIT_OK


@cli.command(epilog=EXIT_CODES_HELP)
@_paths
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write dashboards, alert rules and provisioning files into.",
)
@click.option(
    "--grafana-url",
    help="Public Grafana URL for the links in the Backstage catalog files (default: relative "
    "/d/<uid> links). Not used to connect.",
)
@_templates
@_policy
@_promtool
def render(
    paths: tuple[Path, ...],
    out_dir: Path,
    grafana_url: str | None,
    templates_dir: Path | None,
    policy_file: Path | None,
    promtool: bool,
) -> int:
    """Validate, then write Grafana and Prometheus files (for GitOps / file provisioning).

    Also writes backstage/<service>.catalog-info.yaml with the annotations the Backstage Grafana
    plugin reads. Needs no Grafana server. Nothing is written when validation fails.
    """
    from platform_obs.provisioning.backstage import grafana_url_problem
    from platform_obs.provisioning.outputs import write_all

    if grafana_url is not None and (why := grafana_url_problem(grafana_url)):
        _fail(why, EXIT_INVALID)
    rendered = _build(
        paths,
        templates_dir,
        promtool,
        backstage_catalog=True,
        **_options(policy_file=policy_file, grafana_url=grafana_url),
    )
    try:
        written = write_all(rendered, out_dir)
    except OSError as exc:
        _fail(f"cannot write the output under --out {out_dir}: {_os_reason(exc)}", EXIT_INVALID)
    for path in written:
        click.echo(str(path))
    click.echo(f"Wrote {len(written)} file(s) to {out_dir}", err=True)
    return EXIT_OK


# --- plan / apply -------------------------------------------------------------------------------

_prune = click.option(
    "--prune",
    is_flag=True,
    help="Also delete objects this tool created for the given services that are no longer "
    "declared. Never touches objects without the platform-obs marker or file-provisioned ones.",
)
_adopt = click.option(
    "--adopt",
    is_flag=True,
    help="Take over objects this config declares that platform-obs cannot prove it created "
    "(no ownership marker, or another service's): overwrite them and add the marker. Without "
    "it such updates are refused. Never deletes anything not proven ours.",
)
_deep = click.option(
    "--deep",
    is_flag=True,
    help="Fetch and compare every managed dashboard instead of trusting its content-hash tag "
    "(catches edits made in the Grafana UI; one request per dashboard).",
)


def _print_plan(plan: Plan, output: str) -> None:
    from platform_obs.provisioning import plan as planmod

    render_fn = {
        "text": planmod.render_text,
        "json": planmod.render_json,
        "markdown": planmod.render_markdown,
    }[output]
    click.echo(render_fn(plan), nl=False)


@cli.command(epilog=EXIT_CODES_HELP)
@_paths
@_prune
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="Plan format; markdown suits a CI job summary or pull-request comment.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when there are changes, 0 when there are none (like terraform plan).",
)
@_deep
@_adopt
@_templates
@_policy
@_promtool
def plan(
    paths: tuple[Path, ...],
    prune: bool,
    output: str,
    detailed_exitcode: bool,
    deep: bool,
    adopt: bool,
    templates_dir: Path | None,
    policy_file: Path | None,
    promtool: bool,
) -> int:
    """Show what apply would change in Grafana (reads only, writes nothing).

    Reads GRAFANA_URL and GRAFANA_TOKEN from the environment.
    """
    from platform_obs.provisioning.plan import build_plan

    rendered = _build(paths, templates_dir, promtool, **_options(policy_file=policy_file))
    with _connect() as grafana:
        the_plan = _grafana_errors(
            lambda: build_plan(rendered, grafana, prune=prune, deep=deep, adopt=adopt)
        )
        _check_receivers(rendered, grafana)
    _print_plan(the_plan, output)
    if the_plan.refused:
        _fail(_refused_message(the_plan), EXIT_INVALID)
    if detailed_exitcode and the_plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


@cli.command(epilog=EXIT_CODES_HELP)
@_paths
@_prune
@click.option(
    "--max-deletes",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="With --prune: refuse when more objects than this would be deleted.",
)
@click.option("--force", is_flag=True, help="Delete even when over --max-deletes.")
@click.option(
    "--allow-ui-edits",
    is_flag=True,
    help="Leave alert rules editable in the Grafana UI (sends X-Disable-Provenance). Default: "
    "rules are locked in the UI so this tool stays the source of truth.",
)
@click.option("--dry-run", is_flag=True, help="Only print the plan; write nothing.")
@click.option(
    "--message",
    "-m",
    help="Dashboard version message. Default: the CI commit and run "
    "(GITHUB_SHA/GITHUB_RUN_ID, CI_COMMIT_SHA/CI_PIPELINE_ID, BUILD_SOURCEVERSION/BUILD_BUILDID).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: only when stderr is a terminal).",
)
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Changes written to Grafana at the same time (folders still before their contents). "
    "Fewer when Grafana answers 429 Too Many Requests.",
)
@_deep
@_adopt
@_templates
@_policy
@_promtool
def apply(
    paths: tuple[Path, ...],
    prune: bool,
    max_deletes: int,
    force: bool,
    allow_ui_edits: bool,
    dry_run: bool,
    message: str | None,
    progress: bool | None,
    parallelism: int,
    deep: bool,
    adopt: bool,
    templates_dir: Path | None,
    policy_file: Path | None,
    promtool: bool,
) -> int:
    """Validate, plan, then write the changes to Grafana.

    If any config is invalid, nothing is written. Unchanged objects are not written, so running
    apply twice is safe. Reads GRAFANA_URL and GRAFANA_TOKEN from the environment.
    """
    from platform_obs.provisioning.apply import (
        TooManyDeletes,
        apply_plan,
        check_deletes,
        ci_message,
    )
    from platform_obs.provisioning.plan import build_plan

    rendered = _build(paths, templates_dir, promtool, **_options(policy_file=policy_file))
    with _connect(parallelism) as grafana:
        the_plan: Plan = _grafana_errors(
            lambda: build_plan(rendered, grafana, prune=prune, deep=deep, adopt=adopt)
        )
        _check_receivers(rendered, grafana)  # before any write
        _print_plan(the_plan, "text")
        if the_plan.refused:
            _fail(_refused_message(the_plan), EXIT_INVALID)
        if dry_run or not the_plan.has_changes:
            return EXIT_OK
        try:
            check_deletes(the_plan, max_deletes=max_deletes, force=force)
        except TooManyDeletes as exc:
            _fail(str(exc), EXIT_INVALID)
        show = sys.stderr.isatty() if progress is None else progress
        with _Progress(len(the_plan.writes), enabled=show) as bar:
            result = apply_plan(
                the_plan,
                grafana,
                message=ci_message(explicit=message),
                allow_ui_edits=allow_ui_edits,
                max_deletes=max_deletes,
                force=force,
                on_step=bar.advance,
                parallelism=parallelism,
            )
    return _report(result)


def _refused_message(the_plan: Plan) -> str:
    # Also on stderr: with --output json/markdown the plan itself often goes to a file.
    lines = [f"  {c.reason}" for c in the_plan.refused]
    return (
        f"{len(lines)} object(s) declared here are not proven to be this config's; nothing was "
        "written. Resolve each as its message says, or pass --adopt to take them over:\n"
        + "\n".join(lines)
    )


def _report(result: ApplyResult) -> int:
    """Each failure once (objects failing for the same reason share one line), then the summary.

    Exit 4 only when something was written and something else failed; a run that wrote nothing
    is a plain Grafana error (3).
    """
    said: dict[str, str] = {}
    for o in result.failures:
        what = f"{o.change.kind} {o.change.key}"
        # Messages start with "<operation> <object>: "; the rest is the reason.
        reason = o.error.split(": ", 1)[-1]
        if reason in said:
            click.echo(f"failed: {what}: same error as {said[reason]}", err=True)
            continue
        said[reason] = what
        click.echo(f"failed: {what}: {o.error}", err=True)
    n = result.counts()
    line = (
        f"Apply: {n['created']} created, {n['updated']} updated, {n['deleted']} deleted, "
        f"{n['unchanged']} unchanged, {n['failed']} failed"
    )
    if n["skipped"]:
        line += f", {n['skipped']} skipped"
    if n["not-attempted"]:
        line += f", {n['not-attempted']} not attempted"
    click.echo(line + ".")
    if result.aborted:
        # The cause is printed above, once; here only what it meant for the run.
        _fail(
            f"apply stopped after the error above; {n['not-attempted']} change(s) not attempted "
            "(every further request would fail the same way)",
            EXIT_GRAFANA,
        )
    if not result.failures:
        return EXIT_OK
    return EXIT_PARTIAL if result.wrote else EXIT_GRAFANA


class _Progress:
    """A progress bar on stderr (click's: no extra dependency), or nothing."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and total > 0
        self._bar: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            self._bar = click.progressbar(
                length=self.total,
                label="applying",
                file=sys.stderr,
                show_pos=True,
                item_show_func=lambda item: item,
            )
            self._bar.__enter__()
        return self

    def advance(self, outcome: Any) -> None:
        if self._bar is not None:
            self._bar.update(1, current_item=f"{outcome.change.kind} {outcome.change.key}")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


# --- onboarding: scaffold / doctor --------------------------------------------------------------


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):  # closed or replaced stdin
        return False


def _ask_name(label: str, default: str | None) -> str:
    from platform_obs.provisioning.scaffold import name_problem

    def check(value: str) -> str:
        why = name_problem(value.strip())
        if why:
            raise click.BadParameter(f"{value!r}: expected {why}")
        return value.strip()

    return str(click.prompt(label, default=default, value_proc=check))


@cli.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("platform-obs.yaml"),
    show_default=True,
    help="File to write.",
)
@click.option("--service", help="Service name (default: [project].name of pyproject.toml).")
@click.option("--team", help="Owning team.")
@click.option("--tier", type=click.IntRange(1, 3), help="1 business critical, 2, 3 best effort.")
@click.option("--receiver", help="Grafana contact point for the service's alerts.")
@click.option(
    "--env",
    "environments",
    multiple=True,
    help="deployment.environment.name the alerts watch (repeatable; default production).",
)
@click.option("--runbook-base-url", help="Where the team's runbooks live.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option(
    "--interactive/--non-interactive",
    default=None,
    help="Ask for missing values (default: only when stdin is a terminal).",
)
@click.option("--yes", "-y", is_flag=True, help="Same as --non-interactive.")
@_templates
@_policy
def scaffold(
    output: Path,
    service: str | None,
    team: str | None,
    tier: int | None,
    receiver: str | None,
    environments: tuple[str, ...],
    runbook_base_url: str | None,
    force: bool,
    interactive: bool | None,
    yes: bool,
    templates_dir: Path | None,
    policy_file: Path | None,
) -> int:
    """Write a commented service config for this repository.

    The service name comes from pyproject.toml when present; team, tier and receiver are asked
    for, or passed as flags. The file is checked like `validate` before it is written, and an
    existing file is never overwritten without --force.
    """
    from platform_obs.provisioning import scaffold as sc
    from platform_obs.provisioning.model import Problem, ValidationFailed
    from platform_obs.provisioning.pipeline import build
    from platform_obs.provisioning.templates import load_templates

    if output.exists() and not force:
        _fail(f"{output} already exists; not overwriting it (use --force to replace it)", 1)
    ask = (not yes) and (interactive if interactive is not None else _stdin_is_terminal())
    answers = sc.Answers(
        service=service,
        team=team,
        tier=tier,
        receiver=receiver,
        environments=environments or ("production",),
        runbook_base_url=runbook_base_url,
    )
    found = sc.project_name(output.resolve().parent)
    if answers.service is None and found:
        answers.service = found[0]
        click.echo(f"Service name {found[0]!r} from {found[1]}", err=True)
    if ask:
        answers.service = _ask_name("Service name", answers.service)
        answers.team = _ask_name("Owning team", answers.team)
        if answers.tier is None:
            answers.tier = click.prompt(
                "Tier (1 business critical, 2 important, 3 best effort)",
                type=click.IntRange(1, 3),
                default=2,
            )
        if answers.receiver is None:
            answers.receiver = click.prompt(
                "Grafana contact point for alerts", default=f"{answers.team}-oncall"
            )
    missing = answers.missing()
    if missing:
        why = (
            "--non-interactive"
            if not ask and (yes or interactive is False)
            else ("stdin is not a terminal")
        )
        _fail(
            f"missing {', '.join(missing)} ({why}, so nothing is asked); pass them as flags, "
            "e.g. platform-obs scaffold --team payments --tier 2 --receiver payments-oncall",
            EXIT_INVALID,
        )
    for flag, value in (("--service", answers.service), ("--team", answers.team)):
        bad = sc.name_problem(str(value))
        if bad:
            _fail(f"{flag} {value!r} is not a valid name: expected {bad}", EXIT_INVALID)

    try:
        text = sc.render(answers, load_templates(templates_dir), str(output))
    except ValidationFailed as exc:
        _fail(f"templates are invalid: {exc}", EXIT_INVALID)
    # Check exactly what would be written, with the same pipeline as `validate`.
    import tempfile

    warnings: list[Problem] = []
    with tempfile.TemporaryDirectory(prefix="po-scaffold-") as tmp:
        candidate = Path(tmp) / output.name
        candidate.write_text(text, encoding="utf-8")
        try:
            build(
                [candidate],
                templates_dir,
                run_promtool=False,
                policy_file=policy_file,
                warnings=warnings,
            )
        except ValidationFailed as exc:
            for problem in exc.problems:
                click.echo(f"error: {str(problem).replace(str(candidate), str(output))}", err=True)
            _fail("the generated config does not validate; nothing was written", EXIT_INVALID)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {output}: {_os_reason(exc)}", EXIT_INVALID)
    for warning in warnings:
        click.echo(f"note: {str(warning).replace(str(candidate), str(output))}", err=True)
    click.echo(
        f"Wrote {output} for service {answers.service!r} "
        f"(team {answers.team}, tier {answers.tier}, receiver {answers.receiver}).\n"
        "\nAdd one line at start-up, before the web framework's app object is created:\n\n"
        f"    import platform_obs\n    {sc.init_line(str(answers.service), tuple(answers.environments))}\n\n"
        "Next:\n"
        f"    platform-obs validate {output}\n"
        f"    platform-obs plan {output}      # needs GRAFANA_URL and GRAFANA_TOKEN\n"
        f"    platform-obs apply {output}     # usually CI on the main branch\n"
        f"    platform-obs doctor {output}    # when a dashboard stays empty"
    )
    return EXIT_OK


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument(
    "config",
    required=False,
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("platform-obs.yaml"),
)
@click.option(
    "--prometheus-url",
    envvar="PLATFORM_OBS_PROMETHEUS_URL",
    help="Prometheus base URL: check the service's series exist with the dashboards' labels "
    "(env PLATFORM_OBS_PROMETHEUS_URL).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=3.0,
    show_default=True,
    help="Seconds to wait for each server.",
)
@_templates
@_policy
def doctor(
    config: Path,
    prometheus_url: str | None,
    timeout: float,
    templates_dir: Path | None,
    policy_file: Path | None,
) -> int:
    """Why is my dashboard empty? Check config, collector, Prometheus and Grafana.

    Prints a checklist (✓ passed, ✗ failed with a fix, \u2013 skipped). The OTLP endpoint is resolved
    from the environment exactly as platform_obs.init() resolves it, and sent a test span, metric
    point and log record. Grafana is checked when GRAFANA_URL and GRAFANA_TOKEN are set. Exits 1
    when any check failed.
    """
    from platform_obs.provisioning import doctor as doc

    results = doc.run(
        config,
        prometheus_url=prometheus_url,
        templates_dir=templates_dir,
        policy_file=policy_file,
        timeout=timeout,
    )
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "".join(doc.SYMBOLS.values()).encode(encoding)
        ascii_only = False
    except (UnicodeEncodeError, LookupError):
        ascii_only = True
    click.echo(doc.report(results, ascii_only=ascii_only), nl=False)
    return EXIT_INVALID if any(r.failed for r in results) else EXIT_OK


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="platform-obs")
    raise AssertionError("unreachable")  # _Cli.main always exits
