"""Syntax check of alert label and annotation templates (Go ``text/template``), offline.

Grafana and Prometheus both expand ``{{ ... }}`` in alert labels and annotations, and both reject a
rule whose template does not parse. ``promtool`` catches that, but only when it is installed; this
check runs always. It follows Go's parser for what matters in one-line alert text: actions closed,
strings terminated, brackets balanced, ``if``/``range``/``with`` closed by ``end``, variables
declared before use, and only functions that *both* Grafana-managed alerts and Prometheus rules
define (the same annotations go to both outputs).
"""

from __future__ import annotations

import re

#: text/template's own functions.
GO_FUNCTIONS = frozenset(
    [
        "and",
        "call",
        "html",
        "index",
        "slice",
        "js",
        "len",
        "not",
        "or",
        "print",
        "printf",
        "println",
        "urlquery",
        "eq",
        "ge",
        "gt",
        "le",
        "lt",
        "ne",
    ]
)
#: Functions Prometheus rules and Grafana-managed alerts both provide.
ALERT_FUNCTIONS = frozenset(
    [
        "humanize",
        "humanize1024",
        "humanizeDuration",
        "humanizePercentage",
        "humanizeTimestamp",
        "title",
        "toUpper",
        "toLower",
        "match",
        "reReplaceAll",
        "graphLink",
        "tableLink",
        "args",
        "externalURL",
        "pathPrefix",
    ]
)
FUNCTIONS = GO_FUNCTIONS | ALERT_FUNCTIONS
#: Functions only Prometheus has: a Grafana-managed copy of the rule would fail to save.
PROMETHEUS_ONLY = frozenset(
    [
        "query",
        "first",
        "label",
        "value",
        "strvalue",
        "sortByLabel",
        "safeHtml",
        "toTime",
        "parseDuration",
        "stripPort",
        "stripDomain",
    ]
)
#: Variables both define for alert templates (``$`` is the data root).
VARIABLES = frozenset({"$", "$labels", "$value"})
ONLY_IN = {"$values": "Grafana", "$externalLabels": "Prometheus", "$externalURL": "Prometheus"}
_KEYWORDS = frozenset(
    [
        "if",
        "else",
        "end",
        "range",
        "with",
        "define",
        "template",
        "block",
        "break",
        "continue",
        "nil",
        "true",
        "false",
    ]
)
_OPENERS = frozenset({"if", "range", "with", "define", "block"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<close>-?\s*\}\})
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<number>[+-]?(?:0[xXoObB])?[0-9][0-9a-fA-F_.]*(?:[eEpP][+-]?[0-9]+)?i?)
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<variable>\$[A-Za-z0-9_]*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<punct>[()|,])
    """,
    re.VERBOSE | re.DOTALL,
)
_COMMENT_CLOSE = re.compile(r"(?:\s-)?\}\}")


class TemplateError(ValueError):
    pass


def problem(text: str) -> str | None:
    """Why ``text`` is not a valid alert template, or ``None`` (plain text is valid)."""
    if "{{" not in text:
        return None
    try:
        _check(text)
    except TemplateError as exc:
        return f"invalid template: {exc}"
    return None


def _check(text: str) -> None:
    stack: list[str] = []
    declared = set(VARIABLES)
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            break
        body_start = start + 2
        if text[body_start : body_start + 2] in ("- ", "-\t", "-\n", "-\r"):
            body_start += 2  # trim marker
        if text.startswith("/*", body_start):
            end = text.find("*/", body_start + 2)
            if end < 0:
                raise TemplateError("unclosed comment")
            close = _COMMENT_CLOSE.match(text, end + 2)
            if not close:
                raise TemplateError("comment ends before closing delimiter")
            pos = close.end()
            continue
        tokens, pos = _lex_action(text, body_start)
        _action(tokens, stack, declared)
    if stack:
        raise TemplateError(f"{{{{ {stack[-1]} }}}} without {{{{ end }}}}")


def _lex_action(text: str, pos: int) -> tuple[list[tuple[str, str]], int]:
    tokens: list[tuple[str, str]] = []
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            if char == '"':
                raise TemplateError("unterminated quoted string")
            if char == "`":
                raise TemplateError("unterminated raw quoted string")
            if char == "{" and text.startswith("{{", pos):
                raise TemplateError("unclosed action (a '{{' inside an action)")
            raise TemplateError(f"unexpected {char!r} in command")
        kind = match.lastgroup or ""
        pos = match.end()
        if kind == "close":
            return tokens, pos
        if kind != "space":
            tokens.append((kind, match.group()))
    raise TemplateError("unclosed action (no closing '}}')")


def _action(tokens: list[tuple[str, str]], stack: list[str], declared: set[str]) -> None:
    if not tokens:
        raise TemplateError("missing value for command ('{{ }}' is empty)")
    kind, word = tokens[0]
    rest = tokens[1:]
    if kind == "ident" and word in _KEYWORDS:
        if word in ("if", "range", "with"):
            stack.append(word)
            _pipeline(rest, declared, f"missing value for {word}")
        elif word == "else":
            if not stack or stack[-1] not in ("if", "range", "with"):
                raise TemplateError("unexpected {{ else }}")
            if rest:
                if rest[0] != ("ident", "if") and rest[0] != ("ident", "with"):
                    raise TemplateError("else must be followed by end, if or with")
                _pipeline(rest[1:], declared, f"missing value for {rest[0][1]}")
        elif word == "end":
            if rest:
                raise TemplateError("unexpected token after end")
            if not stack:
                raise TemplateError("unexpected {{ end }}")
            stack.pop()
        elif word in ("define", "block", "template"):
            if not rest or rest[0][0] not in ("string", "raw"):
                raise TemplateError(f"{word} needs a quoted template name")
            if word != "define" and rest[1:]:
                _pipeline(rest[1:], declared, f"missing value for {word}")
            if word in _OPENERS:
                stack.append(word)
        elif word in ("break", "continue"):
            if "range" not in stack:
                raise TemplateError(f"{{{{ {word} }}}} outside {{{{ range }}}}")
        else:  # nil, true, false as a whole action
            _pipeline(tokens, declared, "missing value for command")
        return
    _pipeline(tokens, declared, "missing value for command")


def _pipeline(tokens: list[tuple[str, str]], declared: set[str], empty: str) -> None:
    # Declarations: `$x :=`, `$k, $v :=` (range) and assignments `$x =`.
    for i, (kind, _word) in enumerate(tokens):
        if kind in ("declare", "assign"):
            names = [w for k, w in tokens[:i] if k == "variable"]
            if not names or any(k not in ("variable", "punct") for k, _ in tokens[:i]):
                raise TemplateError("expected variable names before := or =")
            declared.update(names)
            tokens = tokens[i + 1 :]
            break
    if not tokens:
        raise TemplateError(empty)
    depth = 0
    command: list[tuple[str, str]] = []
    for kind, word in tokens:
        if kind == "punct" and word == "|" and depth == 0:
            if not command:  # Go accepts a trailing '|', not an empty command before one
                raise TemplateError("missing command in pipeline (an empty '|')")
            command = []
            continue
        command.append((kind, word))
        if kind == "punct" and word == "(":
            depth += 1
        elif kind == "punct" and word == ")":
            depth -= 1
            if depth < 0:
                raise TemplateError("unexpected right paren")
        elif kind == "punct" and word == ",":
            raise TemplateError("unexpected ',' in command")
        elif kind == "variable":
            root = word.split(".")[0]
            if root not in declared:
                where = ONLY_IN.get(root)
                extra = f" (only {where} defines it; both outputs use this text)" if where else ""
                raise TemplateError(f"undefined variable {root!r}{extra}")
        elif kind == "ident":
            name = word.split(".")[0]
            if name in ("nil", "true", "false"):
                continue
            if name in _KEYWORDS:
                raise TemplateError(f"unexpected {name!r} in command")
            if name in PROMETHEUS_ONLY:
                raise TemplateError(
                    f"function {name!r} exists in Prometheus rules but not in Grafana-managed "
                    "alerts (both outputs use this text)"
                )
            if name not in FUNCTIONS:
                raise TemplateError(f'function "{name}" not defined')
    if depth > 0:
        raise TemplateError("unclosed left paren")
