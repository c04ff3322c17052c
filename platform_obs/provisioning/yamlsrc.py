"""YAML loading that remembers where every value came from.

Users fix problems faster when a message points at ``file:line``; PyYAML's node marks have the
lines, so documents are built from the node tree while recording the line of each key path
(``alerts.high-error-ratio.threshold``, ``custom_alerts[0].expr``). Duplicate keys, which PyYAML
silently collapses, are reported as problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from platform_obs.provisioning.model import Problem

# libyaml's parser (inside PyYAML's wheels) composes ~15x faster than the pure-Python one and its
# nodes keep their marks, so line numbers survive; the pure-Python loader is only a fallback.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """Safe loader; a subclass so nothing we do leaks into PyYAML's global resolver tables."""


def join(path: str, key: str | int) -> str:
    """Extend a key path: ``join("a", "b") == "a.b"``, ``join("a", 0) == "a[0]"``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


@dataclass
class Located:
    """A parsed YAML document plus the 1-based line of each key path."""

    file: str
    data: Any
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line(self, path: str) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""

    def problem(self, path: str, message: str, value: Any = None, expected: str = "") -> Problem:
        return Problem(self.file, path, message, value, expected, self.line(path))


def _build(loader: _Loader, node: yaml.Node, path: str, doc: Located) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<:` merge keys
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                doc.problems.append(
                    Problem(
                        doc.file,
                        path,
                        "mapping key must be a scalar",
                        str(key),
                        "a plain key",
                        key_node.start_mark.line + 1,
                    )
                )
                continue
            child = join(path, str(key))
            if key in out:
                doc.problems.append(
                    Problem(
                        doc.file,
                        child,
                        "duplicate key (YAML keeps only the last one)",
                        key,
                        "each key once",
                        key_node.start_mark.line + 1,
                    )
                )
            doc.lines[child] = key_node.start_mark.line + 1
            out[key] = _build(loader, value_node, child, doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, join(path, i), doc) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse(text: str, file: str) -> Located:
    """Parse one YAML document; syntax errors become problems (data is then ``None``)."""
    doc = Located(file, None)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            doc.data = _build(loader, node, "", doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        doc.problems.append(
            Problem(
                file,
                "",
                f"invalid YAML: {exc.problem or exc}",
                None,
                "a single valid YAML document",
                mark.line + 1 if mark else None,
            )
        )
    except yaml.YAMLError as exc:
        doc.problems.append(Problem(file, "", f"invalid YAML: {exc}"))
    finally:
        loader.dispose()
    return doc


def load(path: Path) -> Located:
    """Read and parse a YAML file; an unreadable file is a problem, not an exception."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Located(
            str(path), None, problems=[Problem(str(path), "", f"cannot read file: {exc}")]
        )
    return parse(text, str(path))
