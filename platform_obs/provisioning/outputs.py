"""Rendered objects -> files: dashboard JSON, Grafana file provisioning, Prometheus rule files.

Output is deterministic (sorted keys, stable order) so re-rendering unchanged inputs gives
identical bytes and a GitOps diff shows only real changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
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

    def __call__(self, data: Any, tokens: Sequence[str]) -> str:
        tokens = list(dict.fromkeys(t for t in tokens if t))
        if not tokens or not all(self._safe(t) for t in tokens):
            return self.dump(data)
        shape = jsontext.dumps(data, sort_keys=True)
        for i in sorted(range(len(tokens)), key=lambda i: -len(tokens[i])):
            shape = shape.replace(tokens[i], _PLACEHOLDER.format(i))
        if _in_a_key(shape):
            return self.dump(data)  # sorted key order could depend on the values
        seen = self._texts.get(shape, _UNSEEN)
        if seen is _UNSEEN:  # a document unlike any other costs one serialisation
            direct = self.dump(data)
            self._texts[shape] = _FirstText(tokens, direct)
            return direct
        if isinstance(seen, _FirstText):  # the shape comes back: make its text, check it
            text = self.dump(jsontext.loads(shape))
            seen = text if _put_back(text, seen.tokens) == seen.text else None
            self._texts[shape] = seen
        return self.dump(data) if seen is None else _put_back(seen, tokens)

    def _safe(self, token: str) -> bool:
        return (
            bool(_TOKEN.match(token))
            and any("a" <= c <= "z" for c in token)
            and self._resolver.resolve(yaml.ScalarNode, token, (True, False)) == _STR_TAG
        )


def _in_a_key(shape: str) -> bool:
    """Whether a placeholder is inside a mapping key of compact JSON (a key's closing quote is
    followed by ': ', a value's by ', ', '}' or ']')."""
    at = shape.find("QPOTOKEN")
    while at >= 0:
        end = shape.find('"', at)
        while end > 0 and shape[end - 1] == "\\":
            backslashes = len(shape[:end]) - len(shape[:end].rstrip("\\"))
            if backslashes % 2 == 0:
                break
            end = shape.find('"', end + 1)
        if end < 0 or shape.startswith('": ', end):
            return True
        at = shape.find("QPOTOKEN", end)
    return False


def _put_back(text: str, tokens: Sequence[str]) -> str:
    for i, token in enumerate(tokens):
        text = text.replace(_PLACEHOLDER.format(i), token)
    return text


def render_files(
    rendered: Rendered, dashboards_mount: str = DEFAULT_DASHBOARDS_MOUNT
) -> dict[str, str]:
    """Relative path -> content of every output file."""
    files: dict[str, str] = {}
    titles = {f.uid: f.title for f in rendered.folders}
    parents = {f.uid: f.parent_uid for f in rendered.folders}

    def team(folder_uid: str) -> str:
        return titles.get(parents.get(folder_uid) or "", "")

    json_shapes, yaml_shapes = TextShapes(dump_json), TextShapes(dump_yaml)
    for board in rendered.dashboards:
        tokens = [board.service, team(board.folder_uid), board.uid, board.folder_uid]
        files[f"{DASHBOARDS_DIR}/{board.folder_uid}/{board.uid}.json"] = json_shapes(
            board.model, tokens
        )
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
        files[GRAFANA_DASHBOARD_PROVIDER] = dump_yaml({"apiVersion": 1, "providers": providers})
    for group in rendered.rule_groups:
        uids = [str(r.get("uid", "")) for r in group.rules]
        boards = [
            str((r.get("annotations") or {}).get("__dashboardUid__", "")) for r in group.rules
        ]
        tokens = [group.service, team(group.folder_uid), group.folder_uid, *uids, *boards]
        files[f"{GRAFANA_ALERTING_DIR}/{group.service}.yaml"] = yaml_shapes(
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
        )
    teams = {g.service: team(g.folder_uid) for g in rendered.rule_groups}
    for rule_file in rendered.prometheus_rules:
        tokens = [rule_file.service, teams.get(rule_file.service, "")]
        files[f"{PROMETHEUS_DIR}/{rule_file.file_name}"] = yaml_shapes(rule_file.document, tokens)
    files.update(rendered.extra_files)
    return files


def _file_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """File provisioning takes the API rule minus the fields the file's group already sets."""
    return {k: v for k, v in rule.items() if k not in ("folderUID", "ruleGroup", "orgID")}


def write_all(rendered: Rendered, out_dir: Path) -> list[Path]:
    """Write every output file under ``out_dir``; returns the paths written, sorted."""
    written = []
    for rel, content in sorted(render_files(rendered).items()):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def paths_of(files: Iterable[str]) -> list[str]:
    return sorted(files)
