"""Rendering once per config shape gives exactly what rendering every service directly gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fixtures_render import SLOS, config, templates, write

from platform_obs.provisioning.render.service import (
    Renderer,
    _data,
    render_service,
)
from platform_obs.provisioning.spec import ServiceSpec, load_specs


def _fleet(tmp_path: Path) -> list[ServiceSpec]:
    """Services of few shapes whose names stress every way a name reaches the output."""
    names = [
        "checkout",
        "checkout-2",
        "a.b.c",  # dots become dashes in uids
        "payments",  # the same as its team
        "pay",  # a substring of its team
        "x" * 36,  # long: uids switch to a hash form
        "y" * 36,
        "orders_v2",
        "carts",
        "z",
    ]
    for i, name in enumerate(names):
        customs = [
            {
                "name": "QueueBacklog",
                "expr": f'sum(queue_backlog{{service_name="{name}"}}) > 10',
                "summary": f"{name}: backlog",
            }
        ]
        data = config(
            service=name,
            team="payments" if i % 2 else "pay-team",
            receiver=f"{'payments' if i % 2 else 'pay-team'}-oncall",
            namespace="shop" if i % 3 == 0 else None,
            slos=SLOS if i % 4 else None,
            tier=2,
            alerts={"high-error-ratio": {"threshold": 0.02, "for": "10m"}},
            custom_alerts=customs if i % 2 else None,
            labels={"cost_center": f"cc-{name}"},
        )
        write(tmp_path, data, f"{i:02d}.yaml")
    return load_specs([tmp_path])


def test_shapes_render_exactly_like_direct_rendering(tmp_path: Path) -> None:
    specs = _fleet(tmp_path)
    renderer = Renderer(templates())
    renderer.expect(specs)
    shared = [renderer.render(s) for s in specs]
    assert renderer.hits > 0, "the fleet should share shapes"
    assert renderer.exact
    for spec, out in zip(specs, shared, strict=True):
        assert _data(out) == _data(render_service(spec, templates())), spec.name


def test_trusted_shapes_render_like_checked_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unverified, every shape that comes back is built at once and used for all its configs;
    a config unlike any other is rendered directly, as when verified."""
    from platform_obs.provisioning.render import service

    specs = _fleet(tmp_path)
    write(tmp_path, config(service="lonely", team="solo", receiver="r", tier=1), "99.yaml")
    specs = load_specs([tmp_path])
    real = service.render_dashboards
    renders: list[str] = []
    monkeypatch.setattr(
        service, "render_dashboards", lambda spec, t: renders.append(spec.name) or real(spec, t)
    )
    renderer = Renderer(templates(), verify=())
    renderer.expect(specs)
    trusted = [renderer.render(s) for s in specs]
    trusted_renders, renders[:] = list(renders), []
    verified = Renderer(templates())
    verified.expect(specs)
    for spec in specs:
        verified.render(spec)
    # both render each shape's stand-in and the configs unlike any other ("lonely"); only
    # checking renders the first service of each shared shape directly too
    names = {s.name for s in specs}
    direct_trusted = {n for n in trusted_renders if n in names}
    direct_verified = {n for n in renders if n in names}
    assert "lonely" in direct_trusted
    assert direct_trusted < direct_verified, "the first of a shape is not rendered directly"
    for spec, out in zip(specs, trusted, strict=True):
        assert _data(out) == _data(render_service(spec, templates())), spec.name
    lonely = next(out for spec, out in zip(specs, trusted, strict=True) if spec.name == "lonely")
    assert all(b.shape is None for b in lonely.dashboards), "rendered directly"


