"""Render one service: folders, dashboards, alert definitions, its Grafana rule group and its
Prometheus rule file — once per *shape* of config.

In a fleet most configs differ only in the service's name, team and file: rendering each through
the dashboard and alert builders repeats the same work thousands of times. :class:`Renderer`
renders a stand-in config whose name, team and file are sentinels (upper-case words that no name,
team or template can contain), and gives each service that output with the sentinels replaced by
its own values. Values derived from the name by a function rather than copied (uids) are computed
again for the real service. The first service of every shape is also rendered directly and
compared: any difference switches the shortcut off for that shape, so the output is always what
direct rendering gives.

Custom alerts are a service's own (their PromQL is rarely shared), so the shape leaves them out:
dashboards never read them, and they are rendered for each service and appended to its template
alerts, as direct rendering orders them.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from platform_obs.provisioning import jsontext, model, outputs
from platform_obs.provisioning.render.alerts import build_rule, group_title, render_rule_group
from platform_obs.provisioning.render.dashboards import (
    dashboard_tags,
    dashboard_uid,
    folders_for,
    render_dashboards,
    selected_dashboards,
)
from platform_obs.provisioning.render.definitions import (
    AlertDefinition,
    custom_alerts,
    resolve_alerts,
)
from platform_obs.provisioning.render.prometheus_rules import (
    prometheus_rule,
    render_recording_file,
    render_rule_file,
)
from platform_obs.provisioning.spec import ServiceSpec
from platform_obs.provisioning.templates import Templates

#: What a service gets from a shape: each kind is checked, or trusted, on its own.
SHAPE_KINDS = frozenset({"dashboards", "alerting", "recording"})
_NAME, _TEAM, _FILE = "QPOSERVICEQ", "QPOTEAMQ", "QPOFILEQ"
_UID, _TAGS = "QPOUIDQ", "QPOTAGSQ"  # values a dashboard's file text gets per service
_UNSEEN = object()
T = TypeVar("T")


_SENTINELS = (_NAME, _TEAM, _FILE, _UID, _TAGS)
#: What a rule file's text template holds for a service's values (see ``_marked``).
_MARK = re.compile(rf"({_NAME}|{_TEAM}|QPOV[0-9]+Q)")
#: ... and a dashboard file's (its uid and tags replace the JSON strings holding the sentinels).
_BOARD_MARK = re.compile(rf'({_NAME}|{_TEAM}|{_FILE}|"{_UID}"|"{_TAGS}")')


@dataclass
class ServiceOutput:
    folders: list[model.Folder]
    dashboards: list[model.Dashboard]
    #: Deferred where ``plan`` and the checks read them and ``render`` does not.
    definitions: list[AlertDefinition] | model.Deferred[list[AlertDefinition]]
    rule_group: model.RuleGroup | None
    rule_file: model.PrometheusRuleFile | None
    recording_file: model.PrometheusRuleFile | None = None


def render_service(spec: ServiceSpec, templates: Templates) -> ServiceOutput:
    """Everything one service gets, rendered directly."""
    folders, boards = render_dashboards(spec, templates)
    defns = resolve_alerts(spec, templates)
    group = render_rule_group(spec, folders[-1].uid, defns) if defns else None
    rule_file = render_rule_file(spec, defns) if defns else None
    recordings = render_recording_file(spec, templates)
    return ServiceOutput(list(folders), boards, defns, group, rule_file, recordings)


class Renderer:
    """Renders services, sharing the work between configs of the same shape.

    Shapes of the kinds in ``verify`` (all by default) are checked; the others are trusted
    without rendering any config directly: for a process whose output is used only if another,
    rendering the same configs and checking those kinds, found every shape exact (:attr:`exact`).
    Two processes can so share the checking.
    """

    def __init__(self, templates: Templates, *, verify: Collection[str] = SHAPE_KINDS) -> None:
        self.templates = templates
        self.verify = frozenset(verify)
        #: Whether every shape checked gave what direct rendering gives.
        self.exact = True
        self._prepared: dict[int, Any] = {}  # what :meth:`expect` prepared, by config
        self._configs: Counter[str] = Counter()  # how many expected configs each shape has
        self._boards: dict[str, Any] = {}
        self._alerts: dict[str, Any] = {}
        self._recordings: dict[str, Any] = {}
        self._numbers = itertools.count()  # names shapes, for checks that run once per shape
        # Rule files' templates are serialised rule by rule: shapes share most of their rules
        self._rule_file_text = outputs.RuleFileText(outputs.TextShapes(outputs.dump_yaml))
        self.hits = 0

    def expect(self, specs: Sequence[ServiceSpec]) -> None:
        """Say which configs will be rendered: shapes are built only for configs that share
        them, on first sight. A config not expected, or unlike any other, is rendered
        directly."""
        for spec in specs:
            prepared = self._prepared[id(spec)] = _prepare(spec)
            if prepared is not None:
                self._configs[prepared[2]] += 1

    def render(self, spec: ServiceSpec) -> ServiceOutput:
        folders = list(folders_for(spec))
        prepared = self._prepared.pop(id(spec), None)
        if prepared is None:
            return render_service(spec, self.templates)
        own, stand_in, key = prepared
        boards = self._dashboards(own, stand_in, key)
        base = self._alerting(own, stand_in, key, folders[-1].uid)
        defns, group, rule_file = _with_custom_alerts(spec, folders[-1].uid, base)
        recordings = self._recording_file(own, stand_in, key)
        return ServiceOutput(folders, boards, defns, group, rule_file, recordings)

    def _memo(
        self,
        kind: str,
        shapes: dict[str, Any],
        key: str,
        spec: ServiceSpec,
        direct: Callable[[], T],
        make_shape: Callable[[], Any],
        apply: Callable[[Any, ServiceSpec], T],
    ) -> T:
        """A shape is built on first sight of a key :meth:`expect` counted more than once (a
        config unlike any other costs one direct render). Built, it is checked against the
        first service's direct rendering (unless trusted); any difference turns the shortcut
        off for that shape. The first service gets the shape's output too.
        """
        seen = shapes.get(key, _UNSEEN)
        if seen is _UNSEEN:
            if self._configs[key] < 2:
                return direct()
            shapes[key] = seen = make_shape()
            if seen is not None and kind in self.verify:
                out = direct()
                if _data(apply(seen, spec)) != _data(out):
                    self.exact = False
                    shapes[key] = None
                    return out
        if seen is None:
            return direct()
        self.hits += 1
        return apply(seen, spec)

    # --- dashboards ---------------------------------------------------------------------------

    def _dashboards(
        self, spec: ServiceSpec, stand_in: ServiceSpec, key: str
    ) -> list[model.Dashboard]:
        return self._memo(
            "dashboards",
            self._boards,
            key,
            spec,
            lambda: render_dashboards(spec, self.templates)[1],
            lambda: self._dashboards_shape(stand_in),
            self._dashboards_apply,
        )

    def _dashboards_shape(self, stand_in: ServiceSpec) -> _BoardsShape | None:
        boards = render_dashboards(stand_in, self.templates)[1]
        by_uid = {
            dashboard_uid(stand_in.name, t.id): t.id
            for t in selected_dashboards(stand_in, self.templates)
        }
        ids = [by_uid.get(b.uid, "") for b in boards]
        # uids and tags are recomputed per service; a title is kept to be known unbuilt
        texts = [jsontext.dumps(dict(b.model, uid="", tags=[])) for b in boards]
        titles = [jsontext.dumps(b.title) for b in boards]
        if "" in ids or any(_derived_sentinel(t) for t in texts):
            return None
        # The file text, with the uid and tags as sentinels too; none where a value is in a key
        # (the keys' sorted order could change with it).
        files = [
            None
            if any(jsontext.in_a_key(t, s) for s in _SENTINELS)
            else _FileTemplate(
                partial(jsontext.pretty, dict(b.model, uid=_UID, tags=_TAGS)), _BOARD_MARK
            )
            for t, b in zip(texts, boards, strict=True)
        ]
        return list(zip(ids, texts, titles, files, strict=True)), next(self._numbers)

    def _dashboards_apply(self, shape: _BoardsShape, spec: ServiceSpec) -> list[model.Dashboard]:
        boards, number = shape
        folder_uid = folders_for(spec)[-1].uid
        return [
            model.Dashboard(
                spec.name,
                folder_uid,
                source=partial(self._board_model, text, tid, spec),
                uid=dashboard_uid(spec.name, tid),
                title=jsontext.loads(_real(title, spec)),
                shape=f"{number}:{tid}",
                file_text=None if file is None else partial(self._board_file, file, tid, spec),
            )
            for tid, text, title, file in boards
        ]

    def _board_model(self, text: str, tid: str, spec: ServiceSpec) -> dict[str, Any]:
        board: dict[str, Any] = jsontext.loads(_real(text, spec))
        board["uid"] = dashboard_uid(spec.name, tid)
        board["tags"] = dashboard_tags(spec, self.templates.dashboards[tid])
        return board

    def _board_file(self, template: _FileTemplate, tid: str, spec: ServiceSpec) -> str:
        tags = jsontext.pretty(dashboard_tags(spec, self.templates.dashboards[tid]))
        marks = {
            _NAME: spec.name,
            _TEAM: spec.team,
            _FILE: _in_json(spec.file),
            f'"{_UID}"': jsontext.dumps(dashboard_uid(spec.name, tid)),
            f'"{_TAGS}"': tags[:-1].replace("\n", "\n  "),  # a top-level key's value
        }
        return template.fill(marks) or ""  # a dashboard's text is never None

    # --- SLO recording rules ----------------------------------------------------------------------

    def _recording_file(
        self, spec: ServiceSpec, stand_in: ServiceSpec, key: str
    ) -> model.PrometheusRuleFile | None:
        return self._memo(
            "recording",
            self._recordings,
            key,
            spec,
            lambda: render_recording_file(spec, self.templates),
            lambda: self._recording_shape(stand_in),
            _recording_apply,
        )

    def _recording_shape(self, stand_in: ServiceSpec) -> _RecordingShape | None:
        rule_file = render_recording_file(stand_in, self.templates)
        text = jsontext.dumps(_data(rule_file))
        if _derived_sentinel(text):
            return None
        template = None
        if rule_file is not None:
            document = rule_file.document
            template = _FileTemplate(lambda: _marked(self._yaml(document), []))
        return text, template, next(self._numbers)

    # --- alerting -----------------------------------------------------------------------------

    def _alerting(
        self, spec: ServiceSpec, stand_in: ServiceSpec, key: str, folder_uid: str
    ) -> _Alerting:
        return self._memo(
            "alerting",
            self._alerts,
            key,
            spec,
            lambda: _render_alerting(spec, self.templates, folder_uid),
            lambda: self._alerting_shape(stand_in),
            self._alerting_apply,
        )

    def _alerting_shape(self, stand_in: ServiceSpec) -> _AlertingShape | None:
        folder_uid = folders_for(stand_in)[-1].uid
        defns, group, rule_file = _render_alerting(stand_in, self.templates, folder_uid)
        by_uid = {
            dashboard_uid(stand_in.name, t.id): t.id
            for t in selected_dashboards(stand_in, self.templates)
        }
        recipes = []
        for d in defns:
            tail = (d.template, d.rule_id) if d.template else ("custom", d.alert)
            recipes.append((tuple(str(p) for p in tail), by_uid.get(d.dashboard_uid or "")))
        defns_data, group_data, file_data = _data((defns, group, rule_file))
        # Uids are recomputed for each service: blank them, then no derived form may be left.
        for d in defns_data:
            d["uid"] = d["dashboard_uid"] = None
        rules = document = None
        if group_data is not None:
            group_data["folder_uid"] = ""
            rules = group_data.pop("rules")
            for rule in rules:
                rule["uid"] = rule["folderUID"] = ""
                rule.get("annotations", {}).pop("__dashboardUid__", None)
        if file_data is not None:
            document = file_data.pop("document")
        # What every reader needs (the heads), apart from what only some read (the bodies)
        heads = jsontext.dumps([group_data, file_data])
        bodies = jsontext.dumps([defns_data, rules, document])
        if _derived_sentinel(heads) or _derived_sentinel(bodies):
            return None
        shape = _AlertingShape(heads, bodies, recipes, next(self._numbers))
        # The files' texts: the stand-in's as a service gets them (from the shape), with the
        # values derived from its name (uids) marked
        values = _uid_values(stand_in, shape.recipes, folder_uid)
        _, group, rule_file = self._alerting_apply(shape, stand_in)
        if group is not None:
            grafana = outputs.alerting_document(group, folders_for(stand_in)[-1].title)
            shape.grafana = _FileTemplate(lambda: _marked(self._yaml(grafana), values))
        if rule_file is not None:
            prometheus = rule_file.document
            shape.prometheus = _FileTemplate(lambda: _marked(self._yaml(prometheus), values))
        return shape

    def _yaml(self, rule_file: dict[str, Any]) -> str:
        """A stand-in's rule file as YAML (its names are sentinels, the same in every shape)."""
        return self._rule_file_text(rule_file, [], [])

    def _alerting_apply(self, shape: _AlertingShape, spec: ServiceSpec) -> _Alerting:
        raw_group, raw_file = jsontext.loads(_real(shape.heads, spec))
        folder_uid = folders_for(spec)[-1].uid
        bodies = model.Deferred(partial(_alerting_bodies, shape, spec, folder_uid))
        values = model.Deferred(partial(_uid_values, spec, shape.recipes, folder_uid)).get
        group = rule_file = None
        if raw_group is not None:
            group = model.RuleGroup(
                **raw_group | {"folder_uid": folder_uid},
                rules=model.Deferred(lambda: bodies.get()[1]),
                file_text=_made(shape.grafana, spec, values),
                shape=f"{shape.number}:grafana",
            )
        if raw_file is not None:
            rule_file = model.PrometheusRuleFile(
                **raw_file,
                document=model.Deferred(lambda: bodies.get()[2]),
                file_text=_made(shape.prometheus, spec, values),
                shape=f"{shape.number}:rules",
            )
        return model.Deferred(lambda: bodies.get()[0]), group, rule_file


