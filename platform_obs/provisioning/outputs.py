"""Rendered objects -> files: dashboard JSON, Grafana file provisioning, Prometheus rule files.

Output is deterministic (sorted keys, stable order) so re-rendering unchanged inputs gives
identical bytes and a GitOps diff shows only real changes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from platform_obs.provisioning import jsontext
from platform_obs.provisioning.durations import format_seconds
from platform_obs.provisioning.model import (
    MANAGER,
    Dashboard,
    PrometheusRuleFile,
    Rendered,
    RuleGroup,
)

DASHBOARDS_DIR = "dashboards"
GRAFANA_DASHBOARD_PROVIDER = "provisioning/dashboards/platform-obs.yaml"
GRAFANA_ALERTING_DIR = "provisioning/alerting"
PROMETHEUS_DIR = "prometheus"
#: Where Grafana reads the dashboards JSON from when the output directory is mounted there.
DEFAULT_DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"


def dump_json(data: Any) -> str:
    return jsontext.pretty(data)


#: libyaml's emitter (inside PyYAML's wheels) is ~4x faster than the pure-Python one.
_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[valid-type,misc]  # one of two classes
    """PyYAML's safe dumper with its commonest cases done directly: strings, mappings and lists
    are nearly all of a fleet's YAML, and the generic dispatch and the implicit-type resolution
    the emitter asks for each scalar were most of the time of writing it. Every rule stays
    PyYAML's (sorted keys, aliases for an object met twice); anything else goes its way."""

    def represent_data(self, data: Any) -> yaml.Node:
        kind = type(data)
        if kind is str:
            return yaml.ScalarNode(_STR_TAG, data)
        if (kind is not dict and kind is not list) or self.default_flow_style is None:
            return super().represent_data(data)
        known = self.represented_objects.get(id(data))
        if known is not None:
            return known
        self.object_keeper.append(data)
        value: list[Any] = []
        node: yaml.Node
        if kind is dict:
            node = yaml.MappingNode(_MAP_TAG, value, flow_style=self.default_flow_style)
            self.represented_objects[id(data)] = node
            items = list(data.items())
            if self.sort_keys:
                with contextlib.suppress(TypeError):  # keys of mixed types stay in order
                    items = sorted(items)
            value.extend((self.represent_data(k), self.represent_data(v)) for k, v in items)
        else:
            node = yaml.SequenceNode(_SEQ_TAG, value, flow_style=self.default_flow_style)
            self.represented_objects[id(data)] = node
            value.extend(self.represent_data(item) for item in data)
        return node

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            return _resolve_scalar(value, implicit)
        return super().resolve(kind, value, implicit)


@functools.lru_cache(maxsize=1 << 16)
def _resolve_scalar(value: str, implicit: tuple[bool, bool]) -> str:
    """The tag a plain scalar would be read as (a fleet's files repeat most of their scalars)."""
    return _RESOLVER.resolve(yaml.ScalarNode, value, implicit)


def dump_yaml(data: Any) -> str:
    # Long lines are not folded: a PromQL expression stays on one line, so it diffs and greps
    # well (and text reuse between services below stays exact).
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=True,
        allow_unicode=True,
        default_flow_style=False,
        width=2**31 - 1,
    )


#: What a per-service value must look like to be swapped for a placeholder in serialised text.
_TOKEN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_PLACEHOLDER = "QPOTOKEN{}Q"
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_UNSEEN = object()
_RESOLVER = yaml.resolver.Resolver()


class _FirstText(NamedTuple):
    tokens: list[str]
    text: str


class TextShapes:
    """Serialise per-service documents once per shape: fleets repeat the same file with only the
    service's own values (name, team, uids) changed.

    A document's compact JSON with those values replaced by placeholders is its shape. When a
    shape comes back, it is serialised once with placeholders and checked against the direct
    serialisation of its first document; every later one gets that text with its own values put
    back. A value that could change
    how it is serialised (quoting, a YAML type, a placeholder-like word) or that appears in a
    mapping key means direct serialisation, as does any shape whose check failed.
    """

    def __init__(self, dump: Callable[[Any], str]) -> None:
        self.dump = dump
        self._texts: dict[str, Any] = {}

    def __call__(self, data: Any, tokens: Sequence[str]) -> str:
        tokens = list(dict.fromkeys(t for t in tokens if t))
        if not all(map(inert_token, tokens)):  # without tokens, a shape is a repeated document
            return self.dump(data)
        shape = self.shape(data, tokens)
        seen = self._texts.get(shape, _UNSEEN)
        if seen is _UNSEEN:  # a document unlike any other costs one serialisation
            direct = self.dump(data)
            # a value in a key: sorted key order could depend on the values
            self._texts[shape] = None if _in_a_key(shape) else _FirstText(tokens, direct)
            return direct
        if isinstance(seen, _FirstText):  # the shape comes back: make its text, check it
            text = self.dump(jsontext.loads(shape))
            seen = text if _put_back(text, seen.tokens) == seen.text else None
            self._texts[shape] = seen
        return self.dump(data) if seen is None else _put_back(seen, tokens)

    @staticmethod
    def shape(data: Any, tokens: Sequence[str]) -> str:
        """Compact JSON of ``data`` with each token replaced by its placeholder."""
        shape = jsontext.dumps(data, sort_keys=True)
        for i in sorted(range(len(tokens)), key=lambda i: -len(tokens[i])):
            shape = shape.replace(tokens[i], _PLACEHOLDER.format(i))
        return shape


