"""The provisioner's front door: service configs -> checked, rendered objects.

``build()`` is pure and offline: it loads the configs and templates, renders dashboards, Grafana
rule groups and Prometheus rules, validates all of it and raises :class:`ValidationFailed` with
every problem found. Nothing reaches Grafana unless this returned.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from platform_obs.provisioning import backstage, policy, validate
from platform_obs.provisioning.model import (
    Deferrable,
    Deferred,
    Folder,
    Problem,
    Rendered,
    ValidationFailed,
    made,
)
from platform_obs.provisioning.render.definitions import AlertDefinition
from platform_obs.provisioning.render.service import SHAPE_KINDS, Renderer
from platform_obs.provisioning.side_process import start
from platform_obs.provisioning.spec import ServiceSpec, read_specs
from platform_obs.provisioning.templates import Templates, load_templates

#: From this many services on, a second process renders and checks the fleet where one can
#: (below, starting it costs more than it saves).
SIDE_PROCESS_FROM = 64
#: The shapes the process that serialises the output checks itself when there are two.
CHECKED_HERE = frozenset({"dashboards"})


@dataclass
class RenderResult:
    """Rendered objects plus the alert definitions both rule outputs came from."""

    rendered: Rendered
    #: Made when first read: ``render`` writes rule files from their text and never reads them.
    definitions: Deferrable[list[AlertDefinition]] = Deferrable()
    #: Whether every shape checked was exact (see :class:`Renderer`).
    exact: bool = True


def render_specs(specs: Sequence[ServiceSpec], templates: Templates) -> Rendered:
    """Render checked specs (no validation of the output)."""
    return render_all(specs, templates).rendered


def render_all(
    specs: Sequence[ServiceSpec], templates: Templates, *, verify: Collection[str] = SHAPE_KINDS
) -> RenderResult:
    """Render every config, checking the shapes of the kinds in ``verify`` and trusting the
    others (see :class:`Renderer`)."""
    rendered = Rendered()
    definitions: list[Any] = []  # each service's, deferred
    folders: dict[str, Folder] = {}
    renderer = Renderer(templates, verify=verify)  # configs of one shape are rendered once
    ordered = sorted(specs, key=lambda s: s.name)
    renderer.expect(ordered)
    for spec in ordered:
        out = renderer.render(spec)
        for folder in out.folders:  # team folders are shared: parents before children
            folders.setdefault(folder.uid, folder)
        definitions.append(out.definitions)
        rendered.services.append(spec.name)
        rendered.teams[spec.name] = spec.team
        rendered.dashboards.extend(out.dashboards)
        if out.rule_group is not None and out.rule_file is not None:
            rendered.rule_groups.append(out.rule_group)
            rendered.prometheus_rules.append(out.rule_file)
        if out.recording_file is not None:
            rendered.prometheus_rules.append(out.recording_file)
    rendered.folders = sorted(folders.values(), key=lambda f: (f.parent_uid is not None, f.uid))
    every = Deferred(lambda: [d for part in definitions for d in made(part)])
    return RenderResult(rendered, every, renderer.exact)


def build(
    paths: Sequence[Path],
    templates_dir: Path | None = None,
    *,
    run_promtool: bool = True,
    policy_file: Path | None = None,
    warnings: list[Problem] | None = None,
    backstage_catalog: bool = False,
    grafana_url: str | None = None,
    meanwhile: Callable[[Rendered], None] | None = None,
) -> Rendered:
    """Load service configs (files or directories), render and validate everything.

    Raises :class:`ValidationFailed` listing every problem in the configs, the templates, the
    platform policy or the rendered output. The policy is ``policy_file``, else
    ``<templates_dir>/policies/platform.yaml``, else the packaged one; its warnings are appended
    to ``warnings`` when given. ``backstage_catalog`` adds Backstage catalog files to
    ``extra_files``; ``grafana_url`` only makes their dashboard links absolute.

    ``meanwhile`` is given the rendered objects while the last checks may still run (in another
    process): it may prepare in memory what the caller will do, and must write nothing. It is
    not called when a check already failed; its work is discarded when a later one fails. It may
    be called again with other objects (equal output): the last call's work is what counts.
    """
    # Every stage runs on whatever it can, so one round of fixes addresses every problem.
    problems: list[Problem] = []
    specs, spec_problems = read_specs([Path(p) for p in paths], warnings)
    problems.extend(spec_problems)
    templates: Templates | None = None
    try:
        templates = load_templates(templates_dir)
    except ValidationFailed as exc:
        problems.extend(exc.problems)
    the_policy, policy_problems = policy.load_policy(
        policy.policy_source(templates_dir, policy_file)
    )
    problems.extend(policy_problems)
    # One label scheme for the whole platform: every service renders for the same backend.
    specs = [replace(s, metric_labels=the_policy.metric_labels) for s in specs]
    if templates is None:
        raise ValidationFailed(problems)
    problems.extend(validate.check_specs(specs, templates))
    if warnings is not None:
        for spec in specs:
            warnings.extend(validate.check_spec_warnings(spec, templates))
    if not policy_problems:  # a half-read policy would give misleading verdicts
        errors, warned = policy.check_specs(the_policy, specs, templates)
        problems.extend(errors)
        if warnings is not None:
            warnings.extend(warned)
    # Render only configs without problems of their own: the renderer may rely on what the
    # checks guarantee. Their output is still checked, so its problems are reported too.
    broken = {p.file for p in problems}
    to_render = [s for s in specs if s.file not in broken]

    def checked(result: RenderResult, *, dashboards: bool = True) -> list[Problem]:
        return validate.check_rendered(
            result.rendered,
            result.definitions,
            specs,
            run_promtool=run_promtool,
            dashboards=dashboards,
        )

    def rendered_and_checked(verify: Collection[str]) -> tuple[list[Problem], bool]:
        """(problems but the dashboards', whether every shape checked was exact)"""
        result = render_all(to_render, templates, verify=verify)
        return checked(result, dashboards=False), result.exact

    def finish(rendered: Rendered) -> None:
        if backstage_catalog:
            rendered.extra_files.update(
                backstage.catalog_files(rendered, specs, grafana_url=grafana_url)
            )
        if meanwhile is not None:
            meanwhile(rendered)

    # A fleet is rendered and checked in a second process while this one renders it again and
    # serialises the output: the fork shares only the configs, so neither pays for copying the
    # other's pages. Each process checks some kinds of shapes and trusts the others, which the
    # other checks; this one checks the dashboards, the child everything else.
    # A broken config, a small fleet or nothing to do meanwhile: one process.
    side = (
        start(
            partial(rendered_and_checked, SHAPE_KINDS - CHECKED_HERE),
            partial(rendered_and_checked, SHAPE_KINDS),
        )
        if not problems
        and (backstage_catalog or meanwhile is not None)
        and len(to_render) >= SIDE_PROCESS_FROM
        else None
    )
    with side if side is not None else contextlib.nullcontext():
        result = render_all(
            to_render, templates, verify=SHAPE_KINDS if side is None else CHECKED_HERE
        )
        if side is None:
            problems.extend(checked(result))
        else:  # this process checked the dashboards' shapes: their checks are valid here
            problems.extend(validate.check_dashboards(result.rendered, specs))
        if not problems:
            finish(result.rendered)
        if side is not None:
            found, exact = side.result()
            if exact and result.exact:
                problems.extend(found)
            else:  # a shape one of the processes trusted differs: all again here, as checked
                result = render_all(to_render, templates)
                problems[:] = checked(result)
                if not problems:
                    finish(result.rendered)
    if problems:
        raise ValidationFailed(problems)
    return result.rendered