@dataclass
class _AlertingShape:
    """A shape's alert definitions, rule group and rule file as text with sentinels."""

    #: The rule group and rule file without their rules (every command reads these).
    heads: str
    #: The definitions, the group's rules and the file's document (read by checks and ``plan``).
    bodies: str
    #: Per definition: the parts of its uid and its dashboard's template.
    recipes: list[tuple[tuple[str, ...], str | None]]
    number: int
    #: The Grafana and Prometheus rule files' text templates.
    grafana: _FileTemplate | None = None
    prometheus: _FileTemplate | None = None


def _alerting_bodies(
    shape: _AlertingShape, spec: ServiceSpec, folder_uid: str
) -> tuple[list[AlertDefinition], tuple[dict[str, Any], ...], dict[str, Any]]:
    """A service's definitions, rules and rule file document (empty where the shape has no
    rules), from its shape."""
    raw_defns, rules, document = jsontext.loads(_real(shape.bodies, spec))
    defns = []
    for i, ((tail, board), d) in enumerate(zip(shape.recipes, raw_defns, strict=True)):
        d["uid"] = model.stable_uid(spec.name, *(_real(p, spec) for p in tail))
        d["dashboard_uid"] = dashboard_uid(spec.name, board) if board else None
        defns.append(AlertDefinition(**d, shape=f"{shape.number}:{i}"))
    for rule, defn in zip(rules or (), defns, strict=True):
        rule["uid"], rule["folderUID"] = defn.uid, folder_uid
        if defn.dashboard_uid is not None and defn.panel_id is not None:
            rule["annotations"]["__dashboardUid__"] = defn.dashboard_uid
            rule["annotations"] = dict(sorted(rule["annotations"].items()))
    return defns, tuple(rules or ()), document or {}


