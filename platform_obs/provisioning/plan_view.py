"""How a plan reads: text for a terminal or CI log, Markdown for a pull request, JSON for scripts.

Changes are shown per service and per object, and inside an object per alert rule or panel, in the
words of the service config (``for: 5m → 10m``, ``threshold: 0.02 → 0.03``, ``+ alert
CheckoutPaymentProviderErrors``) rather than as a JSON diff of what Grafana stores. The raw JSON
diff is still there behind ``show_json``. Computing the plan is :mod:`.plan`'s job; this module
only presents it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from platform_obs.provisioning.durations import format_seconds
from platform_obs.provisioning.plan import HASH_TAG_PREFIX, Change, Plan

#: A comment on GitHub holds 65,536 characters; details beyond this are left out.
MARKDOWN_BUDGET = 60_000
SYMBOL = {
    "create": "+",
    "update": "~",
    "delete": "-",
    "skip": "!",
    "unchanged": "=",
    "refuse": "x",
}
_COLOURS = {"+": "green", "-": "red", "~": "yellow", "!": "magenta", "x": "red"}
_KIND_NAMES = {"folder": "folder", "dashboard": "dashboard", "rule_group": "rule group"}
_LONG = 60  # a value longer than this is shown on lines of its own
#: What a reviewer wants to see of an alert being added.
_NEW_ALERT_TERMS = ("expr", "comparison", "threshold", "for", "severity", "receiver", "summary")


@dataclass(frozen=True)
class Line:
    """One line of detail under an object: its depth, a symbol (+ - ~ or blank) and text."""

    depth: int
    symbol: str
    text: str


# --- summaries ----------------------------------------------------------------------------------


def summary_line(plan: Plan) -> str:
    n = plan.counts()
    line = (
        f"Plan: {n['create']} to create, {n['update']} to update, {n['delete']} to delete, "
        f"{n['unchanged']} unchanged"
    )
    if n["skip"]:
        line += f", {n['skip']} skipped"
    if n.get("refuse"):
        line += f", {n['refuse']} refused (not owned by this config; nothing will be written)"
    return line + "."


def _shown(plan: Plan) -> list[Change]:
    return [c for c in plan.changes if c.action != "unchanged"]


def by_service(changes: Iterable[Change]) -> dict[str, list[Change]]:
    """Changes grouped by service, folders (shared by a team) first under ``""``."""
    groups: dict[str, list[Change]] = {}
    for c in changes:
        groups.setdefault("" if c.kind == "folder" else c.service, []).append(c)
    return dict(sorted(groups.items()))


def headline(c: Change) -> str:
    text = f"{_KIND_NAMES[c.kind]} {c.key}"
    if c.title and c.title != c.key and c.kind != "rule_group":
        text += f" {_quote(c.title)}"
    return text


# --- details in the user's terms ----------------------------------------------------------------


def details(c: Change) -> list[Line]:
    """What changes inside one object, field by field (with the plan's notes first)."""
    notes = [Line(1, "", f"note: {note}") for note in getattr(c, "notes", ())]
    if c.action in ("skip", "refuse"):
        word = "refused" if c.action == "refuse" else "skipped"
        return [Line(1, "", f"{word}: {c.reason}"), *notes]
    if c.kind == "rule_group":
        return notes + _rule_group_lines(c)
    if c.kind == "dashboard" and c.action == "update":
        return notes + _dashboard_lines(c.before or {}, c.after or {})
    if c.kind == "folder" and c.action == "update":
        return notes + _field_lines(
            c.before or {}, c.after or {}, 1, {"parentUid": "parent folder"}
        )
    return notes


def _rule_group_lines(c: Change) -> list[Line]:
    empty: dict[str, Any] = {"interval": None, "rules": {}}
    before, after = c.before or empty, c.after or empty
    out: list[Line] = []
    if c.action == "update" and before.get("interval") != after.get("interval"):
        out.append(
            Line(
                1,
                "~",
                f"evaluation_interval: {_duration(before.get('interval'))} → "
                f"{_duration(after.get('interval'))}",
            )
        )
    old, new = before.get("rules") or {}, after.get("rules") or {}
    for uid in [*new, *(u for u in old if u not in new)]:
        if uid not in old:
            out.append(Line(1, "+", f"alert {_quote(_rule_title(new[uid]))}"))
            terms = _rule_terms(new[uid])
            for key in _NEW_ALERT_TERMS:
                if key in terms:
                    out += _value_lines(2, "+", key, None, terms[key])
        elif uid not in new:
            out.append(Line(1, "-", f"alert {_quote(_rule_title(old[uid]))}"))
        elif old[uid] != new[uid]:
            out.append(Line(1, "~", f"alert {_quote(_rule_title(new[uid]))}"))
            out += _field_lines(_rule_terms(old[uid]), _rule_terms(new[uid]), 2)
    return out


def _rule_title(rule: dict[str, Any]) -> str:
    return str(rule.get("title") or rule.get("uid") or "?")


def _rule_terms(rule: dict[str, Any]) -> dict[str, Any]:
    """A Grafana rule in the words of the service config; the rest under its API path."""
    rest = dict(rule)
    out: dict[str, Any] = {}
    if "title" in rest:
        out["title"] = rest.pop("title")
    for data in rest.pop("data", None) or []:
        model = data.get("model") or {}
        ref = data.get("refId", "?")
        if data.get("datasourceUid") != "__expr__" and "expr" in model:
            out["expr"] = model["expr"]
            others = {k: v for k, v in data.items() if k != "model"}
            others["model"] = {k: v for k, v in model.items() if k != "expr"}
            _flatten(others, f"query {ref}", out)
        elif model.get("type") == "threshold":
            evaluator = ((model.get("conditions") or [{}])[0]).get("evaluator") or {}
            params = evaluator.get("params") or []
            out["threshold"] = params[0] if len(params) == 1 else params
            kind = str(evaluator.get("type"))
            out["comparison"] = {"gt": ">", "lt": "<"}.get(kind, kind)
            model = {k: v for k, v in model.items() if k != "conditions"}
            _flatten({**data, "model": model}, f"expression {ref}", out)
        else:
            _flatten(data, f"expression {ref}", out)
    for key in ("for", "keep_firing_for"):
        if key in rest:
            out[key] = _duration(rest.pop(key))
    labels = dict(rest.pop("labels", None) or {})
    if "severity" in labels:
        out["severity"] = labels.pop("severity")
    for name, value in labels.items():
        out[f"labels.{name}"] = value
    annotations = dict(rest.pop("annotations", None) or {})
    for name, words in (("__dashboardUid__", "dashboard"), ("__panelId__", "panel")):
        if name in annotations:
            out[words] = annotations.pop(name)
    for name, value in annotations.items():
        out[name] = value
    settings = dict(rest.pop("notification_settings", None) or {})
    if "receiver" in settings:
        out["receiver"] = settings.pop("receiver")
    _flatten(settings, "notification_settings", out)
    for key, words in (
        ("noDataState", "no_data"),
        ("execErrState", "exec_err"),
        ("isPaused", "paused"),
    ):
        if key in rest:
            out[words] = rest.pop(key)
    rest.pop("uid", None)
    _flatten(rest, "", out)
    return out


def _dashboard_lines(before: dict[str, Any], after: dict[str, Any]) -> list[Line]:
    out: list[Line] = []
    if before.get("folderUid") != after.get("folderUid"):
        out.append(Line(1, "~", f"folder: {before.get('folderUid')} → {after.get('folderUid')}"))
    old = dict(before.get("dashboard") or {})
    new = dict(after.get("dashboard") or {})
    old_tags, new_tags = old.pop("tags", []) or [], new.pop("tags", []) or []
    if old_tags != new_tags:
        plain_old = [t for t in old_tags if not str(t).startswith(HASH_TAG_PREFIX)]
        plain_new = [t for t in new_tags if not str(t).startswith(HASH_TAG_PREFIX)]
        if plain_old == plain_new:
            out.append(Line(1, "~", "content hash tag refreshed (the content is unchanged)"))
        else:
            out += [Line(1, "+", f"tag {t}") for t in plain_new if t not in plain_old]
            out += [Line(1, "-", f"tag {t}") for t in plain_old if t not in plain_new]
    out += _item_lines(
        _keyed(old.pop("panels", []) or [], "id"),
        _keyed(new.pop("panels", []) or [], "id"),
        lambda _, panel: f"panel {_quote(_panel_title(panel))}",
        _panel_terms,
    )
    out += _item_lines(
        _keyed((old.pop("templating", {}) or {}).get("list", []) or [], "name"),
        _keyed((new.pop("templating", {}) or {}).get("list", []) or [], "name"),
        lambda key, _: f"variable {key}",
        _flat,
    )
    out += _field_lines(_flat(old), _flat(new), 1)
    return out


def _item_lines(
    old: dict[Any, Any],
    new: dict[Any, Any],
    name: Callable[[Any, Any], str],
    terms: Callable[[Any], dict[str, Any]],
) -> list[Line]:
    """Added, removed and changed items matched by key (new order, then the removed ones), a
    changed one with its fields in ``terms``."""
    out: list[Line] = []
    for key in [*new, *(k for k in old if k not in new)]:
        a, b = old.get(key), new.get(key)
        if a is None:
            out.append(Line(1, "+", name(key, b)))
        elif b is None:
            out.append(Line(1, "-", name(key, a)))
        elif a != b:
            out.append(Line(1, "~", name(key, b)))
            out += _field_lines(terms(a), terms(b), 2)
    return out


def _panel_title(panel: dict[str, Any] | None) -> str:
    panel = panel or {}
    return str(panel.get("title") or f"panel {panel.get('id')}")


def _panel_terms(panel: dict[str, Any]) -> dict[str, Any]:
    rest = dict(panel)
    out: dict[str, Any] = {}
    for target in rest.pop("targets", None) or []:
        target = dict(target)
        ref = target.pop("refId", "?")
        for key in ("expr", "query"):
            if key in target:
                out[f"query {ref}"] = target.pop(key)
        _flatten(target, f"query {ref}", out)
    fields: dict[str, Any] = {}
    _flatten(rest, "", fields)
    for key, value in fields.items():
        # The panel's threshold line is the alert threshold drawn on it.
        step = key.removeprefix("fieldConfig.defaults.thresholds.steps")
        if step != key and step.endswith("].value"):
            key = f"threshold line{step.removesuffix('.value')}"
        out[key] = value
    return out


def _keyed(items: Sequence[Any], key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        name = item.get(key) if isinstance(item, dict) else None
        out[str(name if name is not None else f"#{i}")] = item
    return out


def _flat(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _flatten(obj, "", out)
    return out


def _flatten(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    """Leaves of nested data under dotted paths (``a.b[0].c``); empty containers are leaves."""
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, list) and obj and not all(isinstance(v, (str, int, float)) for v in obj):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}[{i}]", out)
    elif prefix:
        out[prefix] = obj


def _field_lines(
    before: dict[str, Any], after: dict[str, Any], depth: int, names: dict[str, str] | None = None
) -> list[Line]:
    names = names or {}
    out: list[Line] = []
    for key in [*after, *(k for k in before if k not in after)]:
        label = names.get(key, key)
        if key not in before:
            out += _value_lines(depth, "+", label, None, after[key])
        elif key not in after:
            out += _value_lines(depth, "-", label, before[key], None)
        elif before[key] != after[key]:
            out += _value_lines(depth, "~", label, before[key], after[key])
    return out


def _value_lines(depth: int, symbol: str, label: str, before: Any, after: Any) -> list[Line]:
    """``label: old → new`` on one line, or long values on lines of their own (unquoted)."""
    old, new = _value(before), _value(after)
    if symbol == "+":
        if len(new) > _LONG:
            return [Line(depth, "+", f"{label}:"), Line(depth + 1, "+", _raw(after))]
        return [Line(depth, "+", f"{label}: {new}")]
    if symbol == "-":
        if len(old) > _LONG:
            return [Line(depth, "-", f"{label}:"), Line(depth + 1, "-", _raw(before))]
        return [Line(depth, "-", f"{label}: {old}")]
    if len(old) + len(new) > _LONG:
        return [
            Line(depth, "~", f"{label}:"),
            Line(depth + 1, "-", _raw(before)),
            Line(depth + 1, "+", _raw(after)),
        ]
    return [Line(depth, "~", f"{label}: {old} → {new}")]


def _raw(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else _value(value)


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return format(value, "g") if abs(value) < 1e15 else str(value)
    if isinstance(value, str):
        return value if value and value.strip() == value and " " not in value else _quote(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _duration(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, (int, float)):
        return format_seconds(value)
    return str(value)


# --- text ---------------------------------------------------------------------------------------


def render_text(plan: Plan, *, color: bool = False, show_json: bool = False) -> str:
    """For a terminal or a CI log: per service, per object, per field."""

    def paint(symbol: str, text: str, **style: Any) -> str:
        fg = _COLOURS.get(symbol)
        if not color or (fg is None and not style):
            return text
        return _style(text, fg=fg, **style)

    lines: list[str] = []
    groups = by_service(_shown(plan))
    for service, changes in groups.items():
        lines.append(paint("", service or "folders", bold=True))
        for c in changes:
            sym = SYMBOL[c.action]
            lines.append(paint(sym, f"  {sym} {headline(c)}"))
            for d in details(c):
                lines.append(paint(d.symbol, f"  {'    ' * d.depth}{d.symbol} {d.text}".rstrip()))
            if show_json and c.diff:
                lines += [f"  {'    '}{row}" for row in c.diff.splitlines()]
        lines.append("")
    if not plan.has_changes:
        lines.append("No changes. Grafana matches the configuration.")
    lines.append(paint("", summary_line(plan), bold=True))
    if not plan.prune:
        lines.append("(prune not requested: objects no longer declared are kept; see --prune)")
    return "\n".join(lines) + "\n"


def _style(text: str, **style: Any) -> str:
    import click

    return click.style(text, **style)


# --- markdown -----------------------------------------------------------------------------------


def render_markdown(plan: Plan, *, show_json: bool = False, budget: int = MARKDOWN_BUDGET) -> str:
    """For a pull-request comment or CI job summary: summary table first, details folded."""
    n = plan.counts()
    groups = by_service(_shown(plan))
    services = {c.service for c in plan.changes if c.service}
    changed = {s for s in groups if s}
    out = [
        "### platform-obs plan",
        "",
        f"**{summary_line(plan)}** {len(changed)} of {len(services)} service(s) change.",
        "",
    ]
    if not groups:
        out.append("No changes. Grafana matches the configuration.")
        return "\n".join(out) + "\n"
    out += [
        "| service | create | update | delete | changes |",
        "|---|---:|---:|---:|---|",
    ]
    used = sum(len(line) + 1 for line in out)
    # Each change's details once: the table's summary and the folded block both read them.
    lines = {id(c): details(c) for cs in groups.values() for c in cs}
    rows_left_out = 0
    for service, changes in groups.items():
        counts = {a: sum(c.action == a for c in changes) for a in ("create", "update", "delete")}
        what = "; ".join(_brief(c, lines[id(c)]) for c in changes)
        name = service or "*(folders)*"
        row = (
            f"| {name} | {counts['create']} | {counts['update']} | {counts['delete']} | "
            f"{_cell(what)} |"
        )
        if used + len(row) > budget // 2:  # the table gets at most half of the room
            rows_left_out += 1
            continue
        out.append(row)
        used += len(row) + 1
    if rows_left_out:
        out.append(f"| *{rows_left_out} more service(s)* | | | | |")
    out.append("")
    used = sum(len(line) + 1 for line in out)
    left_out = 0
    for service, changes in groups.items():
        block = _details_block(service, changes, show_json, lines)
        if used + len(block) > budget:
            left_out += 1
            continue
        out.append(block)
        used += len(block) + 1
    if left_out:
        out.append(
            f"*Details of {left_out} more service(s) left out to fit a comment: see the job "
            "log or `platform-obs plan -o json`.*"
        )
    if n["skip"] or n.get("refuse"):
        out.append(
            f"{n['skip']} object(s) skipped, {n.get('refuse', 0)} refused: see their reasons above."
        )
    return "\n".join(out) + "\n"


def _brief(c: Change, lines: list[Line]) -> str:
    sym = SYMBOL[c.action]
    if c.kind == "rule_group" and c.action == "update":
        alerts = [d for d in lines if d.depth == 1 and d.text.startswith("alert ")]
        parts = []
        for symbol, word in (("+", "added"), ("~", "changed"), ("-", "removed")):
            count = sum(d.symbol == symbol for d in alerts)
            if count:
                parts.append(f"{count} alert(s) {word}")
        return f"{sym} rule group ({', '.join(parts) or 'settings'})"
    return f"{sym} {_KIND_NAMES[c.kind]} `{c.key}`"


def _details_block(
    service: str, changes: list[Change], show_json: bool, lines: dict[int, list[Line]]
) -> str:
    counts = [
        f"{sum(c.action == a for c in changes)} to {a}"
        for a in ("create", "update", "delete")
        if any(c.action == a for c in changes)
    ]
    counts += [
        f"{sum(c.action == a for c in changes)} {word}"
        for a, word in (("skip", "skipped"), ("refuse", "refused"))
        if any(c.action == a for c in changes)
    ]
    title = service or "folders"
    rows = []
    for c in changes:
        sym = SYMBOL[c.action]
        rows.append(f"{sym} {headline(c)}")
        rows += [f"{d.symbol or ' '} {'    ' * d.depth}{d.text}" for d in lines[id(c)]]
        if show_json and c.diff:
            rows += [f"  {row}" for row in c.diff.splitlines()]
    body = "\n".join(rows).replace("```", "` ` `")
    return "\n".join(
        [
            f"<details><summary><b>{_html(title)}</b>: {', '.join(counts)}</summary>",
            "",
            "```diff",
            body,
            "```",
            "",
            "</details>",
        ]
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- json ---------------------------------------------------------------------------------------


def render_json(plan: Plan) -> str:
    """Stable for scripts: each change also lists its field-level details as text lines."""
    doc = plan.to_json()
    for entry, c in zip(doc["changes"], plan.changes, strict=True):
        lines = details(c) if c.action != "unchanged" else []
        if lines:
            entry["details"] = [
                f"{'  ' * (d.depth - 1)}{d.symbol} {d.text}".rstrip() for d in lines
            ]
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
