"""``platform-obs``: validate, render, plan and apply service observability configs.

Thin on purpose: parses arguments, calls ``platform_obs.provisioning``, prints. Heavy imports
(Grafana client, YAML, rendering) happen inside the commands that need them.
"""

from __future__ import annotations

import gc
import os
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

#: Default of every command's PATH argument.
DEFAULT_CONFIG = Path("platform-obs.yaml")
#: Commands in the order of the workflow, which is also the order of ``--help``.
WORKFLOW = ("scaffold", "validate", "render", "plan", "apply", "doctor")


def _exit_codes(*rows: tuple[int, str]) -> str:
    lines = "\n".join(f"  {code}  {meaning}" for code, meaning in rows)
    return f"\n\b\nExit codes:\n{lines}\n"


EXIT_CODES_HELP = _exit_codes(
    (0, "success; for plan: no changes (or changes without --detailed-exitcode)"),
    (1, "invalid configuration or usage (nothing was written)"),
    (2, "plan --detailed-exitcode only: changes are present"),
    (3, "Grafana error: authentication, permission, network, conflict"),
    (4, "apply partly failed: some objects were written, others failed"),
)
_INVALID = (1, "invalid configuration or usage (nothing was written)")
_GRAFANA = (3, "Grafana error: authentication, permission, network, conflict")
COMMAND_EXIT_CODES = {
    "scaffold": _exit_codes(
        (0, "the config was written"),
        (
            1,
            "a value is missing, the file exists (without --force) or the result does not "
            "validate (nothing was written)",
        ),
    ),
    "validate": _exit_codes((0, "every config is valid"), (1, "problems found, or bad usage")),
    "render": _exit_codes((0, "files written"), _INVALID),
    "plan": _exit_codes(
        (0, "no changes (or changes without --detailed-exitcode)"),
        _INVALID,
        (2, "with --detailed-exitcode: changes are present"),
        _GRAFANA,
    ),
    "apply": _exit_codes(
        (0, "applied, or nothing to do"),
        (
            1,
            "invalid configuration or usage, prune over --max-deletes, or cancelled at the "
            "prompt (nothing was written)",
        ),
        _GRAFANA,
        (4, "partly failed: some objects were written, others failed"),
    ),
    "doctor": _exit_codes((0, "every check passed or was skipped"), (1, "a check failed")),
}


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

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Workflow order, not alphabetical."""
        rank = {name: i for i, name in enumerate(WORKFLOW)}
        return sorted(self.commands, key=lambda name: (rank.get(name, len(rank)), name))


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


_paths = click.argument("paths", metavar="[PATH]...", nargs=-1, type=click.Path(path_type=Path))


def _config_paths(paths: Sequence[Path]) -> list[Path]:
    """The PATH arguments, or the default; a path that does not exist is a usage error."""
    chosen = list(paths) or [DEFAULT_CONFIG]
    for path in chosen:
        if not path.exists():
            hint = (
                " (the default; pass config files or a directory, or run `platform-obs "
                "scaffold` to write one)"
                if not paths
                else ""
            )
            _fail(f"{path}: no such file or directory{hint}", EXIT_INVALID)
    return chosen


def _command(name: str) -> Callable[[Callable[..., Any]], click.Command]:
    """A subcommand whose help ends with the exit codes that apply to it."""
    return cli.command(name, epilog=COMMAND_EXIT_CODES[name])


_color = click.option(
    "--color/--no-color",
    default=None,
    help="Colour the plan (default: when stdout is a terminal and NO_COLOR is not set).",
)
_show_json = click.option(
    "--diff",
    "show_json",
    is_flag=True,
    help="Also show the raw JSON diff of every update (what Grafana stores).",
)


def _use_color(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


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


def _build_plan(rendered: Rendered, grafana: Grafana, **options: Any) -> Plan:
    """Read Grafana and diff (``options`` go to ``plan.build_plan``); Grafana errors exit 3."""
    from platform_obs.provisioning.plan import build_plan

    return _grafana_errors(lambda: build_plan(rendered, grafana, **options))


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


@_command("validate")
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

    PATH: service config files, or directories whose *.yaml/*.yml files are service configs
    (default: platform-obs.yaml in the current directory).
    """
    paths = tuple(_config_paths(paths))
    rendered = _build(paths, templates_dir, promtool, **_options(policy_file=policy_file))
    click.echo(
        f"OK: {len(rendered.services)} service(s), {len(rendered.dashboards)} dashboard(s), "
        f"{len(rendered.rule_groups)} alert rule group(s)"
    )
    return EXIT_OK