@functools.lru_cache(maxsize=1 << 16)
def inert_token(value: str) -> bool:
    """Whether ``value`` can be swapped into serialised YAML or JSON text for another such
    value without changing how anything around it is serialised: plain characters, not
    placeholder-like, a string wherever it stands alone."""
    return (
        bool(_TOKEN.match(value))
        and any("a" <= c <= "z" for c in value)
        and _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR_TAG
    )


def _in_a_key(shape: str) -> bool:
    """Whether a placeholder is inside a mapping key of compact JSON."""
    return jsontext.in_a_key(shape, "QPOTOKEN")


class RuleFileText:
    """A rule file (``groups: [{..., rules: [...]}]``) serialised rule by rule.

    Services share most rules (a template's rule with the same parameters) but rarely a whole
    file: one custom alert or threshold makes the file unique. Each rule is serialised through
    :class:`TextShapes` as a one-item list, indented under ``rules:``, after the rest of the file;
    a rules list is the last key of its group, and block YAML does not fold lines, so the text is
    the same as serialising the file at once. That is checked on the first file of every head
    shape; a failed check, a multi-line string or a file of another form means serialising the
    file at once.
    """

    _EMPTY = "  rules: []\n"

    def __init__(self, shapes: TextShapes) -> None:
        self.shapes = shapes
        self._checked: dict[str, bool] = {}

    def __call__(
        self,
        doc: dict[str, Any],
        tokens: Sequence[str],
        rule_tokens: Sequence[str],
        *,
        uids: bool = False,
    ) -> str:
        """``tokens`` are the file's own values, ``rule_tokens`` those a rule may contain, plus
        the rule's own uids (Grafana rules) when ``uids``."""
        groups = doc.get("groups")
        if not (isinstance(groups, list) and len(groups) == 1 and groups[0].get("rules")):
            return self.shapes(doc, tokens)
        rules = groups[0]["rules"]
        if _multi_line(rules):
            return self.shapes(doc, tokens)
        head = {**doc, "groups": [{**groups[0], "rules": []}]}
        head_text = self.shapes(head, tokens)
        if not head_text.endswith(self._EMPTY):
            return self.shapes(doc, tokens)
        items = (
            self.shapes([rule], [*rule_tokens, *_rule_uids(rule)] if uids else rule_tokens)
            for rule in rules
        )
        text = head_text[: -len(self._EMPTY)] + "  rules:\n" + "".join(map(_indented, items))
        key = self.shapes.shape(head, list(dict.fromkeys(t for t in tokens if t)))
        if key not in self._checked:
            self._checked[key] = text == self.shapes.dump(doc)
        return text if self._checked[key] else self.shapes(doc, tokens)


def _indented(text: str) -> str:
    """Two spaces more on every line of ``text`` (lines end in newlines) but empty ones."""
    text = "  " + text[:-1].replace("\n", "\n  ") + "\n"
    while "\n  \n" in text:
        text = text.replace("\n  \n", "\n\n")
    return text


def _put_back(text: str, tokens: Sequence[str]) -> str:
    for i, token in enumerate(tokens):
        text = text.replace(_PLACEHOLDER.format(i), token)
    return text


def render_files(
    rendered: Rendered, dashboards_mount: str = DEFAULT_DASHBOARDS_MOUNT
) -> dict[str, str]:
    """Relative path -> content of every output file."""
    return dict(iter_files(rendered, dashboards_mount))


