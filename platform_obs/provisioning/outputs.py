"""Rendered objects -> files: dashboard JSON, Grafana file provisioning, Prometheus rule files.

Output is deterministic (sorted keys, stable order) so re-rendering unchanged inputs gives
identical bytes and a GitOps diff shows only real changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from platform_obs.provisioning import jsontext
from platform_obs.provisioning.durations import format_seconds
from platform_obs.provisioning.model import MANAGER, Rendered

DASHBOARDS_DIR = "dashboards"
GRAFANA_DASHBOARD_PROVIDER = "provisioning/dashboards/platform-obs.yaml"
GRAFANA_ALERTING_DIR = "provisioning/alerting"
PROMETHEUS_DIR = "prometheus"
#: Where Grafana reads the dashboards JSON from when the output directory is mounted there.
DEFAULT_DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"


def dump_json(data: Any) -> str:
    return jsontext.pretty(data)


#: libyaml's emitter (inside PyYAML's wheels) is ~4x faster than the pure-Python one.
_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


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
_UNSEEN = object()


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
        self._resolver = yaml.resolver.Resolver()
        self._safe_tokens: dict[str, bool] = {}

    def __call__(self, data: Any, tokens: Sequence[str]) -> str:
        tokens = list(dict.fromkeys(t for t in tokens if t))
        if not tokens or not all(self._safe(t) for t in tokens):
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

    def _safe(self, token: str) -> bool:
        safe = self._safe_tokens.get(token)
        if safe is None:
            safe = self._safe_tokens[token] = self._token_safe(token)
        return safe

    def _token_safe(self, token: str) -> bool:
        return (
            bool(_TOKEN.match(token))
            and any("a" <= c <= "z" for c in token)
            and self._resolver.resolve(yaml.ScalarNode, token, (True, False)) == _STR_TAG
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
        if "\\n" in jsontext.dumps(rules):  # a multi-line string indents its own lines
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

    yaml_shapes = TextShapes(dump_yaml)
    rule_files = RuleFileText(yaml_shapes)
    exact: dict[str, bool] = {}  # per dashboard shape: whether its file text is the model's
    for board in rendered.dashboards:
        text = None
        if board.file_text is not None and not board.built and board.shape is not None:
            text = board.file_text()
            if board.shape not in exact:
                exact[board.shape] = text == dump_json(board.model)
            text = text if exact[board.shape] else None
        path = f"{DASHBOARDS_DIR}/{board.folder_uid}/{board.uid}.json"
        yield path, dump_json(board.model) if text is None else text
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
        uids = [str(r.get("uid", "")) for r in group.rules]
        boards = [
            str((r.get("annotations") or {}).get("__dashboardUid__", "")) for r in group.rules
        ]
        tokens = [group.service, team(group.folder_uid), group.folder_uid, *uids, *boards]
        service_tokens = tokens[:3]
        yield (
            f"{GRAFANA_ALERTING_DIR}/{group.service}.yaml",
            rule_files(
                {
                    "apiVersion": 1,
                    "groups": [
                        {
                            "orgId": 1,
                            "name": group.title,
                            "folder": titles.get(group.folder_uid, group.folder_uid),
                            "interval": format_seconds(group.interval_seconds),
                            "rules": [_file_rule(r) for r in group.rules],
                        }
                    ],
                },
                tokens,
                service_tokens,
                uids=True,
            ),
        )
    teams = {g.service: team(g.folder_uid) for g in rendered.rule_groups}
    for rule_file in rendered.prometheus_rules:
        tokens = [rule_file.service, teams.get(rule_file.service, "")]
        yield (
            f"{PROMETHEUS_DIR}/{rule_file.file_name}",
            rule_files(rule_file.document, tokens, tokens),
        )
    yield from rendered.extra_files.items()


def _rule_uids(rule: dict[str, Any]) -> list[str]:
    """A Grafana rule's own uid and its dashboard's: values of one service, as tokens."""
    board = (rule.get("annotations") or {}).get("__dashboardUid__", "")
    return [str(rule.get("uid", "")), str(board)]


def _file_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """File provisioning takes the API rule minus the fields the file's group already sets."""
    return {k: v for k, v in rule.items() if k not in ("folderUID", "ruleGroup", "orgID")}


def write_all(rendered: Rendered, out_dir: Path) -> list[Path]:
    """Write every output file under ``out_dir``; returns the paths written, sorted."""
    # Each file is written by a thread as soon as it is made: the file system's waits overlap
    # with making the next ones.
    writes: dict[Path, Future[int]] = {}
    made: set[Path] = set()
    with ThreadPoolExecutor(max_workers=4) as pool:
        for rel, content in iter_files(rendered):
            path = out_dir / rel
            if path.parent not in made:
                path.parent.mkdir(parents=True, exist_ok=True)
                made.add(path.parent)
            if path in writes:  # the same path twice: the last content wins, as in a dict
                writes[path].result()
            writes[path] = pool.submit(path.write_bytes, content.encode())
        for write in writes.values():
            write.result()  # an error writing any file is raised here
    return sorted(writes)


def paths_of(files: Iterable[str]) -> list[str]:
    return sorted(files)