#: Per dashboard: its template, its text, its title's (as JSON) and its file's template
#: (``None`` when it has to be made from the model); the shape's number.
_BoardsShape = tuple[list[tuple[str, str, str, "_FileTemplate | None"]], int]
#: Text of a shape's recording file, the file's template, the shape's number.
_RecordingShape = tuple[str, "_FileTemplate | None", int]
_Alerting = tuple[
    "list[AlertDefinition] | model.Deferred[list[AlertDefinition]]",
    "model.RuleGroup | None",
    "model.PrometheusRuleFile | None",
]


def _render_alerting(
    spec: ServiceSpec, templates: Templates, folder_uid: str
) -> tuple[list[AlertDefinition], model.RuleGroup | None, model.PrometheusRuleFile | None]:
    defns = resolve_alerts(spec, templates)
    if not defns:
        return defns, None, None
    return defns, render_rule_group(spec, folder_uid, defns), render_rule_file(spec, defns)


def _with_custom_alerts(spec: ServiceSpec, folder_uid: str, base: _Alerting) -> _Alerting:
    """The service's custom alerts after its template alerts, in both rule outputs (each rule
    depends only on its own definition and the group, as in direct rendering)."""
    customs = custom_alerts(spec)
    if not customs:
        return base
    base_defns, group, rule_file = base
    if group is None or rule_file is None:  # no template alerts: the group is all custom
        defns = [*model.made(base_defns), *customs]
        return defns, render_rule_group(spec, folder_uid, defns), render_rule_file(spec, defns)
    title, datasource = group_title(spec), spec.datasources.prometheus
    grafana_rules = model.Deferred(
        lambda: [build_rule(d, datasource, folder_uid, title) for d in customs]
    )
    prometheus_rules = model.Deferred(lambda: [prometheus_rule(d) for d in customs])
    shape_rules = model.as_given(group, "rules")
    shape_document = model.as_given(rule_file, "document")

    def rules() -> tuple[dict[str, Any], ...]:
        return (*model.made(shape_rules), *grafana_rules.get())

    def document() -> dict[str, Any]:
        copied = jsontext.loads(jsontext.dumps(model.made(shape_document)))  # not the shape's
        copied["groups"][0]["rules"].extend(prometheus_rules.get())
        return copied  # type: ignore[no-any-return]

    # a rule file's text ends with its rules: the custom ones follow the shape's text
    return (
        model.Deferred(lambda: [*model.made(base_defns), *customs]),
        dataclasses.replace(
            group,
            rules=model.Deferred(rules),
            file_text=_followed_by(
                group.file_text, lambda: [outputs.file_rule(r) for r in grafana_rules.get()]
            ),
            shape=group.shape and f"{group.shape}+custom",
        ),
        dataclasses.replace(
            rule_file,
            document=model.Deferred(document),
            file_text=_followed_by(rule_file.file_text, prometheus_rules.get),
            shape=rule_file.shape and f"{rule_file.shape}+custom",
        ),
    )


