"""Bounds on what the provisioner reads, checked before the expensive step they protect.

A service config is a few kilobytes. Hostile or broken input must not make the CLI run for minutes,
exhaust memory or crash: a 500-byte "billion laughs" file expands to a billion YAML nodes, a
self-referencing anchor never ends, and the PromQL parser needs memory that grows with the square
of an expression's nesting (a 30 KB expression takes gigabytes, deeper parentheses overflow its
stack). Each limit is far above what a real config needs and is reported as an ordinary problem
naming the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

#: Largest config file read, in bytes (a typical service config is 2-5 KB).
MAX_FILE_BYTES = 256 * 1024
#: Deepest nesting of YAML mappings/lists (a service config needs 5).
MAX_DEPTH = 32
#: Most YAML values, aliases expanded (a service config has a few hundred; each custom alert ~10).
MAX_NODES = 5_000
#: Longest PromQL expression, in characters.
MAX_EXPR_CHARS = 8 * 1024
#: Most operators plus opening brackets in one PromQL expression: the parser's cost grows with the
#: square of this (256 costs ~25 MB and milliseconds; 1000 costs 170 MB; 10 000 crash it).
MAX_EXPR_COMPLEXITY = 256

_EXPR_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', re.DOTALL)
_EXPR_COMPLEX = re.compile(
    r"[-+*/%^(\[{]|==|!=|<=|>=|[<>]|\b(?:and|or|unless|atan2)\b", re.IGNORECASE
)


_FLOW_RUN = re.compile(r"(?:[\[{][ \t]*){" + str(MAX_DEPTH + 1) + "}")


class LimitExceeded(Exception):
    """An input is over one of the limits; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def read_text(path: Path) -> str:
    """The file's text; :class:`LimitExceeded` when it is larger than :data:`MAX_FILE_BYTES`.

    Reads at most one byte past the limit, so a huge file (or an endless device) costs nothing.
    """
    with path.open("rb") as fh:
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise LimitExceeded(
            f"file is larger than {MAX_FILE_BYTES // 1024} KiB (a service config is a few KB)"
        )
    return data.decode("utf-8")


def too_many_values(*, aliases: bool = False) -> str:
    if aliases:
        return (
            f"document expands to more than {MAX_NODES} values through aliases (aliases "
            "repeated in aliases, a 'billion laughs'?)"
        )
    return f"document has more than {MAX_NODES} values (a service config has a few hundred)"


def check_text(text: str) -> None:
    """Refuse a run of more than :data:`MAX_DEPTH` opening brackets before the YAML scanner sees
    it: PyYAML looks ahead over such a run with quadratic cost (a second per thousand)."""
    match = _FLOW_RUN.search(text)
    if match:
        line = text.count("\n", 0, match.start()) + 1
        raise LimitExceeded(f"nested deeper than {MAX_DEPTH} levels", line)


def check_tree(root: yaml.Node) -> None:
    """Refuse a composed YAML node graph that is too deep, recursive, or expands too far.

    Aliases make the graph a DAG (or, with a self-reference, a cycle); this walks it as the
    document would be expanded, stopping at the first limit, so it costs at most
    :data:`MAX_NODES` steps whatever the input.
    """
    count = 0
    visited: set[int] = set()  # a node met twice is reached through an alias
    # (node, depth, ids of the collections above it) -- an explicit stack: no recursion limit.
    stack: list[tuple[yaml.Node, int, frozenset[int]]] = [(root, 1, frozenset())]
    while stack:
        node, depth, above = stack.pop()
        count += 1
        line = node.start_mark.line + 1
        if count > MAX_NODES:
            raise LimitExceeded(too_many_values(aliases=len(visited) < count - 1), line)
        visited.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            continue
        if id(node) in above:
            raise LimitExceeded("an alias refers to a value that contains it (recursive)", line)
        if depth > MAX_DEPTH:
            raise LimitExceeded(f"nested deeper than {MAX_DEPTH} levels", line)
        inner = above | {id(node)}
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1, inner))
                stack.append((value, depth + 1, inner))
        else:
            for item in node.value:
                stack.append((item, depth + 1, inner))


def promql_problem(expr: str) -> str | None:
    """Why ``expr`` is too big to hand to the PromQL parser, or ``None``."""
    if len(expr) > MAX_EXPR_CHARS:
        return (
            f"expression is {len(expr)} characters long; at most {MAX_EXPR_CHARS} are accepted "
            "(record parts of it as recording rules)"
        )
    complexity = len(_EXPR_COMPLEX.findall(_EXPR_STRING.sub('""', expr)))
    if complexity > MAX_EXPR_COMPLEXITY:
        return (
            f"expression has {complexity} operators and brackets; at most "
            f"{MAX_EXPR_COMPLEXITY} are accepted (record parts of it as recording rules)"
        )
    return None