@_command("render")
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

    PATH: service config files, or directories whose *.yaml/*.yml files are service configs
    (default: platform-obs.yaml in the current directory).
    """
    from platform_obs.provisioning.backstage import grafana_url_problem
    from platform_obs.provisioning.outputs import iter_files, write_files

    paths = tuple(_config_paths(paths))
    if grafana_url is not None and (why := grafana_url_problem(grafana_url)):
        _fail(why, EXIT_INVALID)
    files: list[tuple[str, str]] = []  # made while the last checks run; written once they pass

    def serialise(rendered: Rendered) -> None:
        files[:] = iter_files(rendered)

    _build(
        paths,
        templates_dir,
        promtool,
        backstage_catalog=True,
        meanwhile=serialise,
        **_options(policy_file=policy_file, grafana_url=grafana_url),
    )
    try:
        written = write_files(files, out_dir)
    except OSError as exc:
        _fail(f"cannot write the output under --out {out_dir}: {_os_reason(exc)}", EXIT_INVALID)
    if written:
        click.echo("\n".join(map(str, written)))
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
_parallelism = click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Requests to Grafana at the same time: apply's writes (folders still before their "
    "contents), and reads where Grafana has no bulk endpoint. Fewer when Grafana answers 429 "
    "Too Many Requests.",
)
_deep = click.option(
    "--deep",
    is_flag=True,
    help="Fetch and compare every managed dashboard instead of trusting its content-hash tag "
    "(catches edits made in the Grafana UI; one request per dashboard).",
)


def _print_plan(plan: Plan, output: str, *, color: bool = False, show_json: bool = False) -> None:
    from platform_obs.provisioning import plan_view

    if output == "json":
        text = plan_view.render_json(plan)
    elif output == "markdown":
        text = plan_view.render_markdown(plan, show_json=show_json)
    else:
        text = plan_view.render_text(plan, color=color, show_json=show_json)
    click.echo(text, nl=False, color=color)


@_command("plan")
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
@_show_json
@_color
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when there are changes, 0 when there are none (like terraform plan).",
)
@_parallelism
@_deep
@_adopt
@_templates
@_policy
@_promtool
def plan(
    paths: tuple[Path, ...],
    prune: bool,
    output: str,
    show_json: bool,
    color: bool | None,
    detailed_exitcode: bool,
    parallelism: int,
    deep: bool,
    adopt: bool,
    templates_dir: Path | None,
    policy_file: Path | None,
    promtool: bool,
) -> int:
    """Show what apply would change in Grafana (reads only, writes nothing).

    Each change is shown per service, object and alert rule or panel, in the config's terms
    (for: 5m → 10m). Reads GRAFANA_URL and GRAFANA_TOKEN from the environment.

    PATH: service config files, or directories whose *.yaml/*.yml files are service configs
    (default: platform-obs.yaml in the current directory).
    """
    paths = tuple(_config_paths(paths))
    rendered = _build(paths, templates_dir, promtool, **_options(policy_file=policy_file))
    with _connect(parallelism) as grafana:
        the_plan = _build_plan(rendered, grafana, prune=prune, deep=deep, adopt=adopt)
        _check_receivers(rendered, grafana)
    _print_plan(the_plan, output, color=_use_color(color), show_json=show_json)
    if the_plan.refused:
        _fail(_refused_message(the_plan), EXIT_INVALID)
    if detailed_exitcode and the_plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


@_command("apply")
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
    "--yes",
    "-y",
    is_flag=True,
    help="Do not ask for confirmation (it is only asked when stdin is a terminal).",
)
@_show_json
@_color
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
@_parallelism
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
    yes: bool,
    show_json: bool,
    color: bool | None,
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
    apply twice is safe. On a terminal the plan is shown and apply asks before writing (--yes
    skips the question; without a terminal, as in CI, nothing is asked). Reads GRAFANA_URL and
    GRAFANA_TOKEN from the environment.

    PATH: service config files, or directories whose *.yaml/*.yml files are service configs
    (default: platform-obs.yaml in the current directory).
    """
    from platform_obs.provisioning.apply import (
        TooManyDeletes,
        apply_plan,
        check_deletes,
        ci_message,
    )

    paths = tuple(_config_paths(paths))
    rendered = _build(paths, templates_dir, promtool, **_options(policy_file=policy_file))
    with _connect(parallelism) as grafana:
        the_plan = _build_plan(rendered, grafana, prune=prune, deep=deep, adopt=adopt)
        _check_receivers(rendered, grafana)  # before any write
        _print_plan(the_plan, "text", color=_use_color(color), show_json=show_json)
        if the_plan.refused:
            _fail(_refused_message(the_plan), EXIT_INVALID)
        if dry_run or not the_plan.has_changes:
            return EXIT_OK
        try:
            check_deletes(the_plan, max_deletes=max_deletes, force=force)
        except TooManyDeletes as exc:
            _fail(str(exc), EXIT_INVALID)
        if not yes and _stdin_is_terminal() and not _confirm(the_plan):
            click.echo("Apply cancelled; nothing was written.", err=True)
            return EXIT_INVALID
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


def _confirm(plan: Plan) -> bool:
    n = len(plan.writes)
    target = os.environ.get("GRAFANA_URL", "Grafana").strip()
    return click.confirm(
        f"Apply {n} change{'s' if n != 1 else ''} to {target}?", default=False, err=True
    )


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


def _scaffold_target(paths: tuple[Path, ...], old_output: Path | None) -> Path:
    if old_output is not None:
        click.echo(
            "warning: scaffold -o/--output FILE is deprecated and will be removed; pass the "
            "file as an argument (platform-obs scaffold FILE). Elsewhere -o means the output "
            "format.",
            err=True,
        )
        if paths:
            _fail("give the file once: as PATH, not also with -o/--output", EXIT_INVALID)
        paths = (old_output,)
    if len(paths) > 1:
        _fail("scaffold writes one config: pass one PATH", EXIT_INVALID)
    target = paths[0] if paths else DEFAULT_CONFIG
    return target / DEFAULT_CONFIG.name if target.is_dir() else target


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


@_command("scaffold")
@_paths
@click.option(
    "--output",
    "-o",
    "old_output",
    type=click.Path(dir_okay=False, path_type=Path),
    hidden=True,
    help="Deprecated: pass the file as PATH.",
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
    paths: tuple[Path, ...],
    old_output: Path | None,
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

    PATH: the file to write, or a directory to write platform-obs.yaml into (default:
    platform-obs.yaml in the current directory).
    """
    output = _scaffold_target(paths, old_output)
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


@_command("doctor")
@_paths
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
    paths: tuple[Path, ...],
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

    PATH: the service's config file, or a directory holding exactly one (default:
    platform-obs.yaml in the current directory).
    """
    from platform_obs.provisioning import doctor as doc

    config = _one_config(paths)
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


def _one_config(paths: tuple[Path, ...]) -> Path:
    """doctor checks one service: a file, or a directory with one config (a missing file is
    reported by the config check itself)."""
    from platform_obs.provisioning.spec import config_files

    if len(paths) > 1:
        _fail("doctor checks one service: pass one config file", EXIT_INVALID)
    path = paths[0] if paths else DEFAULT_CONFIG
    if not path.is_dir():
        return path
    found, _ = config_files([path])
    if (path / DEFAULT_CONFIG.name).is_file():
        return path / DEFAULT_CONFIG.name
    if len(found) != 1:
        _fail(
            f"{path}: doctor checks one service, and this directory holds {len(found)} "
            "config files; pass one of them",
            EXIT_INVALID,
        )
    return found[0]


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    _batch_gc()
    cli.main(args=list(argv) if argv is not None else None, prog_name="platform-obs")
    raise AssertionError("unreachable")  # _Cli.main always exits


def _batch_gc() -> None:
    """Collect cycles rarely: a fleet's rendered objects are millions of long-lived containers
    without cycles, and the default thresholds re-scan them all the time (a quarter of a
    1,000-service command). Young objects are still collected every million allocations, the
    older generations, which only grow, about never. Peak memory is unchanged; objects of the
    imports are not scanned."""
    gc.freeze()
    gc.set_threshold(1_000_000, 1_000, 1_000)