def _followed_by(
    text: Callable[[], str | None] | None, rules: Callable[[], list[dict[str, Any]]]
) -> Callable[[], str | None] | None:
    if text is None:
        return None

    def made() -> str | None:
        head, tail = text(), outputs.rule_items(rules())
        return None if head is None or tail is None else head + tail

    return made


def _uid_values(
    spec: ServiceSpec, recipes: list[tuple[tuple[str, ...], str | None]], folder_uid: str
) -> list[str]:
    """The values derived from a service's name that its rule files may hold, in shape order:
    its folder's uid, its rules' uids, their dashboards' uids."""
    uids = [model.stable_uid(spec.name, *(_real(p, spec) for p in tail)) for tail, _ in recipes]
    boards = [dashboard_uid(spec.name, board) if board else "" for _, board in recipes]
    return [folder_uid, *uids, *boards]


class _FileTemplate:
    """A shape's file text with the values of its stand-in marked, made when first filled in
    (``validate`` and ``plan`` write no files) and cut at its marks once: a service's text is
    then one join."""

    def __init__(self, make: Callable[[], str | None], marks: re.Pattern[str] = _MARK) -> None:
        self._make: Callable[[], str | None] | None = make
        self._pattern = marks  # one group: the mark
        self._parts: list[str] | None = None

    def fill(self, marks: dict[str, str]) -> str | None:
        """The text with a service's values (``None`` where the shape has no text)."""
        if self._make is not None:
            text, self._make = self._make(), None
            self._parts = None if text is None else self._pattern.split(text)
        parts = self._parts
        if parts is None:
            return None
        # literal text at even indexes, marks at odd ones
        return "".join([part if i % 2 == 0 else marks[part] for i, part in enumerate(parts)])