def test_a_shape_that_would_differ_is_switched_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renderer change that derives something new from the name is caught by the check."""
    from platform_obs.provisioning.render import service

    specs = _fleet(tmp_path)
    real = service.render_dashboards

    def reversed_name(spec: ServiceSpec, tmpl: Any) -> Any:
        folders, boards = real(spec, tmpl)
        for b in boards:
            b.model["description"] = spec.name[::-1]  # not a copy of the name
        return folders, boards

    monkeypatch.setattr(service, "render_dashboards", reversed_name)
    renderer = Renderer(templates())
    renderer.expect(specs)
    for spec in specs:
        out = renderer.render(spec)
        assert [b.model["description"] for b in out.dashboards] == [spec.name[::-1]] * len(
            out.dashboards
        )
    assert not renderer.exact, "a process that trusted the shapes must render again"


def test_output_files_reuse_text_only_where_it_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names YAML would read as numbers or booleans, and shapes repeated, give the same files
    as serialising every document directly."""
    from platform_obs.provisioning import outputs
    from platform_obs.provisioning.pipeline import render_all

    names = ["checkout", "checkout-2", "orders", "carts", "123", "0x1f", "on", "true", "a.b", "z"]
    for i, name in enumerate(names):
        data = config(service=name, team="payments" if i % 2 else "on", receiver="r", tier=2)
        write(tmp_path, data, f"{i:02d}.yaml")
    rendered = render_all(load_specs([tmp_path]), templates()).rendered
    shared = outputs.render_files(rendered)
    monkeypatch.setattr(outputs.TextShapes, "__call__", lambda self, data, tokens: self.dump(data))
    assert shared == outputs.render_files(rendered)


def test_text_shapes_fall_back_when_a_value_is_in_a_key() -> None:
    from platform_obs.provisioning.outputs import TextShapes, dump_yaml

    shapes = TextShapes(dump_yaml)
    docs = [({"labels": {f"{n}_cost": "x", "m": n}}, [n]) for n in ("alpha", "zulu", "mike")]
    assert [shapes(d, t) for d, t in docs] == [dump_yaml(d) for d, _ in docs]
    repeated = [({"service": n, "summary": f"{n}: down"}, [n]) for n in ("alpha", "zulu", "mike")]
    assert [shapes(d, t) for d, t in repeated] == [dump_yaml(d) for d, _ in repeated]
    assert any(isinstance(v, str) for v in shapes._texts.values())  # the shape was reused


def test_a_placeholder_in_a_key_of_compact_json_is_found() -> None:
    from platform_obs.provisioning import jsontext
    from platform_obs.provisioning.outputs import _in_a_key

    def found(data: Any) -> bool:
        return _in_a_key(jsontext.dumps(data, sort_keys=True))

    assert found({"labels": {"QPOTOKEN0Q_cost": "x"}})
    assert found(["QPOTOKEN0Q", {"a": {"QPOTOKEN1Q": 2}}])
    assert not found({"summary": "QPOTOKEN0Q: down", "b": ["QPOTOKEN0Q"]})
    assert not found({"q": 'x,"QPOTOKEN0Q":'})  # quotes and colons inside a value
    assert not found({"a\\": "QPOTOKEN0Q\\"})  # a value ending in a backslash


def test_rule_files_serialised_rule_by_rule_equal_the_whole_file() -> None:
    """Shared rules, a service's own rule, quoting-sensitive and multi-line values."""
    from platform_obs.provisioning.outputs import RuleFileText, TextShapes, dump_yaml

    def rule(name: str, alert: str, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "alert": alert,
            "expr": f'sum(rate(x{{service_name="{name}"}}[5m])) > 0.02',
            "labels": {"service": name, "severity": "critical", **extra},
            "annotations": {"summary": f"{name}: {{{{ $value }}}} errors"},
        }

    docs = []
    for i, name in enumerate(["checkout", "orders", "carts", "on", "a.b", "zeta"]):
        rules = [rule(name, "HighErrors", {}), rule(name, "Latency", {"n": "007"})]
        if i % 2:
            rules.append(rule(name, f"Own{i}", {"note": "line one\nline two"}))
        if i == 4:
            rules.append(rule(name, "Quoted", {"x": "- not a list", "y": "yes"}))
        docs.append(({"groups": [{"interval": "1m", "name": name, "rules": rules}]}, [name]))
    files = RuleFileText(TextShapes(dump_yaml))
    assert [files(d, t, t) for d, t in docs] == [dump_yaml(d) for d, _ in docs]
    assert any(isinstance(v, str) for v in files.shapes._texts.values())  # rules were reused


def _fleet_of_one_shape(tmp_path: Path, n: int) -> list[ServiceSpec]:
    configs = tmp_path / "services"
    configs.mkdir()
    for i in range(n):
        write(configs, config(service=f"svc-{i}", team="payments", tier=2), f"{i}.yaml")
    return load_specs([configs])