def iter_files(
    rendered: Rendered, dashboards_mount: str = DEFAULT_DASHBOARDS_MOUNT
) -> Iterator[tuple[str, str]]:
    """(relative path, content) of every output file, each as soon as it is made."""
    titles = {f.uid: f.title for f in rendered.folders}
    parents = {f.uid: f.parent_uid for f in rendered.folders}

    def team(folder_uid: str) -> str:
        return titles.get(parents.get(folder_uid) or "", "")

    shaped = ShapeTexts()
    yaml_shapes = TextShapes(dump_yaml)
    rule_files = RuleFileText(yaml_shapes)
    for board in rendered.dashboards:
        path = f"{DASHBOARDS_DIR}/{board.folder_uid}/{board.uid}.json"
        made = None if board.built else board.file_text  # a built model may have changed since
        yield path, shaped(board.shape, made, partial(_board_json, board))
    providers = [
        {
            "name": f"{MANAGER}-{folder_uid}",
            "orgId": 1,
            "folder": titles.get(folder_uid, folder_uid),
            "folderUid": folder_uid,
            "type": "file",
            "disableDeletion": False,
            "allowUiUpdates": False,
            "updateIntervalSeconds": 60,
            "options": {
                "path": f"{dashboards_mount.rstrip('/')}/{folder_uid}",
                "foldersFromFilesStructure": False,
            },
        }
        for folder_uid in sorted({b.folder_uid for b in rendered.dashboards})
    ]
    if providers:
        yield GRAFANA_DASHBOARD_PROVIDER, dump_yaml({"apiVersion": 1, "providers": providers})
    for group in rendered.rule_groups:

        def alerting_text(group: RuleGroup = group) -> str:
            uids = [str(r.get("uid", "")) for r in group.rules]
            boards = [
                str((r.get("annotations") or {}).get("__dashboardUid__", "")) for r in group.rules
            ]
            tokens = [group.service, team(group.folder_uid), group.folder_uid, *uids, *boards]
            document = alerting_document(group, titles.get(group.folder_uid, group.folder_uid))
            return rule_files(document, tokens, tokens[:3], uids=True)

        path = f"{GRAFANA_ALERTING_DIR}/{group.service}.yaml"
        yield path, shaped(group.shape, group.file_text, alerting_text)
    teams = {g.service: team(g.folder_uid) for g in rendered.rule_groups}
    for rule_file in rendered.prometheus_rules:

        def prometheus_text(rule_file: PrometheusRuleFile = rule_file) -> str:
            tokens = [rule_file.service, teams.get(rule_file.service, "")]
            return rule_files(rule_file.document, tokens, tokens)

        path = f"{PROMETHEUS_DIR}/{rule_file.file_name}"
        yield path, shaped(rule_file.shape, rule_file.file_text, prometheus_text)
    yield from rendered.extra_files.items()


class ShapeTexts:
    """File texts that the renderer made per shape, without serialising (``file_text``).

    The first file of every shape is serialised directly and compared with its made text; a
    shape whose text differs is serialised directly from then on.
    """

    def __init__(self) -> None:
        self._exact: dict[str, bool] = {}

    def __call__(
        self,
        shape: str | None,
        made: Callable[[], str | None] | None,
        direct: Callable[[], str],
    ) -> str:
        """``made()`` once the shape's first is known to equal ``direct()``; ``None`` from it
        means this file could not be made."""
        if shape is None or made is None:
            return direct()
        exact = self._exact.get(shape)
        if exact is None:
            text = direct()
            first = made()
            if first is not None:  # a file that could not be made says nothing of its shape
                self._exact[shape] = first == text
            return text
        text_made = made() if exact else None
        return direct() if text_made is None else text_made


def _board_json(board: Dashboard) -> str:
    return dump_json(board.model)


def alerting_document(group: RuleGroup, folder_title: str) -> dict[str, Any]:
    """Grafana's file-provisioning form of a rule group, in the folder titled ``folder_title``."""
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": group.title,
                "folder": folder_title,
                "interval": format_seconds(group.interval_seconds),
                "rules": [file_rule(r) for r in group.rules],
            }
        ],
    }


def rule_items(rules: Iterable[dict[str, Any]]) -> str | None:
    """Rules as the end of a rule file's one group (the items of its ``rules:`` list, which
    sorts last); ``None`` when a multi-line string would need indenting on its own terms."""
    rules = list(rules)
    if _multi_line(rules):
        return None
    return "".join(_indented(dump_yaml([rule])) for rule in rules)


def _multi_line(rules: list[dict[str, Any]]) -> bool:
    """Whether a string in ``rules`` spans lines: YAML indents those on its own terms, so the
    rules' text cannot be indented as a block."""
    return "\\n" in jsontext.dumps(rules)


def _rule_uids(rule: dict[str, Any]) -> list[str]:
    """A Grafana rule's own uid and its dashboard's: values of one service, as tokens."""
    board = (rule.get("annotations") or {}).get("__dashboardUid__", "")
    return [str(rule.get("uid", "")), str(board)]


def file_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """File provisioning takes the API rule minus the fields the file's group already sets."""
    return {k: v for k, v in rule.items() if k not in ("folderUID", "ruleGroup", "orgID")}


def write_all(rendered: Rendered, out_dir: Path) -> list[Path]:
    """Write every output file under ``out_dir``; returns the paths written, sorted."""
    return write_files(iter_files(rendered), out_dir)


def write_files(files: Iterable[tuple[str, str]], out_dir: Path) -> list[Path]:
    """Write (relative path, content) pairs under ``out_dir``; returns the paths, sorted.

    A path given twice gets its last content.
    """
    contents = dict(files)
    root = os.fspath(out_dir)
    for directory in sorted({os.path.dirname(rel) for rel in contents}):
        os.makedirs(os.path.join(root, directory), exist_ok=True)
    # One thread, and no file objects: writing a fleet's files is thousands of file creations,
    # which cost the kernel the same from any thread, and Python's overhead per file adds up.
    for rel, content in contents.items():
        fd = os.open(os.path.join(root, rel), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            data = content.encode()
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
    return sorted(out_dir / rel for rel in contents)


def paths_of(files: Iterable[str]) -> list[str]:
    return sorted(files)