def _marked(text: str, values: list[str]) -> str | None:
    """A stand-in's file text with its derived ``values`` marked; ``None`` if any other value
    derived from a sentinel is left (it could not be filled in)."""
    for i in sorted(range(len(values)), key=lambda i: -len(values[i])):
        if values[i]:
            text = text.replace(values[i], f"QPOV{i}Q")
    return None if _derived_sentinel(text) or _FILE in text else text


def _marks(spec: ServiceSpec, values: list[str]) -> dict[str, str] | None:
    """What a service's file text has for each mark of a template; ``None`` where a value could
    change how the text around it is serialised."""
    if not all(map(outputs.inert_token, [spec.name, spec.team, *filter(None, values)])):
        return None
    marks = {_NAME: spec.name, _TEAM: spec.team}
    marks.update((f"QPOV{i}Q", value) for i, value in enumerate(values))
    return marks


def _recording_apply(shape: _RecordingShape, spec: ServiceSpec) -> model.PrometheusRuleFile | None:
    text, template, number = shape
    data = jsontext.loads(_real(text, spec))
    if data is None:
        return None
    made = _made(template, spec, lambda: [])
    return model.PrometheusRuleFile(**data, file_text=made, shape=f"{number}:slo")


def _made(
    template: _FileTemplate | None, spec: ServiceSpec, values: Callable[[], list[str]]
) -> Callable[[], str | None] | None:
    """The service's file text from ``template``, checked and filled in when asked for (only
    ``render`` writes files)."""
    if template is None:
        return None

    def made() -> str | None:
        marks = _marks(spec, values())
        return None if marks is None else template.fill(marks)

    return made