def test_checks_run_once_per_shape_yet_report_every_service(tmp_path: Path) -> None:
    """A template problem found on one service of a shape is reported for each of them."""
    import shutil

    from fixtures_render import REPO

    from platform_obs.provisioning import validate
    from platform_obs.provisioning.pipeline import render_all
    from platform_obs.provisioning.templates import load_templates

    shutil.copytree(REPO / "dashboards", tmp_path / "t" / "dashboards")
    shutil.copytree(REPO / "alerts", tmp_path / "t" / "alerts")
    overview = tmp_path / "t" / "dashboards" / "overview.yaml"
    overview.write_text(
        overview.read_text().replace("{${selector}})", "{${selector}}) * $nosuchvariable", 1)
    )
    specs = _fleet_of_one_shape(tmp_path, 3)
    result = render_all(specs, load_templates(tmp_path / "t"))
    assert len({b.shape for b in result.rendered.dashboards if b.shape}) > 0, "shapes are shared"
    problems = validate.check_rendered(
        result.rendered, result.definitions, specs, run_promtool=False
    )
    flagged = {p.message for p in problems if p.value == "$nosuchvariable"}
    assert flagged == {f"unknown dashboard variable in svc-{i}-overview" for i in range(3)}


def test_names_where_they_could_change_a_verdict_mean_checking_each_service() -> None:
    from platform_obs.provisioning import validate
    from platform_obs.provisioning.model import Dashboard
    from platform_obs.provisioning.render.definitions import AlertDefinition

    spec = ServiceSpec(name="checkout", team="payments", receiver="r", file="c.yaml")

    def board(expr: str) -> Dashboard:
        panels = [{"targets": [{"expr": expr}]}]
        return Dashboard("checkout", "f", {"uid": "u", "panels": panels}, shape="0:overview")

    assert validate._names_are_inert(board('up{service_name="checkout", team="payments"}'), spec)
    assert not validate._names_are_inert(board('up{checkout="1"}'), spec)  # a label name
    assert not validate._names_are_inert(board("checkout_requests_total"), spec)  # a metric
    assert not validate._names_are_inert(board('up{service_name="$checkout"}'), spec)
    assert not validate._names_are_inert(board('up{a="x"} # "checkout"'), spec)  # a comment

    def defn(summary: str) -> AlertDefinition:
        return AlertDefinition(
            "checkout", "u", "A", "A", "up", "5m", {}, {"summary": summary}, "r", "t", "p"
        )

    assert validate._outside_actions(defn("checkout: {{ $value }} errors"), spec)
    assert not validate._outside_actions(defn('{{ if eq .x "checkout" }}a{{ end }}'), spec)


def test_dashboard_files_made_from_shapes_equal_the_models(tmp_path: Path) -> None:
    """File texts made without building the models (long names with hashed uids, dots, a
    name inside the team's) are exactly the models serialised."""
    from platform_obs.provisioning import outputs
    from platform_obs.provisioning.pipeline import render_all

    specs = _fleet(tmp_path)
    rendered = render_all(specs, templates()).rendered
    assert sum(b.file_text is not None for b in rendered.dashboards) > 4
    fast = outputs.render_files(rendered)
    assert not all(b.built for b in rendered.dashboards), "some models were never needed"
    reference = render_all(specs, templates()).rendered
    for board in reference.dashboards:
        board.file_text = None  # serialise every model
    assert fast == outputs.render_files(reference)


def _without_made_texts(rendered: Any) -> Any:
    """The same objects, every file to be serialised directly."""
    import dataclasses

    for board in rendered.dashboards:
        board.file_text = None
    rendered.rule_groups = [dataclasses.replace(g, file_text=None) for g in rendered.rule_groups]
    rendered.prometheus_rules = [
        dataclasses.replace(f, file_text=None) for f in rendered.prometheus_rules
    ]
    return rendered


def _payments_fleet(tmp_path: Path, names: list[str]) -> list[ServiceSpec]:
    """One team's services of one shape with SLOs; every other one has a custom alert."""
    for i, name in enumerate(names):
        expr = f'queue{{service_name="{name}"}} > 1'
        customs = [{"name": "Backlog", "expr": expr, "summary": f"{name}: backlog"}]
        data = config(
            service=name,
            team="payments",
            receiver="payments-oncall",
            slos=SLOS,
            tier=2,
            custom_alerts=customs if i % 2 else None,
        )
        write(tmp_path, data, f"{i:02d}.yaml")
    return load_specs([tmp_path])