def _prepare(spec: ServiceSpec) -> tuple[ServiceSpec, ServiceSpec, str] | None:
    """The config without its custom alerts, its stand-in and its shape's key; ``None`` for a
    config that holds a sentinel (rendered directly)."""
    if _has_sentinel(dataclasses.replace(spec, lines={})):
        return None
    # Custom alerts are left out of the shared shapes (see the module's docstring).
    own = dataclasses.replace(spec, custom_alerts=())
    stand_in = dataclasses.replace(_stand_in(spec), custom_alerts=())
    return own, stand_in, repr(stand_in)  # the key: equal stand-ins render alike


def _derived_sentinel(text: str) -> bool:
    """A sentinel in lower case: a value derived from the name by a function, not a copy."""
    return any(s.lower() in text for s in _SENTINELS)


def _data(obj: Any) -> Any:
    """Plain JSON-like data of rendered objects (for storing a shape and for comparing)."""
    if isinstance(obj, (list, tuple)):
        return [_data(v) for v in obj]
    if isinstance(obj, model.Deferred):
        return _data(obj.get())
    if isinstance(obj, model.Dashboard):
        return {"service": obj.service, "folder_uid": obj.folder_uid, "model": obj.model}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        # shallow: values are already plain data (dataclasses.asdict deep-copies, slowly)
        return {f.name: _data(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.compare}
    return obj


def _real(text: str, spec: ServiceSpec) -> str:
    """Sentinels replaced by the service's own values (the file as a JSON string's content)."""
    if "QPO" not in text:  # what all sentinels start with
        return text
    return (
        text.replace(_NAME, spec.name).replace(_TEAM, spec.team).replace(_FILE, _in_json(spec.file))
    )


@functools.lru_cache(maxsize=1 << 14)
def _in_json(text: str) -> str:
    """``text`` as the content of a JSON string."""
    return json.dumps(text)[1:-1]


def _has_sentinel(spec: ServiceSpec) -> bool:
    # A string's repr spells out its letters, and no field or class name holds a sentinel.
    text = repr(spec).lower()
    return any(s.lower() in text for s in _SENTINELS)


def _swap(obj: Any, spec: ServiceSpec) -> Any:
    """Name and team replaced by sentinels in every string value (not in mapping keys)."""
    if isinstance(obj, str):
        return obj.replace(spec.name, _NAME).replace(spec.team, _TEAM)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: _swap(getattr(obj, f.name), spec) for f in dataclasses.fields(obj)}
        return dataclasses.replace(obj, **changes)
    if isinstance(obj, dict):
        return {k: _swap(v, spec) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(_swap(v, spec) for v in obj)
    if isinstance(obj, list):
        return [_swap(v, spec) for v in obj]
    return obj


def _stand_in(spec: ServiceSpec) -> ServiceSpec:
    swapped = _swap(dataclasses.replace(spec, lines={}, file=""), spec)
    return dataclasses.replace(swapped, name=_NAME, team=_TEAM, file=_FILE)