def test_rule_files_made_from_shape_templates_equal_direct_serialisation(tmp_path: Path) -> None:
    """Every service's Grafana and Prometheus rule files (custom alerts appended, hashed uids,
    dots, a name inside its team's), not only the first of each shape, are exactly the
    documents serialised."""
    from platform_obs.provisioning import outputs
    from platform_obs.provisioning.pipeline import render_all

    names = ["checkout", "checkout-2", "a.b.c", "pay", "x" * 36, "y" * 36, "orders_v2", "z"]
    specs = _payments_fleet(tmp_path, names)
    rendered = render_all(specs, templates()).rendered
    made = {g.service: g.shape for g in rendered.rule_groups if g.file_text and g.file_text()}
    # "pay" (inside its team's name) is a shape of its own, rendered directly
    assert set(made) == set(names) - {"pay"}, made
    assert made["y" * 36].endswith("+custom") and not made["x" * 36].endswith("+custom")
    assert sum(bool(f.file_text and f.file_text()) for f in rendered.prometheus_rules) >= 12
    reference = _without_made_texts(render_all(specs, templates()).rendered)
    assert outputs.render_files(rendered) == outputs.render_files(reference)


def test_files_after_the_first_of_their_shape_are_made_without_reading_the_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The made texts are not only right but used: a shape is serialised once, for its check,
    and the rules of its other services are never decoded."""
    from collections import Counter

    from platform_obs.provisioning import outputs
    from platform_obs.provisioning.model import Deferred, as_given
    from platform_obs.provisioning.pipeline import render_all

    specs = _payments_fleet(tmp_path, [f"svc-{i}" for i in range(6)])
    serialised: Counter[str] = Counter()
    real_call = outputs.ShapeTexts.__call__

    def call(self: Any, shape: str | None, made: Any, direct: Any) -> str:
        def counted() -> str:
            serialised[str(shape)] += 1
            return str(direct())

        return real_call(self, shape, made, counted)

    monkeypatch.setattr(outputs.ShapeTexts, "__call__", call)
    result = render_all(specs, templates())
    outputs.render_files(result.rendered)
    unread = [
        g.service for g in result.rendered.rule_groups if isinstance(as_given(g, "rules"), Deferred)
    ]
    # svc-0 and svc-1 are the first of their files' shapes (their text is checked)
    assert unread == ["svc-2", "svc-3", "svc-4", "svc-5"], "later services' rules are not read"
    assert isinstance(as_given(result, "definitions"), Deferred)
    del serialised["None"]  # files outside any shape (the dashboard provider file ...)
    kinds = {shape.split(":", 1)[-1] for shape in serialised}
    assert {"grafana", "grafana+custom", "rules", "rules+custom", "slo", "overview"} <= kinds
    assert set(serialised.values()) == {1}, serialised


def test_a_made_rule_file_text_that_differs_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first file of every shape is serialised and compared: a template that would give
    other text is not trusted for the rest of its shape."""
    from platform_obs.provisioning import outputs
    from platform_obs.provisioning.pipeline import render_all
    from platform_obs.provisioning.render import service

    specs = _fleet(tmp_path)
    real_fill = service._FileTemplate.fill
    monkeypatch.setattr(
        service._FileTemplate, "fill", lambda self, marks: f"{real_fill(self, marks)}# drift\n"
    )
    files = outputs.render_files(render_all(specs, templates()).rendered)
    assert not any("# drift" in text for text in files.values())
    reference = _without_made_texts(render_all(specs, templates()).rendered)
    assert files == outputs.render_files(reference)


def test_names_yaml_would_not_read_as_strings_get_rule_files_serialised(tmp_path: Path) -> None:
    from platform_obs.provisioning import outputs
    from platform_obs.provisioning.pipeline import render_all

    for i, name in enumerate(["orders", "carts", "123", "on", "true", "0x1f"]):
        write(tmp_path, config(service=name, team="payments", receiver="r", tier=2), f"{i}.yaml")
    specs = load_specs([tmp_path])
    rendered = render_all(specs, templates()).rendered
    made = {g.service for g in rendered.rule_groups if g.file_text and g.file_text() is not None}
    assert made <= {"orders", "carts"}, "a name that is not plainly a string is never swapped in"
    reference = _without_made_texts(render_all(specs, templates()).rendered)
    assert outputs.render_files(rendered) == outputs.render_files(reference)
